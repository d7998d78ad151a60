"""The fit loop for one fold, readable top to bottom.

    model = standardise(inputs) -> zoo model (train.stack > 1: G models packed into one, see stack.py)
    for each epoch: shuffled (or class-balanced) batches -> augment -> forward -> loss -> step
                    (self-training: confidently classified validation / test clips join the batches)
                    validate the weights (or their moving average) -> keep the best epoch -> checkpoint
    predict validation and test clips with the best epoch's weights

With G stacked members (seeds s, s+1, ...) each draws its own initialisation and batch order, as
its single run would; their batches are augmented together (one generator, one mixup weight per
step; mixup and sum-mixing partners come from the whole step's batch, any member's), each
member's loss is its own batch's mean and the step follows their sum, so every member gets exactly
its own gradient. Each keeps its own best epoch and comes back as its own FoldResult.

Everything random comes from seeded generators saved with the checkpoint (a CPU one shuffles,
augmentation draws from one on the batches' device, dropout from torch's own), so a resumed fold
continues as an uninterrupted one would: exactly on CPU; on CUDA up to cuDNN's nondeterminism.
The model and its batches are channels_last on every device (oneDNN's fast layout on CPU, tensor
cores' on CUDA). The forward pass runs under bf16 autocast (`train.precision`) on CUDA and on CPUs
with native bf16 (AVX512-BF16 or AMX). On CUDA the feature tensors live on the device, no training
step waits for the GPU (the weights' moving average, `ema_epochs`, included), and `train.compile`
replays each step's forward and backward as CUDA graphs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel

from kit.config import TrainParams
from kit.errors import KitError
from kit.training import augment, checkpoint
from kit.training.metrics import better, scores

FREQ_DIM, TIME_DIM = 2, 3  # models and augmentation take (B, C, freq, time) batches


@dataclass
class Fold:
    """One fold's inputs: tensors (possibly on the device) and indices into them."""

    x: object  # (N, C, freq, time) float16 tensor of all train clips (self-training: then the test clips)
    y: object  # (N,) int64 tensor of their labels (-1 for test clips)
    train_idx: np.ndarray
    val_idx: np.ndarray
    x_test: object | None  # (M, C, freq, time) float16 tensor, or None
    num_classes: int
    sum_spec: augment.SumSpec | None = None  # sum mixing, or None when it is off
    log_unit: float = 0.0  # feature units per neper of power (sum mixing, filter augmentation); 0: not log power
    test_rows: np.ndarray = field(default_factory=lambda: np.arange(0))  # rows of x holding test clips (self-training)


@dataclass
class FoldResult:
    best_epoch: int
    best_score: float | None  # None: a fold without validation (refit)
    val_probs: np.ndarray
    test_probs: np.ndarray | None
    weights: dict  # best epoch's state_dict (CPU tensors)
    history: list[dict]
    epochs_run: int


