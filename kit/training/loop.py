"""The fit loop for one fold, readable top to bottom:

    state = build(...)                    model = standardise(inputs) -> zoo model, optimiser, schedule, EMA
    resume(state, checkpoint)             replay what an earlier process saved
    for each epoch:
        train_epoch(state, epoch)         shuffled (or class-balanced) batches -> augment -> loss -> step
        validate(state)                   the weights (or their moving average) on the validation clips
        keep_best(state, ...)             each member's best epoch so far
        save_checkpoint(state, epoch)     written in the background while the next epoch trains
    final_predictions(state)              validation and test clips with each member's kept weights

With G packed members (seeds s, s+1, ...; train.pack) each draws its own initialisation and batch
order, as its single run would; their batches are augmented together (one generator, one mixup
weight per step; mixup and sum-mixing partners come from the whole step's batch, any member's),
each member's loss is its own batch's mean and the step follows their sum, so every member gets
exactly its own gradient. Each keeps its own best epoch and comes back as its own FoldResult.

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
from typing import Any

import numpy as np
import torch

from kit.device import autocast_dtype
from kit.metrics import better, scores
from kit.params import TrainParams
from kit.params.load import pseudo_start
from kit.training import augment, checkpoint, step
from kit.training.ema import moving_average
from kit.training.fold import Fold, FoldResult
from kit.training.model import (
    FREQ_DIM,
    Standardised,
    input_stats,
    member_key,
    member_weights,
    predict,
)
from kit.training.pseudo import pseudo_labels, with_pseudo
from kit.training.schedule import Schedule

__all__ = ["Fold", "FoldResult", "fit_fold"]


@dataclass
class Member:
    """One seed's own view of the fold: its batch order, history and best epoch."""

    gen: torch.Generator  # its batch order
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float | None = None
    best_weights: dict | None = None  # None: nothing kept yet (a refit keeps its last epoch instead)
    stale: int = 0  # epochs since its best


@dataclass
class FoldState:
    """Everything one fold's training holds, fixed (top) and changing (bottom)."""

    fold: Fold
    p: TrainParams
    seeds: list[int]  # one per member
    device: torch.device
    amp: torch.dtype | None  # autocast dtype; None: fp32
    build: Callable[[int], Any]  # a member's fresh network, initialised as its single run's
    model: Standardised
    step_model: Any  # the model steps run through (compiled or not)
    opt: torch.optim.Optimizer
    sched: Schedule
    ema: Any  # MovingAverage or None
    aug_gen: torch.Generator  # augmentation's draws (a single CPU run: its member's generator)
    steps: int  # batches per epoch
    class_w: torch.Tensor | None
    sum_spec: augment.SumSpec | None
    members: list[Member]
    validating: bool  # False: a refit on every train clip (nothing to validate on)
    pseudo: tuple[np.ndarray, np.ndarray] | None = None  # (rows, labels) of the latest pseudo-labels
    pseudo_from: int | None = None  # first epoch with pseudo-labels; None: self-training off

    @property
    def judged(self):
        """The weights validated, kept and predicted with: the moving average's, or the model's."""
        return self.ema.module if self.ema else self.model


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
    """Train one model per seed (more than one: packed into one) on the fold; their results in
    seed order. on_epoch gets the epoch's record of each.

    With `until` (a refit on every train clip: no validation) it trains the first `until` epochs
    of the `p.epochs` schedule and keeps the last; val_probs are empty, the score None."""
    state = build(fold, p, arch, seeds, device, validating=until is None)
    start = resume(state, checkpoint.load(work))
    # each epoch's checkpoint reaches the disk while the next epoch trains, the last one while the
    # final predictions run; leaving the block waits for it (a failed write raises here)
    with checkpoint.Writer() as writer:
        for epoch in range(start, p.epochs if state.validating else until):
            if state.validating and p.early_stop and min(m.stale for m in state.members) >= p.early_stop:
                break
            started = time.perf_counter()
            loss_sum, fitted = train_epoch(state, epoch, on_batch)
            step.check_finite(loss_sum, epoch, seeds, p.lr)  # before validating and saving: resume restarts before it
            val_probs = validate(state)
            if state.pseudo_from is not None and state.pseudo_from <= epoch + 1 < p.epochs:
                state.pseudo = pseudo_labels(state.judged, fold, val_probs, p, device, state.amp)
            records = keep_best(state, epoch, loss_sum, val_probs, fitted, time.perf_counter() - started)
            state.sched.epoch_end(records[0].get(f"val_{p.metric}"))  # plateau: one member only (schema checks)
            save_checkpoint(state, writer, work, epoch)
            if on_epoch:
                on_epoch(records)
        return final_predictions(state)


