"""The voice head: multinomial logistic regression on a clip's voice embeddings (late fusion).

Fitted on exactly the clips a model trains on (a holdout's or fold's training clips; the refit's:
every train clip), so validation probabilities stay out-of-sample, and the blend weight (train.voice.weight
auto) is chosen on them. Its inverse L2 strength `c` is
train.voice.c, or (0) the grid value with the best cross-validated log-loss on those training clips,
folds grouped by song when the store has groups. The embeddings are standardised with the training
clips' mean and scale, which the head keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from kit.metrics import log_loss_of

C_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
FALLBACK_C = 1e-3  # when the training clips are too few to cross-validate (a class with < 2 clips)
INNER_FOLDS = 5
WEIGHTS = tuple(round(0.05 * i, 2) for i in range(21))  # the grid train.voice.weight auto chooses from
FILE = "voice.safetensors"  # a run's heads: "<fold>.<array>" (folds 0.., and "refit")


@dataclass(frozen=True)
class VoiceHead:
    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    coef: np.ndarray  # (K, D)
    intercept: np.ndarray  # (K,)
    c: float

    def predict(self, v: np.ndarray) -> np.ndarray:
        """(N, D) embeddings -> (N, K) probabilities."""
        z = ((v - self.mean) / self.scale) @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{f.name}": np.ascontiguousarray(getattr(self, f.name), np.float32) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str) -> VoiceHead:
        get = {f.name: np.asarray(arrays[f"{prefix}.{f.name}"]) for f in fields(cls)}
        return cls(**{**get, "c": float(get["c"].reshape(-1)[0])})


def fit(v: np.ndarray, y: np.ndarray, num_classes: int, c: float, groups: np.ndarray | None = None) -> VoiceHead:
    """Fit on embeddings v (N, D) with labels y; c = 0 chooses it by cross-validation."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(v)
    z = scaler.transform(v)
    c = c or _choose_c(z, y, groups)
    model = _model(c).fit(z, y)
    coef = np.zeros((num_classes, v.shape[1]), np.float64)
    intercept = np.full(num_classes, -1e4)  # a class absent from the training clips is never predicted
    coef[model.classes_], intercept[model.classes_] = _per_class(model)
    return VoiceHead(scaler.mean_, scaler.scale_, coef, intercept, c)


def save(heads: dict[str, VoiceHead], path) -> None:
    from safetensors.numpy import save_file

    save_file({n: a for k, h in heads.items() for n, a in h.arrays(k).items()}, str(path))


def load(path) -> dict[str, VoiceHead]:
    from safetensors.numpy import load_file

    arrays = load_file(str(path))
    return {k: VoiceHead.from_arrays(arrays, k) for k in sorted({n.split(".")[0] for n in arrays})}


def blend(network: np.ndarray, voice: np.ndarray, weight: float) -> np.ndarray:
    return ((1 - weight) * network + weight * voice).astype(np.float32)


def choose_weight(network: np.ndarray, voice: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, float]]:
    """train.voice.weight auto: the weight in WEIGHTS (0 = the network alone) whose blend has the
    lowest log-loss on out-of-sample rows (validation, or K-fold's out-of-fold rows: neither the
    network nor the head trained on them), ties to the smaller weight; with each weight's log-loss."""
    rows = np.arange(len(y))
    losses = {}
    for w in WEIGHTS:
        losses[f"{w:g}"] = log_loss_of((1 - w) * network[rows, y] + w * voice[rows, y])
    best = min(WEIGHTS, key=lambda w: (round(losses[f"{w:g}"], 9), w))
    return float(best), losses


def _model(c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000)


def _per_class(model) -> tuple[np.ndarray, np.ndarray]:
    if len(model.classes_) == 2:  # sklearn keeps one row for two classes: the second class's logit
        return np.vstack([-model.coef_ / 2, model.coef_ / 2]), np.array([-1, 1]) * model.intercept_[0] / 2
    return model.coef_, model.intercept_


def _choose_c(z: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> float:
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    counts = np.bincount(y)
    folds = min(INNER_FOLDS, int(counts[counts > 0].min()))
    if folds < 2 or len(counts[counts > 0]) < 2:
        return FALLBACK_C
    if groups is not None:
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=0)
        if len(set(groups)) < folds:
            return FALLBACK_C
    else:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
    splits = list(splitter.split(z, y, groups))
    classes = np.unique(y)
    losses = []
    for c in C_GRID:
        probs = np.zeros((len(y), len(classes)))
        for tr, te in splits:
            model = _model(c).fit(z[tr], y[tr])
            probs[np.ix_(te, np.searchsorted(classes, model.classes_))] = model.predict_proba(z[te])
        probs = np.clip(probs, 1e-7, 1)  # a class a fold did not train on
        losses.append(log_loss(y, probs / probs.sum(axis=1, keepdims=True), labels=classes))
    return C_GRID[int(np.argmin(losses))]