class Standardised(nn.Module):
    """A model with fixed input standardisation in front (saved with its weights)."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def input_stats(x, idx: np.ndarray, mode: str, freq_dim: int):
    """Mean / std of the training fold per channel: per frequency band, global, or identity."""
    shape = [1] * x.dim()
    if mode == "none":
        return torch.zeros(shape), torch.ones(shape)
    total, total_sq, count = 0.0, 0.0, 0
    keep = (1, freq_dim) if mode == "band" else (1,)
    dims = tuple(d for d in range(x.dim()) if d not in keep)
    for chunk in np.array_split(idx, max(1, len(idx) // 512)):
        xb = x[torch.as_tensor(chunk, device=x.device)].double()
        total = total + xb.sum(dims, keepdim=True)
        total_sq = total_sq + (xb * xb).sum(dims, keepdim=True)
        count += xb.numel() // int(np.prod([xb.shape[d] for d in keep]))
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-8).sqrt()
    return mean.float().cpu(), std.float().cpu()


def fit_fold(
    fold: Fold,
    p: TrainParams,
    arch: str,
    seeds: list[int],
    device,
    work: Path,
    on_batch: Callable[[], None] | None = None,
    on_epoch: Callable[[list[dict]], None] | None = None,
    until: int | None = None,
) -> list[FoldResult]:
    """Train one model per seed (more than one: stacked into one) on the fold; their results in
    seed order. on_epoch gets the epoch's record of each.

    With `until` (a refit on every train clip: no validation) it trains the first `until` epochs
    of the `p.epochs` schedule and keeps the last; val_probs are empty, the score None."""
    from kit.models import create_model
    from kit.models.stack import pack

    cuda = device.type == "cuda"
    amp = autocast_dtype(p.precision, device)
    members = len(seeds)
    check_stack(p, members)
    torch.manual_seed(seeds[0])
    gens = [torch.Generator().manual_seed(s) for s in seeds]  # batch orders
    own = cuda or members > 1  # augmentation's own generator (a single CPU run draws it from gens[0])
    aug_gen = torch.Generator(device).manual_seed(seeds[0]) if own else gens[0]  # on the batches' device
    mean, std = input_stats(fold.x, fold.train_idx, p.normalize, FREQ_DIM)

    def build(seed: int):  # a member, initialised as its single run would be
        torch.manual_seed(seed)
        return create_model(
            arch,
            num_classes=fold.num_classes,
            in_chans=fold.x.shape[1],
            drop_rate=p.drop_rate,
            stem=p.stem,
            pretrained=p.pretrained,
        )

    if members == 1:
        net = build(seeds[0])
    else:  # checked on two training clips: the stack must compute what its members do
        example = fold.x[torch.as_tensor(fold.train_idx[:2], device=fold.x.device)].float().cpu()
        net = pack([build(s) for s in seeds], (example - mean) / std, arch)
    model = Standardised(net, mean, std).to(device, memory_format=torch.channels_last)
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest kernels
    step_model = torch.compile(model, mode="reduce-overhead" if cuda else "default") if p.compile else model
    opt = _optimizer(model, p, cuda)
    n_train = len(fold.train_idx)
    steps = steps_per_epoch(n_train, p.batch_size)
    sched = _Schedule(opt, p, steps)
    ema = _moving_average(model, p.ema_epochs, steps)
    judged = ema.module if ema else model  # the weights validated, kept and predicted with
    y_train = fold.y[torch.as_tensor(fold.train_idx, device=fold.y.device)]
    counts = torch.bincount(y_train.cpu(), minlength=fold.num_classes).clamp_min(1).float()
    class_w = (counts.sum() / (fold.num_classes * counts)).to(device) if p.balance == "weights" else None
    sum_spec = fold.sum_spec and dataclasses.replace(fold.sum_spec, table=fold.sum_spec.table.to(device))

    histories: list[list[dict]] = [[] for _ in seeds]
    bests = [{"epoch": -1, "score": None, "weights": None} for _ in seeds]
    pseudo = None  # (rows, labels) the latest weights give the unlabelled clips (self-training)
    start = 0
    saved = checkpoint.load(work)
    if saved is not None:  # resume: replay what is on disk
        tensors, meta = saved
        model.load_state_dict(checkpoint.unprefixed("model", tensors))
        start = meta["epoch"] + 1
        for g, m in enumerate([meta, *meta.get("members", [])]):
            histories[g] = m["history"]
            bests[g] = {
                "epoch": m["best_epoch"],
                "score": m["best_score"],
                "weights": checkpoint.unprefixed(member_key("best", g), tensors),
            }
            gens[g].set_state(tensors[member_key("rng.generator", g)])
        # the schedule replays the epochs on the fresh optimizer, whose saved state (learning rates
        # included) then replaces it: replayed on the saved state, multistep and plateau, which
        # scale the current rate, would decay it twice
        sched.replay(histories[0], p.metric)
        checkpoint.load_optimizer(opt, tensors, meta["optimizer"])
        if ema:
            ema.load_state_dict(checkpoint.unprefixed("ema", tensors))
        state = tensors.get("rng.augment")  # absent when a single run's checkpoint was written on CPU
        if own and state is not None and state.numel() == aug_gen.get_state().numel():  # not another device's
            aug_gen.set_state(state)
        if cuda and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        if "pseudo.rows" in tensors:  # as computed then: a fresh prediction could flip a clip on CUDA
            pseudo = (tensors["pseudo.rows"].numpy(), tensors["pseudo.labels"].numpy())
        torch.set_rng_state(tensors["rng.torch"])

    stale = [len(h) - 1 - b["epoch"] if h else 0 for h, b in zip(histories, bests)]
    pseudo_from = pseudo_start(p) if p.pseudo.start > 0 else None
    # each epoch's checkpoint reaches the disk while the next epoch trains, the last one while the
    # final predictions run; leaving the block waits for it (a failed write raises here)
    validating = until is None  # a refit (every train clip) has nothing to validate on
    with checkpoint.Writer() as writer:
        for epoch in range(start, p.epochs if validating else until):
            if validating and p.early_stop and min(stale) >= p.early_stop:
                break
            started = time.perf_counter()
            fit_idx, y_fit = fold.train_idx, fold.y
            if pseudo_from is not None and epoch >= pseudo_from:
                fit_idx, y_fit = _with_pseudo(fold, *pseudo)
            model.train()
            y_fit_idx = y_fit[torch.as_tensor(fit_idx, device=y_fit.device)]
            orders = [fit_idx[_order(y_fit_idx, p.balance, gen, n_train)] for gen in gens]
            order = torch.as_tensor(np.stack(orders, 1), device=fold.x.device)  # (n_train, members)
            mix = p.augment.mixup_alpha > 0 and epoch < p.augment.mixup_epochs * p.epochs
            loss_sum = torch.zeros(members, device=device)  # summed on the device: no sync per batch
            for i in range(steps):
                idx = order[i * p.batch_size : (i + 1) * p.batch_size].reshape(-1)  # row b * members + g
                xb = fold.x[idx].to(device, non_blocking=True).float()
                yb = y_fit[idx].to(device, non_blocking=True)
                if sum_spec:
                    xb, yb = augment.sum_mix(xb, yb, p.augment, sum_spec, fold.log_unit, aug_gen)
                xb = _augment(xb, p, fold.log_unit, aug_gen).contiguous(memory_format=torch.channels_last)
                full = len(idx) == p.batch_size * members
                forward = step_model if full else model  # a short last batch: not compiled again
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    if mix:
                        xb, ya, yb2, lam = augment.mixup(xb, yb, p.augment.mixup_alpha, aug_gen)
                        logits = forward(_by_member(xb, members)).float()
                        w, w2 = lam.float(), (1 - lam).float()
                        losses = w * _losses(logits, ya, class_w, p.label_smoothing) + w2 * (
                            _losses(logits, yb2, class_w, p.label_smoothing)
                        )
                    else:
                        logits = forward(_by_member(xb, members)).float()
                        losses = _losses(logits, yb, class_w, p.label_smoothing)
                    loss = losses.sum()  # each member's gradient is its own loss's
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if ema:
                    ema.update_parameters(model)
                sched.batch_end(epoch, i)
                loss_sum += losses.detach()
                if on_batch:
                    on_batch()
            _check_finite(loss_sum, epoch, seeds, p.lr)  # before validating and saving: resume restarts before it
            all_probs = predict(judged, fold.x, fold.val_idx, device, p.eval_batch_size, amp) if validating else None
            if pseudo_from is not None and pseudo_from <= epoch + 1 < p.epochs:
                pseudo = _pseudo_labels(judged, fold, all_probs, p, device, amp)
            seconds = time.perf_counter() - started
            records = []
            for g, val_probs in enumerate(_per_member(all_probs) if validating else [None] * members):
                val = scores(val_probs, fold.y.cpu().numpy()[fold.val_idx]) if validating else {}
                record = {
                    "epoch": epoch,
                    "train_loss": loss_sum[g].item() / steps,
                    "lr": opt.param_groups[0]["lr"],
                    **{f"val_{k}": v for k, v in val.items()},
                    **({"pseudo_labels": len(fit_idx) - n_train} if pseudo_from is not None else {}),
                    "seconds": seconds,
                }
                histories[g].append(record)
                records.append(record)
                if not validating:  # a refit keeps its last epoch
                    continue
                if better(p.metric, record[f"val_{p.metric}"], bests[g]["score"]):
                    bests[g] = {"epoch": epoch, "score": record[f"val_{p.metric}"], "weights": _weights(judged, g)}
                    stale[g] = 0
                else:
                    stale[g] += 1
            sched.epoch_end(records[0].get(f"val_{p.metric}"))  # plateau: one member only (run.train checks)
            _save(writer, work, model, opt, bests, histories, epoch, gens, aug_gen, ema, pseudo)
            if on_epoch:
                on_epoch(records)

        results = []
        for g, (history, best) in enumerate(zip(histories, bests)):
            if p.keep == "best" and validating:
                weights, kept = best["weights"], best["epoch"]
            else:  # the last epoch run (its score is in the history; a refit has none)
                weights, kept = _weights(judged, g), history[-1]["epoch"]
            single = model
            if members > 1:
                single = Standardised(build(seeds[g]), mean, std).to(device, memory_format=torch.channels_last)
            single.load_state_dict(weights)
            val_probs = np.zeros((0, fold.num_classes), np.float32)
            if validating:
                val_probs = predict(single, fold.x, fold.val_idx, device, p.eval_batch_size, amp)
            test_probs = None
            if fold.x_test is not None:
                test_probs = predict(single, fold.x_test, np.arange(len(fold.x_test)), device, p.eval_batch_size, amp)
            weights = {k: v.detach().cpu().clone() for k, v in single.state_dict().items()}
            score = next(r.get(f"val_{p.metric}") for r in history if r["epoch"] == kept)
            results.append(FoldResult(kept, score, val_probs, test_probs, weights, history, len(history)))
    return results


def check_stack(p: TrainParams, members: int) -> None:
    """Options that act on one model's view of the training refuse a stack of several."""
    if members > 1 and (p.pseudo.start > 0 or p.scheduler == "plateau" or p.early_stop):
        raise KitError(
            "train.stack > 1 does not combine with self-training (train.pseudo), the plateau scheduler"
            " or early stopping: the members would disagree on what to do"
        )