def build(fold: Fold, p: TrainParams, arch: str, seeds: list[int], device, validating: bool) -> FoldState:
    """The model (packed when several seeds), optimiser, schedule and generators of a fresh fold."""
    from kit.models import create_model
    from kit.models.pack import pack

    cuda = device.type == "cuda"
    torch.manual_seed(seeds[0])
    gens = [torch.Generator().manual_seed(s) for s in seeds]  # batch orders
    own = cuda or len(seeds) > 1  # augmentation's own generator (a single CPU run draws it from gens[0])
    aug_gen = torch.Generator(device).manual_seed(seeds[0]) if own else gens[0]  # on the batches' device
    mean, std = input_stats(fold.x, fold.train_idx, p.normalize, FREQ_DIM)

    def build_net(seed: int):  # a member, initialised as its single run would be
        torch.manual_seed(seed)
        kw = {"drop_rate": p.drop_rate, "stem": p.stem, "pretrained": p.pretrained}
        return create_model(arch, num_classes=fold.num_classes, in_chans=fold.x.shape[1], **kw)

    if len(seeds) == 1:
        net = build_net(seeds[0])
    else:  # checked on two training clips: the packed model must compute what its members do
        example = fold.x[torch.as_tensor(fold.train_idx[:2], device=fold.x.device)].float().cpu()
        net = pack([build_net(s) for s in seeds], (example - mean) / std, arch)
    model = Standardised(net, mean, std).to(device, memory_format=torch.channels_last)
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest kernels
    step_model = torch.compile(model, mode="reduce-overhead" if cuda else "default") if p.compile else model
    opt = step.optimizer(model, p, cuda)
    steps = step.steps_per_epoch(len(fold.train_idx), p.batch_size)
    return FoldState(
        fold=fold,
        p=p,
        seeds=seeds,
        device=device,
        amp=autocast_dtype(p.precision, device),
        build=lambda seed: Standardised(build_net(seed), mean, std).to(device, memory_format=torch.channels_last),
        model=model,
        step_model=step_model,
        opt=opt,
        sched=Schedule(opt, p, steps),
        ema=moving_average(model, p.ema_epochs, steps),
        aug_gen=aug_gen,
        steps=steps,
        class_w=_class_weights(fold, p, device),
        sum_spec=fold.sum_spec and dataclasses.replace(fold.sum_spec, table=fold.sum_spec.table.to(device)),
        members=[Member(g) for g in gens],
        validating=validating,
        pseudo_from=pseudo_start(p.pseudo.start, p.epochs) if p.pseudo.start > 0 else None,
    )


def _class_weights(fold: Fold, p: TrainParams, device) -> torch.Tensor | None:
    """train.balance weights: inverse class frequencies of the training fold."""
    if p.balance != "weights":
        return None
    y_train = fold.y[torch.as_tensor(fold.train_idx, device=fold.y.device)]
    counts = torch.bincount(y_train.cpu(), minlength=fold.num_classes).clamp_min(1).float()
    return (counts.sum() / (fold.num_classes * counts)).to(device)


