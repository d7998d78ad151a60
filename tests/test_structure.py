"""The shape of the code: small functions and modules, imports that point one way."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

KIT = Path(__file__).resolve().parents[1] / "kit"


def _trees():
    for f in sorted(KIT.rglob("*.py")):
        yield f, f.read_text(encoding="utf-8")


def test_no_function_over_80_lines_and_no_module_over_400():
    long, big = [], []
    for f, src in _trees():
        if len(src.splitlines()) > 400:
            big.append(f"{f.relative_to(KIT)}: {len(src.splitlines())} lines")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{f.relative_to(KIT)}:{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long and not big, long + big


def test_the_packages_of_kit_import_each_other_without_a_cycle():
    graph = defaultdict(set)
    for f, src in _trees():
        here = f.relative_to(KIT).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(src)):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("kit.") and name.split(".")[1] != here:
                    graph[here].add(name.split(".")[1])

    def reach(start, node, seen):
        for nxt in graph[node]:
            if nxt == start:
                return True
            if nxt not in seen and reach(start, nxt, seen | {nxt}):
                return True
        return False

    cyclic = sorted(p for p in list(graph) if reach(p, p, {p}))
    assert not cyclic, {p: sorted(graph[p]) for p in cyclic}


DIST = {"PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn"}  # import name -> distribution
NOT_INSTALLED = {"spleeter", "demucs"}  # spleeter runs in its own venv; demucs is the [demucs] extra
NOT_IMPORTED = {"dvc", "resemblyzer"}  # the `dvc` command; resemblyzer's wheel ships the encoder weights kit reads


def test_the_declared_dependencies_are_the_imports():
    import re
    import sys
    import tomllib

    project = tomllib.loads((KIT.parent / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=\[ ]", d)[0].lower() for d in project["dependencies"]}
    imported = set()
    for _, src in _trees():
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
    third_party = {DIST.get(m, m).lower() for m in imported - set(sys.stdlib_module_names) - {"kit"} - NOT_INSTALLED}
    assert third_party == declared - NOT_IMPORTED, third_party ^ (declared - NOT_IMPORTED)