def _by_member(xb, members: int):
    """(B * members, C, F, T) rows b * members + g -> (B, members, C, F, T); one member: as is."""
    return xb if members == 1 else xb.view(-1, members, *xb.shape[1:])


def _check_finite(loss_sum: torch.Tensor, epoch: int, seeds: list[int], lr: float) -> None:
    bad = (~torch.isfinite(loss_sum)).nonzero().flatten().tolist()
    if bad:
        who = f" (seed {seeds[bad[0]]})" if len(seeds) > 1 else ""
        raise KitError(f"training diverged in epoch {epoch}{who}: the loss is not finite; lower --lr (now {lr:g})")


def _losses(logits, y, class_w, smoothing: float):
    """Each member's mean cross-entropy over its batch: (members,), from (B, members, K) logits and
    (B * members,) labels, or (1,) from one model's (B, K)."""
    if logits.dim() == 2:
        return F.cross_entropy(logits, y, class_w, label_smoothing=smoothing).reshape(1)
    y = y.view(logits.shape[:2])
    per = F.cross_entropy(logits.transpose(1, 2), y, class_w, reduction="none", label_smoothing=smoothing)
    return per.mean(0) if class_w is None else per.sum(0) / class_w[y].sum(0)  # as reduction="mean" would


def _per_member(probs: np.ndarray) -> list[np.ndarray]:
    """predict's output as one (N, K) array per member."""
    return [probs] if probs.ndim == 2 else list(probs.transpose(1, 0, 2))


