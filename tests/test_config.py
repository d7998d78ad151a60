"""params.yaml: defaults, overrides and errors that name the key."""

from __future__ import annotations

import pytest

from kit.config import FeaturesParams, Params, load_params, override
from kit.errors import KitError


def test_missing_file_gives_defaults(tmp_path):
    assert load_params(tmp_path / "params.yaml") == Params()


def test_repo_params_yaml_matches_the_defaults():
    from pathlib import Path

    assert load_params(Path(__file__).parents[1] / "params.yaml") == Params()


def test_values_are_typed(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("features:\n  duration: 4\n  logmel:\n    fmax: 8000\ndata:\n  num_classes: null\n")
    params = load_params(p)
    assert params.features.duration == 4.0 and params.features.logmel.fmax == 8000.0
    assert params.data.num_classes is None and params.features.logmel.n_mels == 128


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("features:\n  logmel:\n    n_mels: many\n", "features.logmel.n_mels: expected an integer, got 'many'"),
        (
            "features:\n  frontend: mfcc\n",
            "features.frontend: expected one of logmel, logfreq, fbank, logmel+logfreq, got 'mfcc'",
        ),
        ("data:\n  sauce: demo\n", "unknown key 'data.sauce'"),
        ("trian: {}\n", "unknown key 'trian'"),
        ("features:\n  duration: [3]\n", "features.duration: expected a number"),
        ("data:\n  demo: 5\n", "data.demo: expected a mapping, got 5"),
        ("data:\n  root: [\n", "line 3: not valid YAML"),
    ],
)
def test_bad_params_name_the_key(tmp_path, text, message):
    p = tmp_path / "params.yaml"
    p.write_text(text)
    with pytest.raises(KitError, match=None) as err:
        load_params(p)
    assert message in str(err.value) and str(err.value).startswith(str(p))


def test_override_validates_like_params():
    assert override(FeaturesParams(), frontend="fbank", on_error=None).frontend == "fbank"
    with pytest.raises(KitError, match="command line: --on-error: expected one of fail, silence"):
        override(FeaturesParams(), on_error="skip")
