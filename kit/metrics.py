"""Classification metrics from probabilities: what run.json, the registry and ensembles report."""

from __future__ import annotations

import numpy as np

HIGHER_IS_BETTER = {"accuracy": True, "macro_f1": True, "log_loss": False}


def scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """accuracy, macro-F1 (over the classes present in labels or predictions) and log-loss."""
    from sklearn.metrics import f1_score

    labels = np.asarray(labels)
    pred = probs.argmax(1)
    picked = probs[np.arange(len(labels)), labels]
    return {
        "accuracy": float((pred == labels).mean()),
        "macro_f1": float(f1_score(labels, pred, average="macro")),
        "log_loss": log_loss_of(picked),
    }


def log_loss_of(picked: np.ndarray) -> float:
    """Log-loss from each row's probability of its true class."""
    return float(-np.log(np.clip(picked, 1e-15, 1)).mean())


def confusion(labels: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: row = true class, column = predicted class."""
    return np.bincount(np.asarray(labels) * k + np.asarray(pred), minlength=k * k).reshape(k, k)


def better(metric: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    return new > old if HIGHER_IS_BETTER[metric] else new < old