def _weights(model, g: int) -> dict:
    """Member g's state_dict (copies), as its own single model's."""
    from kit.models.stack import Stacked, member_state

    if not isinstance(model.net, Stacked):
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    stats = {"mean": model.mean.clone(), "std": model.std.clone()}
    return stats | checkpoint.prefixed("net", member_state(model.net, g))


def member_key(name: str, g: int) -> str:
    """Checkpoint name of member g's `name` (member 0: as a single run's checkpoint has it)."""
    return name if g == 0 else f"{name}{g}"


def autocast_dtype(precision: str, device) -> torch.dtype | None:
    """The dtype the forward pass autocasts to, None for fp32. auto: bf16 on CUDA and on CPUs with
    native bf16 (oneDNN's bf16 convolutions: a cnn4f epoch ~1.6x fp32); fp32 on other CPUs, where
    bf16 is emulated and slower."""
    if precision == "fp32":
        return None
    cpu = [getattr(torch.cpu, f, lambda: False) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    native = device.type == "cuda" or any(check() for check in cpu)  # (torch < 2.5 lacks both checks)
    return torch.bfloat16 if precision == "bf16" or native else None


def predict(model, x, idx: np.ndarray, device, batch_size: int, amp: torch.dtype | None) -> np.ndarray:
    """Softmax probabilities (len(idx), K) float32, in idx order ((len(idx), G, K) from G stacked
    members); amp: the autocast dtype (None: fp32)."""
    model.eval()
    out = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        for start in range(0, len(idx), batch_size):
            sel = torch.as_tensor(idx[start : start + batch_size], device=x.device)
            xb = x[sel].to(device).float().contiguous(memory_format=torch.channels_last)
            out.append(torch.softmax(model(xb).float(), dim=-1).cpu())
    return torch.cat(out).numpy()


def _augment(xb, p: TrainParams, log_unit: float, gen):
    a = p.augment
    if a.freq_shift > 0:
        xb = augment.freq_shift(xb, a.freq_shift, FREQ_DIM, gen)
    if a.filter_db > 0:
        xb = augment.filter_augment(xb, a.filter_db, a.filter_points, log_unit, FREQ_DIM, gen)
    if a.freq_masks or a.time_masks:
        xb = augment.spec_augment(xb, a, TIME_DIM, FREQ_DIM, gen)
    if a.time_reverse > 0:
        xb = augment.time_reverse(xb, a.time_reverse, TIME_DIM, gen)
    if a.time_shift > 0:
        xb = augment.time_shift(xb, a.time_shift, TIME_DIM, gen)
    return xb


def pseudo_start(p: TrainParams) -> int:
    """The first epoch that trains on pseudo-labels (at least one epoch comes before it)."""
    return max(1, round(p.pseudo.start * p.epochs))


def _pseudo_labels(model, fold: Fold, val_probs: np.ndarray, p: TrainParams, device, amp):
    """(rows, labels): the unlabelled clips (validation, then test) that `model` classifies with at
    least the threshold's confidence, under the classes it gives them. val_probs: its validation
    predictions."""
    probs = [val_probs]
    if len(fold.test_rows):
        probs.append(predict(model, fold.x, fold.test_rows, device, p.eval_batch_size, amp))
    probs = np.concatenate(probs)
    keep = probs.max(1) >= p.pseudo.threshold
    return np.concatenate([fold.val_idx, fold.test_rows])[keep], probs[keep].argmax(1)


def _with_pseudo(fold: Fold, rows: np.ndarray, labels: np.ndarray):
    """The epoch's training rows (train fold + pseudo-labelled rows) and labels for every row of x."""
    y = fold.y.clone()
    y[torch.as_tensor(rows, device=y.device)] = torch.as_tensor(labels, device=y.device)
    return np.concatenate([fold.train_idx, rows]), y


def _order(y, balance: str, gen, n: int):
    """n positions into y (the epoch's training labels): the first n of a shuffle, or class-balanced draws."""
    if balance == "sampler":
        counts = torch.bincount(y.cpu()).float()
        weights = (1.0 / counts)[y.cpu()]
        return torch.multinomial(weights, n, replacement=True, generator=gen).numpy()
    return torch.randperm(len(y), generator=gen)[:n].numpy()


def _optimizer(model, p: TrainParams, cuda: bool):
    if p.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay, nesterov=True
        )
    return torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay, fused=cuda)


