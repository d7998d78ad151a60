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
MIN_GAIN = 1e-12  # an addition must lower the log-loss by more than this
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


def fit_hillclimb(P: np.ndarray, y: np.ndarray, geometric: bool, n_init: int, bagging: int, seed: int) -> Fitted:
    """Caruana ensemble selection; with `bagging` bags, select within random halves of the members and average."""
    m = len(P)
    if bagging == 0:
        counts = _select(P, y, geometric, n_init)
        w = counts / counts.sum()
    else:
        rng = np.random.default_rng(seed)
        size = max(1, math.ceil(BAG_FRACTION * m))
        counts = np.zeros(m, dtype=np.int64)
        w = np.zeros(m)
        for _ in range(bagging):
            subset = np.sort(rng.choice(m, size, replace=False))
            bag = _select(P[subset], y, geometric, n_init)
            counts[subset] += bag
            w[subset] += bag / bag.sum()
        w /= bagging
    return Fitted(lambda Q: blend(Q, w, geometric), w, {"selection_counts": counts.tolist()})


def _select(P: np.ndarray, y: np.ndarray, geometric: bool, n_init: int) -> np.ndarray:
    """Selection counts: start from the best `n_init` members, add (with replacement) while log-loss improves."""
    m, n = P.shape[:2]
    rows = np.arange(n)
    logp = np.log(np.clip(P, EPS, None))
    member_loss = -logp[:, rows, y].mean(1)
    counts = np.zeros(m, dtype=np.int64)
    counts[np.argsort(member_loss, kind="stable")[: min(n_init, m)]] = 1
    # what the running sum adds up: true-class probabilities, or (geometric) log-probabilities of all classes
    parts = logp if geometric else P[:, rows, y]
    total = np.tensordot(counts, parts, 1)
    best = _candidate_losses(total[None], counts.sum(), y, geometric)[0]
    for _ in range(MAX_STEPS):
        cand = total[None] + parts
        losses = _candidate_losses(cand, counts.sum() + 1, y, geometric)
        pick = int(losses.argmin())
        if losses[pick] > best - MIN_GAIN:
            break
        counts[pick] += 1
        total, best = cand[pick], losses[pick]
    return counts


def _candidate_losses(cand: np.ndarray, size: int, y: np.ndarray, geometric: bool) -> np.ndarray:
    """Log-loss of each candidate ensemble from its running sum over `size` selected members."""
    if not geometric:  # cand: (C, n) summed true-class probabilities
        return -np.log(np.clip(cand / size, EPS, None)).mean(1)
    z = cand / size  # (C, n, K) mean log-probabilities
    zmax = z.max(2, keepdims=True)
    lse = np.log(np.exp(z - zmax).sum(2)) + zmax[..., 0]
    return -(z[:, np.arange(len(y)), y] - lse).mean(1)