def resume(state: FoldState, saved: tuple[dict, dict] | None) -> int:
    """Replay a checkpoint onto a fresh state; the first epoch still to train."""
    if saved is None:
        return 0
    tensors, meta = saved
    state.model.load_state_dict(checkpoint.unprefixed("model", tensors))
    for g, (member, m) in enumerate(zip(state.members, [meta, *meta.get("members", [])])):
        member.history, member.best_epoch, member.best_score = m["history"], m["best_epoch"], m["best_score"]
        member.best_weights = checkpoint.unprefixed(member_key("best", g), tensors)
        member.gen.set_state(tensors[member_key("rng.generator", g)])
        member.stale = len(member.history) - 1 - member.best_epoch if member.history else 0
    # the schedule replays the epochs on the fresh optimizer, whose saved state (learning rates
    # included) then replaces it: replayed on the saved state, multistep and plateau, which
    # scale the current rate, would decay it twice
    state.sched.replay(state.members[0].history, state.p.metric)
    checkpoint.load_optimizer(state.opt, tensors, meta["optimizer"])
    if state.ema:
        state.ema.load_state_dict(checkpoint.unprefixed("ema", tensors))
    saved_aug = tensors.get("rng.augment")  # absent when a single run's checkpoint was written on CPU
    own = state.aug_gen is not state.members[0].gen
    if own and saved_aug is not None and saved_aug.numel() == state.aug_gen.get_state().numel():  # same device
        state.aug_gen.set_state(saved_aug)
    if state.device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], state.device)
    if "pseudo.rows" in tensors:  # as computed then: a fresh prediction could flip a clip on CUDA
        state.pseudo = (tensors["pseudo.rows"].numpy(), tensors["pseudo.labels"].numpy())
    torch.set_rng_state(tensors["rng.torch"])
    return meta["epoch"] + 1


def train_epoch(state: FoldState, epoch: int, on_batch: Callable[[], None] | None) -> tuple[torch.Tensor, int]:
    """One pass over the epoch's batches; each member's summed loss, and the clips trained on
    (the train fold, plus pseudo-labelled ones when self-training)."""
    fold, p, device, members = state.fold, state.p, state.device, len(state.members)
    fit_idx, y_fit = fold.train_idx, fold.y
    if state.pseudo_from is not None and epoch >= state.pseudo_from:
        fit_idx, y_fit = with_pseudo(fold, *state.pseudo)
    state.model.train()
    y_fit_idx = y_fit[torch.as_tensor(fit_idx, device=y_fit.device)]
    n_train = len(fold.train_idx)
    orders = [fit_idx[step.order(y_fit_idx, p.balance, m.gen, n_train)] for m in state.members]
    order = torch.as_tensor(np.stack(orders, 1), device=fold.x.device)  # (n_train, members)
    mix = p.augment.mixup_alpha > 0 and epoch < p.augment.mixup_epochs * p.epochs
    loss_sum = torch.zeros(members, device=device)  # summed on the device: no sync per batch
    for i in range(state.steps):
        idx = order[i * p.batch_size : (i + 1) * p.batch_size].reshape(-1)  # row b * members + g
        xb = fold.x[idx].to(device, non_blocking=True).float()
        yb = y_fit[idx].to(device, non_blocking=True)
        if state.sum_spec:
            xb, yb = augment.sum_mix(xb, yb, p.augment, state.sum_spec, fold.log_unit, state.aug_gen)
        xb = step.augment_batch(xb, p, fold.log_unit, state.aug_gen).contiguous(memory_format=torch.channels_last)
        forward = state.step_model if len(idx) == p.batch_size * members else state.model  # a short last batch
        with torch.autocast(device.type, dtype=state.amp, enabled=state.amp is not None):
            if mix:
                xb, ya, yb2, lam = augment.mixup(xb, yb, p.augment.mixup_alpha, state.aug_gen)
                logits = forward(step.by_member(xb, members)).float()
                w, w2 = lam.float(), (1 - lam).float()
                losses = w * step.losses(logits, ya, state.class_w, p.label_smoothing) + w2 * (
                    step.losses(logits, yb2, state.class_w, p.label_smoothing)
                )
            else:
                logits = forward(step.by_member(xb, members)).float()
                losses = step.losses(logits, yb, state.class_w, p.label_smoothing)
            loss = losses.sum()  # each member's gradient is its own loss's
        state.opt.zero_grad(set_to_none=True)
        loss.backward()
        state.opt.step()
        if state.ema:
            state.ema.update_parameters(state.model)
        state.sched.batch_end(epoch, i)
        loss_sum += losses.detach()
        if on_batch:
            on_batch()
    return loss_sum, len(fit_idx)


def validate(state: FoldState) -> np.ndarray | None:
    """The judged weights' validation probabilities ((N, K), or (N, G, K) packed); None in a refit."""
    if not state.validating:
        return None
    p = state.p
    return predict(state.judged, state.fold.x, state.fold.val_idx, state.device, p.eval_batch_size, state.amp)