class _Schedule:
    """The learning-rate schedule, stepped per batch or per epoch, and replayable on resume."""

    def __init__(self, opt, p: TrainParams, steps: int):
        total = p.epochs * steps
        self.kind, self.steps = ("none" if p.scheduler == "onecycle" and total < 4 else p.scheduler), steps
        if self.kind == "onecycle":  # warm up over a quarter of the steps (at least 2)
            self.s = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=p.lr, total_steps=total, pct_start=min(0.5, max(0.25, 2 / total))
            )
        elif self.kind == "cosine_restarts":
            self.s = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=max(1, p.restart_epochs))
        elif self.kind == "plateau":
            mode = "min" if p.metric == "log_loss" else "max"
            self.s = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=p.gamma, patience=p.patience)
        elif self.kind == "multistep":
            self.s = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=p.milestones, gamma=p.gamma)
        else:
            self.s = None

    def batch_end(self, epoch: int, i: int) -> None:
        if self.kind == "onecycle":
            self.s.step()
        elif self.kind == "cosine_restarts":
            self.s.step(epoch + (i + 1) / self.steps)

    def epoch_end(self, metric: float) -> None:
        if self.kind == "plateau":
            self.s.step(metric)
        elif self.kind == "multistep":
            self.s.step()

    def replay(self, history: list[dict], metric: str) -> None:
        for record in history:
            for i in range(self.steps):
                self.batch_end(record["epoch"], i)
            self.epoch_end(record.get(f"val_{metric}"))


