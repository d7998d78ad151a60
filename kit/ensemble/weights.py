"""Weight-based blends: the blend itself, log-loss-optimal weights and Caruana hill climbing.

`P` is always a (members, rows, classes) array of probabilities and `y` the (rows,) labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

EPS = 1e-15
MAX_STEPS = 100  # hill-climbing additions after the initial members
MIN_GAIN = 1e-12  # an addition must improve the climbed metric by more than this
BAG_FRACTION = 0.5  # share of the members each bag may select from (Caruana et al. 2004)


@dataclass(frozen=True)
class Fitted:
    """An ensemble fitted on some validation rows, ready to predict others."""

    predict: Callable[[np.ndarray], np.ndarray]  # (M, n, K) member probs -> (n, K) ensemble probs
    weights: np.ndarray | None
    details: dict = field(default_factory=dict)


def blend(P: np.ndarray, w: np.ndarray, geometric: bool) -> np.ndarray:
    """Weighted arithmetic mean of the members' probabilities, or their normalised weighted geometric mean."""
    if geometric:
        z = np.tensordot(w, np.log(np.clip(P, EPS, None)), 1)
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    q = np.tensordot(w, P, 1)
    return q / q.sum(1, keepdims=True)


def fit_weighted(P: np.ndarray, y: np.ndarray, geometric: bool) -> Fitted:
    """Non-negative weights summing to 1 that minimise the blend's log-loss (SLSQP on the simplex).

    The log-loss is convex in the weights for both blends, so the solution does not depend on the start.
    """
    from scipy.optimize import minimize

    m, n = P.shape[:2]
    rows = np.arange(n)
    if geometric:
        logp = np.log(np.clip(P, EPS, None))
        logp_y = logp[:, rows, y]  # (M, n)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            z = np.tensordot(w, logp, 1)
            zmax = z.max(1, keepdims=True)
            e = np.exp(z - zmax)
            lse = np.log(e.sum(1)) + zmax[:, 0]
            q = e / e.sum(1, keepdims=True)
            expected = np.einsum("mnk,nk->mn", logp, q)
            return float(-(z[rows, y] - lse).mean()), -(logp_y - expected).mean(1)
    else:
        p_y = P[:, rows, y]  # (M, n)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            q = np.clip(w @ p_y, EPS, None)
            return float(-np.log(q).mean()), -(p_y / q).mean(1)

    res = minimize(
        loss,
        np.full(m, 1 / m),
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints={"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones(m)},
    )
    w = np.clip(res.x, 0, None)
    w /= w.sum()
    return Fitted(lambda Q: blend(Q, w, geometric), w, {"converged": bool(res.success)})


def fit_hillclimb(
    P: np.ndarray, y: np.ndarray, geometric: bool, n_init: int, bagging: int, seed: int, metric: str
) -> Fitted:
    """Caruana ensemble selection on `metric`; with `bagging` bags, select within random halves of the
    members and average. If the result scores below the best single member on `metric` (possible with
    `n_init` > 1 or bags), that member alone is returned: never below it on the rows it is fitted on."""
    m = len(P)
    if bagging == 0:
        counts = _select(P, y, geometric, n_init, metric)
        w = counts / counts.sum()
    else:
        rng = np.random.default_rng(seed)
        size = max(1, math.ceil(BAG_FRACTION * m))
        counts = np.zeros(m, dtype=np.int64)
        w = np.zeros(m)
        for _ in range(bagging):
            subset = np.sort(rng.choice(m, size, replace=False))
            bag = _select(P[subset], y, geometric, n_init, metric)
            counts[subset] += bag
            w[subset] += bag / bag.sum()
        w /= bagging
    details = {"selection_counts": counts.tolist()}
    best = _ranked(P, y, metric)[0]

    def score(v):  # the blend with weights v on `metric`, as a loss
        return _losses(blend(P, v, geometric)[None], 1, y, False, metric)[0][0]

    if score(w) > score(np.eye(m)[best]) + MIN_GAIN:
        w = np.eye(m)[best]
        details["fell_back_to"] = int(best)
    return Fitted(lambda Q: blend(Q, w, geometric), w, details)


def _ranked(P: np.ndarray, y: np.ndarray, metric: str) -> np.ndarray:
    """Members best first by `metric` (ties: the lower log-loss, then the members' order)."""
    return np.lexsort((np.arange(len(P)), *_losses(P, 1, y, False, metric)[::-1]))


def _select(P: np.ndarray, y: np.ndarray, geometric: bool, n_init: int, metric: str) -> np.ndarray:
    """Selection counts: start from the best `n_init` members by `metric` (ties: log-loss, then the
    members' order), add one (with replacement) while that raises `metric`; among additions that
    raise it equally, the one with the lower log-loss."""
    parts = np.log(np.clip(P, EPS, None)) if geometric else P  # what the running sum adds up, all classes
    counts = np.zeros(len(P), dtype=np.int64)
    counts[_ranked(P, y, metric)[:n_init]] = 1
    total = np.tensordot(counts, parts, 1)
    best = _losses(total[None], counts.sum(), y, geometric, metric)[0][0]
    for _ in range(MAX_STEPS):
        cand = total[None] + parts
        target, loss = _losses(cand, counts.sum() + 1, y, geometric, metric)
        pick = int(np.lexsort((loss, target))[0])
        if target[pick] > best - MIN_GAIN:
            break
        counts[pick] += 1
        total, best = cand[pick], target[pick]
    return counts


def _losses(cand: np.ndarray, size: int, y: np.ndarray, geometric: bool, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(metric as a loss, log-loss) of each candidate ensemble, from its (C, n, K) running sum over
    `size` selected members (probabilities, or log-probabilities when geometric)."""
    rows = np.arange(len(y))
    if geometric:
        z = cand / size
        zmax = z.max(2, keepdims=True)
        log_q = z - (np.log(np.exp(z - zmax).sum(2)) + zmax[..., 0])[..., None]
        loss = -log_q[:, rows, y].mean(1)
    else:
        loss = -np.log(np.clip(cand[:, rows, y] / size, EPS, None)).mean(1)
    if metric == "log_loss":
        return loss, loss
    pred = cand.argmax(2)  # the blend's argmax: normalising changes neither blend's order
    if metric == "accuracy":
        return -(pred == y).mean(1), loss
    from sklearn.metrics import f1_score

    return -np.array([f1_score(y, p, average="macro") for p in pred]), loss