def keep_best(
    state: FoldState, epoch: int, loss_sum: torch.Tensor, val_probs: np.ndarray | None, fitted: int, seconds: float
) -> list[dict]:
    """Each member's record of the epoch, appended to its history; its best weights when it improved."""
    p, fold = state.p, state.fold
    probs = step.per_member(val_probs) if state.validating else [None] * len(state.members)
    records = []
    for g, (member, member_probs) in enumerate(zip(state.members, probs)):
        val = scores(member_probs, fold.y.cpu().numpy()[fold.val_idx]) if state.validating else {}
        record = {
            "epoch": epoch,
            "train_loss": loss_sum[g].item() / state.steps,
            "lr": state.opt.param_groups[0]["lr"],
            **{f"val_{k}": v for k, v in val.items()},
            **({"pseudo_labels": fitted - len(fold.train_idx)} if state.pseudo_from is not None else {}),
            "seconds": seconds,
        }
        member.history.append(record)
        records.append(record)
        if not state.validating:  # a refit keeps its last epoch
            continue
        if better(p.metric, record[f"val_{p.metric}"], member.best_score):
            member.best_epoch, member.best_score = epoch, record[f"val_{p.metric}"]
            member.best_weights = member_weights(state.judged, g)
            member.stale = 0
        else:
            member.stale += 1
    return records


def save_checkpoint(state: FoldState, writer: checkpoint.Writer, work: Path, epoch: int) -> None:
    """The checkpoint: member 0 under a single run's names, members 1.. beside it."""
    opt_tensors, opt_rest = checkpoint.flatten_optimizer(state.opt.state_dict())
    aug, pseudo = state.aug_gen, state.pseudo
    tensors = {
        **checkpoint.prefixed("model", state.model.state_dict()),
        **(checkpoint.prefixed("ema", state.ema.state_dict()) if state.ema else {}),
        **opt_tensors,
        "rng.torch": torch.get_rng_state(),
        **({"rng.augment": aug.get_state()} if aug is not state.members[0].gen else {}),
        **({"rng.cuda": torch.cuda.get_rng_state(aug.device)} if aug.device.type == "cuda" else {}),
        **(
            {"pseudo.rows": torch.from_numpy(pseudo[0]), "pseudo.labels": torch.from_numpy(pseudo[1])} if pseudo else {}
        ),
    }
    records = [{"best_epoch": m.best_epoch, "best_score": m.best_score, "history": m.history} for m in state.members]
    for g, member in enumerate(state.members):
        tensors |= checkpoint.prefixed(member_key("best", g), member.best_weights or {})  # None: a refit
        tensors[member_key("rng.generator", g)] = member.gen.get_state()
    meta = {"epoch": epoch, **records[0], "optimizer": opt_rest, **({"members": records[1:]} if records[1:] else {})}
    writer.save(work, tensors, meta)


def final_predictions(state: FoldState) -> list[FoldResult]:
    """Each member's kept weights (best epoch, or the last) and its validation and test predictions."""
    p, fold, device, amp = state.p, state.fold, state.device, state.amp
    results = []
    for g, member in enumerate(state.members):
        if p.keep == "best" and state.validating:
            weights, kept = member.best_weights, member.best_epoch
        else:  # the last epoch run (its score is in the history; a refit has none)
            weights, kept = member_weights(state.judged, g), member.history[-1]["epoch"]
        single = state.model if len(state.members) == 1 else state.build(state.seeds[g])
        single.load_state_dict(weights)
        val_probs = np.zeros((0, fold.num_classes), np.float32)
        if state.validating:
            val_probs = predict(single, fold.x, fold.val_idx, device, p.eval_batch_size, amp)
        test_probs = None
        if fold.x_test is not None:
            test_probs = predict(single, fold.x_test, np.arange(len(fold.x_test)), device, p.eval_batch_size, amp)
        weights = {k: v.detach().cpu().clone() for k, v in single.state_dict().items()}
        score = next(r.get(f"val_{p.metric}") for r in member.history if r["epoch"] == kept)
        results.append(FoldResult(kept, score, val_probs, test_probs, weights, member.history, len(member.history)))
    return results