def _moving_average(model, ema_epochs: float, steps: int):
    """An exponential moving average of the weights and BatchNorm buffers, updated every step with
    a time constant of `ema_epochs` epochs; None when off."""
    if ema_epochs <= 0:
        return None
    return _MovingAverage(model, decay=1.0 - 1.0 / max(1.0, ema_epochs * steps))


class _MovingAverage(AveragedModel):
    """torch's AveragedModel with its EMA arithmetic (get_ema_multi_avg_fn; its state_dict is the
    checkpoint's), updated without copying its step count to the device: torch's own update does
    that every step, a blocking copy that makes each CUDA step wait for the GPU. The count stays on
    the CPU (AveragedModel puts it there), so reading it costs nothing."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__(model, use_buffers=True)
        self.decay = decay

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        mine = [*self.module.parameters(), *self.module.buffers()]
        theirs = [t.detach() for t in (*model.parameters(), *model.buffers())]
        if self.n_averaged.item() == 0:  # the first step starts the average at the weights
            for m, t in zip(mine, theirs, strict=True):
                m.copy_(t)
        else:
            averaged, latest = [], []  # the floating-point tensors, lerped together
            for m, t in zip(mine, theirs, strict=True):
                if m.is_floating_point():
                    averaged.append(m)
                    latest.append(t)
                else:  # BatchNorm's batch counts
                    m.copy_(m * self.decay + t * (1 - self.decay))
            if averaged:
                torch._foreach_lerp_(averaged, latest, 1 - self.decay)
        self.n_averaged += 1


def _save(writer, work: Path, model, opt, bests, histories, epoch: int, gens, aug_gen, ema, pseudo) -> None:
    """The checkpoint: member 0 under a single run's names, members 1.. beside it."""
    opt_tensors, opt_rest = checkpoint.flatten_optimizer(opt.state_dict())
    tensors = {
        **checkpoint.prefixed("model", model.state_dict()),
        **(checkpoint.prefixed("ema", ema.state_dict()) if ema else {}),
        **opt_tensors,
        "rng.torch": torch.get_rng_state(),
        **({"rng.augment": aug_gen.get_state()} if aug_gen is not gens[0] else {}),
        **({"rng.cuda": torch.cuda.get_rng_state(aug_gen.device)} if aug_gen.device.type == "cuda" else {}),
        **(
            {"pseudo.rows": torch.from_numpy(pseudo[0]), "pseudo.labels": torch.from_numpy(pseudo[1])}
            if pseudo is not None
            else {}
        ),
    }
    members = [{"best_epoch": b["epoch"], "best_score": b["score"], "history": h} for b, h in zip(bests, histories)]
    for g, (best, gen) in enumerate(zip(bests, gens)):
        tensors |= checkpoint.prefixed(member_key("best", g), best["weights"] or {})  # None: a refit (keeps its last)
        tensors[member_key("rng.generator", g)] = gen.get_state()
    meta = {"epoch": epoch, **members[0], "optimizer": opt_rest, **({"members": members[1:]} if members[1:] else {})}
    writer.save(work, tensors, meta)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Batches per epoch; a last batch of one example is dropped (it breaks BatchNorm)."""
    return max(1, n_train // batch_size + (n_train % batch_size > 1))
