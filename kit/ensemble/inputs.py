"""Input checks for `combine`: every user-fixable problem becomes a one-line `KitError`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kit.errors import KitError
from kit.metrics import HIGHER_IS_BETTER

ROW_SUM_TOL = 1e-3


def check_inputs(
    method: str,
    methods: tuple[str, ...],
    val_probs: Sequence[np.ndarray],
    y: np.ndarray,
    test_probs: Sequence[np.ndarray],
    *,
    n_init: int,
    bagging: int,
    cv_folds: int,
    groups: np.ndarray | None = None,
    metric: str = "accuracy",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (M, n_val, K) validation probs, (n_val,) int labels and (M, n_test, K) test probs."""
    if method not in methods:
        raise KitError(f"unknown ensemble method {method!r}: choose one of {', '.join(methods)}")
    if metric not in HIGHER_IS_BETTER:
        raise KitError(f"unknown ensemble metric {metric!r}: choose one of {', '.join(HIGHER_IS_BETTER)}")
    if len(val_probs) == 0:
        raise KitError("no ensemble members: give at least one run")
    if len(test_probs) != len(val_probs):
        raise KitError(
            f"{len(val_probs)} validation but {len(test_probs)} test probability sets: give one of each per member"
        )
    val = _stack_members(val_probs, "validation")
    test = _stack_members(test_probs, "test")
    if test.shape[2] != val.shape[2]:
        raise KitError(
            f"class count mismatch: test probabilities have {test.shape[2]} classes, validation {val.shape[2]}"
        )
    if val.shape[1] == 0:
        raise KitError("no validation rows: members need validation probabilities to be scored")
    labels = _check_labels(y, n=val.shape[1], k=val.shape[2])
    if n_init < 1:
        raise KitError(f"n_init={n_init}: must be at least 1")
    if bagging < 0:
        raise KitError(f"bagging={bagging}: must be 0 (off) or a number of bags")
    if method != "mean":
        _check_folds(labels, cv_folds)
        if groups is not None:
            _check_groups(groups, len(labels), cv_folds)
    return val, labels, test


def _stack_members(probs: Sequence[np.ndarray], what: str) -> np.ndarray:
    arrays = [np.asarray(p, dtype=np.float64) for p in probs]
    for i, p in enumerate(arrays):
        if p.ndim != 2:
            raise KitError(f"member {i}: {what} probabilities have shape {p.shape}, expected (rows, classes)")
        if p.shape != arrays[0].shape:
            raise KitError(
                f"member {i}: {what} probabilities are {p.shape} but member 0's are {arrays[0].shape}: "
                "all members must score the same clips with the same classes"
            )
        if not np.isfinite(p).all():
            raise KitError(f"member {i}: {what} probabilities contain NaN or inf")
        if (p < 0).any():
            raise KitError(
                f"member {i}: {what} probabilities contain negative values: pass softmax outputs, not logits"
            )
        sums = p.sum(1)
        bad = np.flatnonzero(np.abs(sums - 1) > ROW_SUM_TOL)
        if bad.size:
            raise KitError(
                f"member {i}: {what} probability rows must sum to 1 (row {bad[0]} sums to {sums[bad[0]]:.4g}): "
                "pass softmax outputs, not logits"
            )
    return np.stack(arrays)


def _check_labels(y: np.ndarray, *, n: int, k: int) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != n:
        raise KitError(f"labels have shape {labels.shape}, expected ({n},): one label per validation row")
    if labels.dtype.kind not in "iu":
        raise KitError(f"labels have dtype {labels.dtype}, expected integer class indices")
    if labels.min() < 0 or labels.max() >= k:
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise KitError(f"labels out of range: found {bad}, expected 0..{k - 1} for {k} classes")
    return labels.astype(np.int64)


def _check_folds(labels: np.ndarray, cv_folds: int) -> None:
    if cv_folds < 2:
        raise KitError(f"cv_folds={cv_folds}: need at least 2 folds for an honest estimate")
    counts = np.bincount(labels)
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise KitError(f"validation labels hold only class {present[0]}: need at least two classes to fit an ensemble")
    rare = present[counts[present].argmin()]
    if counts[rare] < cv_folds:
        raise KitError(
            f"class {rare} has {counts[rare]} validation rows, fewer than cv_folds={cv_folds}: "
            "lower cv_folds or use method 'mean'"
        )


def _check_groups(groups: np.ndarray, n: int, cv_folds: int) -> None:
    if len(groups) != n:
        raise KitError(f"{len(groups)} groups for {n} validation rows: give one group per row")
    distinct = len(np.unique(groups))
    if distinct < cv_folds:
        raise KitError(
            f"the validation rows hold {distinct} groups, fewer than cv_folds={cv_folds}: lower cv_folds "
            "or use method 'mean'"
        )
