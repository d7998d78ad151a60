"""Cross-validation folds over validation rows, shared by the outer estimate and the stack's inner CV."""

from __future__ import annotations

import numpy as np


def cv_folds_of(y: np.ndarray, groups: np.ndarray | None, folds: int, seed: int):
    """(fit rows, held-out rows) pairs: stratified K-fold, or stratified group K-fold."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is None:
        return StratifiedKFold(folds, shuffle=True, random_state=seed).split(y, y)
    return StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(y, y, groups)
