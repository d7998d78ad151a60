"""`combine`: blend M runs' probabilities and report an honest (out-of-fold) estimate of the blend.

Anything fitted (weights, selections, a meta-model) is scored only on validation rows it was not fitted
on: stratified K-fold over the validation rows, fit on k-1 folds, predict the held-out fold, score the
assembled out-of-fold predictions. When the validation rows come with groups (songs), the folds keep
each group whole, so a blend is never scored on a song it was fitted on. The final model is then
fitted on all validation rows and applied to the test probabilities; its in-sample score is reported
beside the estimate to show the optimism.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from kit.ensemble.folds import cv_folds_of
from kit.ensemble.inputs import check_inputs
from kit.ensemble.stack import fit_stack
from kit.ensemble.weights import Fitted, blend, fit_hillclimb, fit_weighted
from kit.metrics import scores

METHODS = ("mean", "weighted", "hillclimb", "stack")


@dataclass(frozen=True)
class EnsembleResult:
    method: str
    weights: np.ndarray | None  # per member (uniform for mean); None for stack
    val_probs: np.ndarray  # (n_val, K) the predictions behind `estimate` (out-of-fold when anything is fitted)
    test_probs: np.ndarray  # (n_test, K) from the final model fitted on all validation rows
    estimate: dict[str, float]  # accuracy / macro_f1 / log_loss of `val_probs`
    in_sample: dict[str, float]  # the same for the final model scored on the rows it was fitted on
    members_scores: list[dict[str, float]]
    details: dict = field(default_factory=dict)


def combine(
    method: str,
    val_probs: Sequence[np.ndarray],
    y: np.ndarray,
    test_probs: Sequence[np.ndarray],
    *,
    geometric: bool = False,
    n_init: int = 1,
    bagging: int = 0,
    cv_folds: int = 5,
    seed: int = 0,
    groups: np.ndarray | None = None,
    metric: str = "accuracy",
) -> EnsembleResult:
    """Combine members' (n_val, K) validation and (n_test, K) test probabilities with `method` (see METHODS).

    `geometric` blends by normalised weighted geometric mean (mean / weighted / hillclimb; stack always
    works on log-probabilities). `n_init`, `bagging` and `metric` (what it climbs: accuracy, macro_f1 or
    log_loss) are hill-climbing options; `n_init` is capped at the number of members (or bag size).
    `groups` (one per validation row) keeps each group in one fold of every cross-validation.
    Deterministic given `seed`.
    """
    val, labels, test = check_inputs(
        method,
        METHODS,
        val_probs,
        y,
        test_probs,
        n_init=n_init,
        bagging=bagging,
        cv_folds=cv_folds,
        groups=groups,
        metric=metric,
    )
    members = [scores(p, labels) for p in val]
    if method == "mean":
        w = np.full(len(val), 1 / len(val))
        in_val = blend(val, w, geometric)
        s = scores(in_val, labels)
        return EnsembleResult(method, w, in_val, blend(test, w, geometric), s, dict(s), members)

    fit = _fitter(method, geometric=geometric, n_init=n_init, bagging=bagging, seed=seed, metric=metric)
    oof = _out_of_fold(fit, val, labels, groups, cv_folds, seed)
    final = fit(val, labels, groups)
    return EnsembleResult(
        method,
        final.weights,
        oof,
        final.predict(test),
        scores(oof, labels),
        scores(final.predict(val), labels),
        members,
        {**final.details, "cv_folds": cv_folds, "grouped": groups is not None},
    )


Fitter = Callable[[np.ndarray, np.ndarray, np.ndarray | None], Fitted]


def _fitter(method: str, *, geometric: bool, n_init: int, bagging: int, seed: int, metric: str) -> Fitter:
    if method == "weighted":
        return lambda P, y, g: fit_weighted(P, y, geometric)
    if method == "hillclimb":
        return lambda P, y, g: fit_hillclimb(P, y, geometric, n_init, bagging, seed, metric)
    return lambda P, y, g: fit_stack(P, y, seed, g)


def _out_of_fold(fit: Fitter, val: np.ndarray, y: np.ndarray, groups, folds: int, seed: int) -> np.ndarray:
    """Each validation row predicted by an ensemble fitted on the other folds (stratified, shuffled by
    seed; groups kept whole when given)."""
    oof = np.zeros(val.shape[1:])
    for fit_rows, held_out in cv_folds_of(y, groups, folds, seed):
        g = None if groups is None else groups[fit_rows]
        oof[held_out] = fit(val[:, fit_rows], y[fit_rows], g).predict(val[:, held_out])
    return oof
