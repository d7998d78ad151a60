"""Stacking: a multinomial logistic regression on the members' concatenated log-probabilities."""

from __future__ import annotations

import numpy as np

from kit.ensemble.folds import cv_folds_of
from kit.ensemble.weights import Fitted

CS = (0.01, 0.1, 1.0, 10.0)  # L2 strengths tried by the inner CV
FALLBACK_C = 1.0  # when some class is too rare (or in too few groups) for an inner CV
INNER_FOLDS = 3
LOG_FLOOR = 1e-6  # log-probabilities are clipped at log(1e-6) so one overconfident zero cannot dominate


def fit_stack(P: np.ndarray, y: np.ndarray, seed: int, groups: np.ndarray | None = None) -> Fitted:
    """Fit the meta-model on these rows, picking C by stratified inner CV (log-loss; groups kept whole
    when given) when every class allows it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from threadpoolctl import threadpool_limits

    k = P.shape[2]
    counts = np.bincount(y)
    inner = min(INNER_FOLDS, int(counts[counts > 0].min()))
    if groups is not None:
        inner = min(inner, len(np.unique(groups)))
    model = LogisticRegression(C=FALLBACK_C, max_iter=2000)
    cv = list(cv_folds_of(y, groups, inner, seed)) if inner >= 2 else []
    # a fold whose fitting rows miss a class cannot score log-loss: then C stays FALLBACK_C
    if cv and all(len(np.unique(y[fit_rows])) == len(np.unique(y)) for fit_rows, _ in cv):
        model = GridSearchCV(model, {"C": list(CS)}, scoring="neg_log_loss", cv=cv)
    # the meta-model is small: one BLAS thread is fast, and many thrash when a CPU is shared (10-40x slower)
    with threadpool_limits(1):
        model.fit(_features(P), y)
    c = float(model.best_params_["C"]) if isinstance(model, GridSearchCV) else FALLBACK_C

    def predict(Q: np.ndarray) -> np.ndarray:
        out = np.zeros((Q.shape[1], k))
        out[:, model.classes_] = model.predict_proba(_features(Q))
        return out

    return Fitted(predict, None, {"C": c})


def _features(P: np.ndarray) -> np.ndarray:
    """(M, n, K) probabilities -> (n, M*K) log-probabilities, member-major."""
    return np.log(np.clip(P, LOG_FLOOR, None)).transpose(1, 0, 2).reshape(P.shape[1], -1)
