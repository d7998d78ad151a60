"""Every parameter of kit, declared once: type, default, allowed values, one line of help, whether
it is part of a run's identity, and the command-line flag that aliases it.

From this module alone come: the validation of params.yaml and of `-S key=value` overrides
(kit.params.load), the `kit` commands' flags (kit.cli.options), the run key (kit.params.identity),
the params each DVC stage depends on (`READS`) and docs/params.md (kit.params.docs).
A new option touches this file and the code that uses it, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from kit.params.field import param, section

DEVICE = r"auto|cpu|cuda|cuda:\d+"  # a torch device kit can train on
NAME = r"[A-Za-z0-9_][A-Za-z0-9_.+=@,-]*"  # a run or submission name: one folder / file name, never a path
NAME_HELP = "one file name: letters, digits and _ . + = @ , - (not starting with . or -; no / or \\)"


# ── data ─────────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class DemoParams:
    n_train: int = param(240, "Synthetic train clips `kit data demo` writes.", ge=8)
    n_test: int = param(80, "Synthetic test clips.", ge=0)
    seed: int = param(0, "Random seed of the synthetic clips.", ge=0)


@dataclass(frozen=True)
class DataParams:
    source: Literal["demo", "kaggle", "path"] = param("demo", "What `kit data fetch` puts at data.root.")
    root: str = param(
        "data/raw",
        "The dataset: a folder (contest layout, images) or a manifest CSV.",
        identity=False,
        flag={"features": "--data", "separate": "--data"},
    )
    path: str = param("", "Source folder that `kit data fetch` copies to data.root (source: path).")
    competition: str = param("", "Kaggle competition slug for `kit data download`.")
    groups: str = param("", "An id,group CSV giving each train clip its song / singer, for grouped splits.")
    num_classes: int | None = param(4, "Classes; null: inferred from the labels.", ge=2)
    demo: DemoParams = section(DemoParams, "`kit data demo`: the built-in synthetic dataset.")


# ── separate ─────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class DspParams:
    n_fft: int = param(2048, "FFT size of the soft mask (samples).", ge=64)
    hop_length: int = param(512, "Hop between frames (samples).", ge=1)
    min_gap_s: float = param(0.25, "Similar frames are looked for at least this far away (seconds).", ge=0)
    neighbours: int = param(20, "Similar frames whose median is the repeating (accompaniment) part.", ge=1)
    margin_vocals: float = param(4.0, "Higher: a stricter vocal mask.", gt=0)
    margin_accomp: float = param(2.0, "Higher: a stricter accompaniment mask.", gt=0)
    power: float = param(2.0, "Soft-mask exponent.", gt=0)


@dataclass(frozen=True)
class SpleeterParams:
    env: str = param(".kit/envs/spleeter", "Spleeter's own venv (`kit separate setup spleeter`).", identity=False)
    python: str = param("python3.11", "Interpreter the venv is made with.", identity=False)
    model_dir: str = param(
        "", 'Folder holding 2stems/; "" = $MODEL_PATH, else pretrained_models.', flag={"separate": "--model-dir"}
    )
    batch_size: int = param(32, "Clips per worker request.", ge=1, identity=False)


@dataclass(frozen=True)
class DemucsParams:
    model: str = param("htdemucs", "Demucs model name.")
    repo: str = param(
        "", 'Local folder of downloaded weights; "" = demucs\' own cache.', flag={"separate": "--demucs-repo"}
    )


@dataclass(frozen=True)
class SeparateParams:
    backend: Literal["none", "dsp", "spleeter", "demucs"] = param(
        "dsp", "Vocal separation: none, dsp (no weights), spleeter, demucs.", flag="--backend"
    )
    out: str = param("data/stems", "Stems folder.", identity=False, flag={"separate": "--out", "features": "--stems"})
    accompaniment: bool = param(False, "Also write the accompaniment stem.", flag="--accompaniment/--no-accompaniment")
    workers: int = param(0, "Processes (threads with a GPU); 0 = one per core.", ge=0, identity=False)
    device: str = param("auto", "dsp and demucs: auto (cuda when available) | cpu | cuda | cuda:N.", pattern=DEVICE,
                        identity=False, flag={"separate": "--device"})  # fmt: skip
    batch_size: int = param(16, "dsp: clips per batch.", ge=1, identity=False)
    dsp: DspParams = section(DspParams, "REPET-SIM style soft mask: what does not repeat across frames is voice.")
    spleeter: SpleeterParams = section(SpleeterParams, "Spleeter 2stems, in its own venv.")
    demucs: DemucsParams = section(DemucsParams, "Demucs (pip install 'kit[demucs]').")


# ── features ─────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class LogmelParams:
    sr: int = param(22050, "Sample rate (Hz).", ge=1000)
    n_fft: int = param(2048, "FFT size (samples).", ge=16)
    hop_length: int = param(512, "Hop between frames (samples).", ge=1)
    n_mels: int = param(128, "Mel bands.", ge=1)
    fmin: float = param(0.0, "Lowest band edge (Hz).", ge=0)
    fmax: float | None = param(None, "Highest band edge (Hz); null = sr / 2.", gt=0)
    top_db: float | None = param(80.0, "Floor: dB below each clip's peak; null = no floor.", gt=0)


@dataclass(frozen=True)
class LogfreqParams:
    sr: int = param(22050, "Sample rate (Hz).", ge=1000)
    n_fft: int = param(4096, "FFT size and window (samples): 5.4 Hz bins at 22050 Hz.", ge=16)
    hop_length: int = param(512, "Hop between frames (samples).", ge=1)
    n_bins: int = param(128, "Bands, geometrically spaced from fmin to fmax.", ge=1)
    fmin: float = param(60.0, "Lowest band (Hz).", gt=0)
    fmax: float = param(8000.0, "Highest band (Hz).", gt=0)
    top_db: float | None = param(80.0, "Floor: dB below each clip's peak; null = no floor.", gt=0)


@dataclass(frozen=True)
class FbankParams:
    sr: int = param(16000, "Sample rate (Hz).", ge=1000)
    preemph: float = param(0.97, "Pre-emphasis coefficient.", ge=0, lt=1)
    win_ms: float = param(25.0, "Frame length (ms).", gt=0)
    hop_ms: float = param(10.0, "Frame step (ms).", gt=0)
    n_fft: int = param(1024, "FFT size (samples).", ge=16)
    n_mels: int = param(40, "Filterbank bands.", ge=1)
    fmin: float = param(0.0, "Lowest band edge (Hz).", ge=0)
    fmax: float = param(8000.0, "Highest band edge (Hz).", gt=0)


@dataclass(frozen=True)
class ImageParams:
    height: int = param(128, "Resized height (pixels).", ge=8)
    width: int = param(128, "Resized width (pixels).", ge=8)


@dataclass(frozen=True)
class VoiceParams:
    embed: bool = param(True, "Store each input's 256-d GE2E voice embedding (audio only).", flag="--voice/--no-voice")
    weights: str = param("", 'Encoder weights (.pt / .safetensors); "" = the resemblyzer package\'s pretrained.pt.')
    precision: Literal["auto", "fp32", "bf16"] = param(
        "fp32",
        "The encoder's LSTM: bf16 ~1.7x faster on CPUs with native bf16, embeddings moved (docs/recipes.md); "
        "auto: bf16 on CUDA and such CPUs.",
    )
    overlap: float = param(
        0.1, "Least overlap of consecutive 1.6 s encoder windows: 0.1 = two windows a 3 s clip (0.5, before: three, "
        "1.5x the LSTM's work; docs/results.md).", ge=0, lt=1,
    )  # fmt: skip


@dataclass(frozen=True)
class FeaturesParams:
    out: str = param("data/features", "Feature store folder.", identity=False, flag="--out")
    frontend: Literal["logmel", "logfreq", "fbank", "logmel+logfreq"] = param(
        "logmel", "Spectrogram front-end; logmel+logfreq: both, as channels of one store.", flag="--frontend"
    )
    input: Literal["mix", "vocals", "mix+vocals"] = param(
        "mix+vocals", "Channels; vocals come from `kit separate`.", flag="--input"
    )
    duration: float = param(3.0, "Clips are padded / trimmed to this many seconds.", gt=0)
    batch_size: int = param(8, "Clips per spectrogram batch.", ge=1, identity=False)
    workers: int = param(0, "Processes on the CPU (decoding threads with a GPU); 0 = one per core.", ge=0,
                         identity=False)  # fmt: skip
    device: str = param("auto", "Front-ends and voice embeddings: auto (cuda when available) | cpu | cuda | cuda:N.",
                        pattern=DEVICE, identity=False, flag={"features": "--device"})  # fmt: skip
    on_error: Literal["fail", "silence"] = param("fail", "Undecodable clips: fail, or silence.", flag="--on-error")
    logmel: LogmelParams = section(LogmelParams, "librosa melspectrogram + power_to_db.")
    logfreq: LogfreqParams = section(LogfreqParams, "Log-frequency (constant-Q) bands from a long FFT.")
    fbank: FbankParams = section(FbankParams, "python_speech_features.logfbank (earlier entrants A/B).")
    image: ImageParams = section(ImageParams, "Ready-made spectrogram images: grey levels in [0, 1], resized.")
    voice: VoiceParams = section(VoiceParams, "A pretrained speaker encoder's embedding of each clip's inputs.")

    @property
    def sr(self) -> int:
        """The audio front-end's sample rate (what clips and stems are decoded at)."""
        return getattr(self, self.frontend.split("+")[0]).sr


# ── train ────────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class SplitParams:
    kind: Literal["holdout", "kfold"] = param("holdout", "Validation: a stratified holdout, or K-fold (OOF).")
    fraction: float = param(
        0.2, "Holdout: share of train clips used for validation.", gt=0, le=0.5, flag="--holdout",
        implies={"kind": "holdout"},
    )  # fmt: skip
    folds: int = param(5, "K-fold: K.", ge=2, flag="--folds", implies={"kind": "kfold"})
    seed: int = param(0, "Random seed of the split.", ge=0)
    grouped: bool = param(False, "Keep each group (song / singer) on one side.", flag="--grouped/--no-grouped")
    groups: str = param(
        "", "FILE:COLUMN: the groups, a column of a CSV with an id column (a+b: a clip of two); \"\" = the store's.",
        identity=False, flag="--groups", implies={"grouped": True},
    )  # fmt: skip


# sum mixing's labels for the contest (0 no voice, 1 male, 2 female, 3 several): voices add up
VOICES_ADD_UP = [[0, 1, 2, 3], [1, 3, 3, 3], [2, 3, 3, 3], [3, 3, 3, 3]]


@dataclass(frozen=True)
class AugmentParams:
    freq_masks: int = param(2, "SpecAugment frequency masks per example.", ge=0)
    freq_width: int = param(16, "Most bins per frequency mask (at most a quarter of the bins).", ge=0)
    time_masks: int = param(2, "SpecAugment time masks per example.", ge=0)
    time_width: int = param(20, "Most frames per time mask (at most a quarter of the frames).", ge=0)
    time_reverse: float = param(0.0, "Probability of reversing an example in time.", ge=0, le=1)
    time_shift: float = param(1.0, "Most circular shift, as a fraction of the frames.", ge=0, le=1)
    mixup_alpha: float = param(0.3, "Mixup Beta(alpha, alpha); 0 = off.", ge=0, flag="--mixup-alpha")
    mixup_epochs: float = param(0.5, "Fraction of the epochs (from the start) with mixup.", ge=0, le=1,
                                flag="--mixup-epochs")  # fmt: skip
    sum_mix: float = param(0.5, "Share of each batch summed (in power) with another clip; 0 = off.", ge=0, le=1,
                           flag="--sum-mix")  # fmt: skip
    sum_gain_db: float = param(6.0, "The partner's level: uniform within ± this many dB.", ge=0)
    sum_partner: Literal["clip", "vocals"] = param(
        "clip", "What sum mixing adds: the partner's whole clip, or its vocals channel.", flag="--sum-partner"
    )
    sum_labels: list[list[int]] = param(VOICES_ADD_UP, "Label of clip a (row) + clip b (column).")
    filter_db: float = param(6.0, "Random EQ (FilterAugment) within ± this many dB; 0 = off.", ge=0,
                             flag="--filter-db")  # fmt: skip
    filter_points: int = param(4, "The EQ curve's knots, spread evenly over the bands.", ge=2)
    freq_shift: int = param(0, "Shift by up to ± this many bins (logfreq: a pitch shift); 0 = off.", ge=0,
                            flag="--freq-shift")  # fmt: skip


@dataclass(frozen=True)
class PseudoParams:
    start: float = param(0.0, "Self-training from this fraction of the epochs on; 0 = off.", ge=0, lt=1,
                         flag="--pseudo-start")  # fmt: skip
    threshold: float = param(0.7, "Least top-class probability for a pseudo-label.", gt=0, le=1,
                             flag="--pseudo-threshold")  # fmt: skip


@dataclass(frozen=True)
class VoiceHeadParams:
    weight: float | Literal["auto"] = param(
        "auto", "The voice head's share of the run's probabilities; auto: chosen on validation (0 allowed); 0 = off.",
        ge=0, le=1, flag="--voice-weight",
    )  # fmt: skip
    c: float = param(0.0, "The voice head's inverse L2 strength; 0 = cross-validated.", ge=0, flag="--voice-c")


def _off(value: Any) -> bool:
    return value is False


@dataclass(frozen=True)
class TrainParams:
    features: str = param("data/features", "Feature store to train on.", identity=False, flag="--features")
    runs: str = param(
        "artifacts/runs",
        "Run folders (the registry).",
        identity=False,
        flag={"train": "--runs", "ensemble": "--runs-dir"},
    )
    arch: str = param("cnn4f", "Zoo entry or timm:<name> (`kit models`); `kit train ARCH` sets it.")
    seed: int = param(0, "Random seed of the run (initialisation, batch order, augmentation).", ge=0, flag="--seed")
    epochs: int = param(36, "Epochs (song4-dev on 2 CPU cores, bf16: ~7 min, ~14 with --refit).", ge=1, flag="--epochs")
    batch_size: int = param(32, "Training batch size.", ge=2, flag="--batch-size")
    lr: float = param(0.004, "Peak learning rate.", gt=0, flag="--lr")
    weight_decay: float = param(0.01, "Weight decay.", ge=0, flag="--weight-decay")
    optimizer: Literal["adamw", "sgd"] = param("adamw", "Optimiser.", flag="--optimizer")
    momentum: float = param(0.9, "SGD momentum.", ge=0, lt=1)
    scheduler: Literal["onecycle", "cosine_restarts", "plateau", "multistep", "none"] = param(
        "onecycle", "Learning-rate schedule.", flag="--scheduler"
    )
    restart_epochs: int = param(10, "cosine_restarts: epochs of the first cycle.", ge=1)
    milestones: list[int] = param([10, 15], "multistep: epochs where the rate is multiplied by gamma.")
    gamma: float = param(0.1, "multistep / plateau decay factor.", gt=0, le=1)
    patience: int = param(3, "plateau: epochs without improvement before decaying.", ge=0)
    label_smoothing: float = param(0.1, "Label smoothing.", ge=0, lt=1, flag="--label-smoothing")
    drop_rate: float = param(0.3, "Dropout before the classifier head.", ge=0, lt=1, flag="--drop-rate")
    stem: Literal["default", "stride1"] = param(
        "default", "stride1: a 3x3 stride-1 first conv and no max-pool (earlier entrants').", flag="--stem",
        key_values={"stride1": "seed"},
    )  # fmt: skip
    pretrained: bool | str = param(False, "timm hub weights (true), or a local weights file.", flag="--pretrained")
    normalize: Literal["band", "global", "none"] = param("band", "Input standardisation, from the training fold.")
    balance: Literal["none", "weights", "sampler"] = param(
        "none", "Class-weighted loss, or class-balanced batches.", flag="--balance"
    )
    metric: Literal["accuracy", "macro_f1", "log_loss"] = param("accuracy", "Picks the best epoch.")
    keep: Literal["best", "last"] = param(
        "best", "Weights kept: the best validation epoch, or the last.", flag="--keep"
    )
    early_stop: int = param(0, "Stop after this many epochs without improvement; 0 = off.", ge=0, flag="--early-stop")
    ema_epochs: float = param(0.0, "Moving average of the weights over ~this many epochs; 0 = off.", ge=0,
                              flag="--ema-epochs")  # fmt: skip
    eval_batch_size: int = param(256, "Prediction batch size.", ge=1, identity=False)
    device: str = param("auto", "auto (cuda when available) | cpu | cuda | cuda:N.", pattern=DEVICE, identity=False,
                        flag="--device")  # fmt: skip
    compile: bool = param(False, "torch.compile the model (on CUDA: steps replayed as CUDA graphs).",
                          flag="--compile/--no-compile")  # fmt: skip
    precision: Literal["auto", "fp32", "bf16"] = param(
        "auto", "auto: bf16 autocast on CUDA and CPUs with native bf16.", identity=False, flag="--precision"
    )
    channels: list[str] = param(
        [], "Store channels the model sees (mix:logfreq, ...); [] = all.", flag="--channels",
        key_omit=lambda v: v == [],
    )  # fmt: skip
    refit: bool = param(
        False, "Holdout: then train on every train clip for the same epochs; it predicts the test clips.",
        flag="--refit/--no-refit", key_omit=_off, key_values={True: "schedule"},
    )  # fmt: skip
    pack: int = param(
        1, "Train seeds seed..seed+N-1 at once as one wider model (GPU throughput); N runs.", ge=1, flag="--pack",
        key_omit=lambda v: v == 1, key_as="stack",
    )  # fmt: skip
    voice: VoiceHeadParams = section(
        VoiceHeadParams, "Late fusion with a logistic regression on the store's voice embeddings.",
        key_omit=lambda v: v.weight == 0,
    )  # fmt: skip
    split: SplitParams = section(SplitParams, "How train clips are split for validation.")
    augment: AugmentParams = section(AugmentParams, "On the feature tensors, per batch.")
    pseudo: PseudoParams = section(PseudoParams, "Self-training on validation and test audio (never their labels).")


# ── ensemble and pipeline ────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class EnsembleParams:
    method: Literal["mean", "weighted", "hillclimb", "stack"] = param(
        "hillclimb",
        "How runs are combined (hillclimb: from the best run by `metric`, members added while they raise it).",
        flag="--method",
    )
    top: int = param(5, "Best comparable runs to combine.", ge=1, flag="--top")
    metric: Literal["accuracy", "macro_f1", "log_loss"] = param(
        "accuracy", "Ranks the candidates; what hillclimb climbs on validation."
    )
    geometric: bool = param(False, "Geometric instead of arithmetic blending.", flag="--geometric/--arithmetic")
    n_init: int = param(1, "hillclimb: start from the best N members by `metric`.", ge=1, flag="--n-init")
    bagging: int = param(0, "hillclimb: bags of half the members; 0 = off.", ge=0, flag="--bagging")
    cv_folds: int = param(5, "Folds of the honest (out-of-fold) estimate.", ge=2)
    out: str = param("submissions", "Folder for <name>.csv + <name>.json.", identity=False, flag="--out")
    name: str = param("", 'Submission name; "" = derived from the method and members.', flag="--name",
                      pattern=f"|{NAME}", pattern_help=NAME_HELP)  # fmt: skip


@dataclass(frozen=True)
class SweepParams:
    address: str = param("", "Ray cluster to join (auto, ray://host:port); \"\" = a local Ray kit starts and stops.",
                         identity=False, flag="--address")  # fmt: skip
    cpus_per_run: float = param(1.0, "CPU cores each training reserves (its torch threads).", gt=0, identity=False,
                                flag="--cpus-per-run")  # fmt: skip
    gpus_per_run: float = param(0.0, "GPUs each training reserves; fractions share one GPU.", ge=0, identity=False,
                                flag="--gpus-per-run")  # fmt: skip
    retries: int = param(2, "Times a training whose worker died is started again (it resumes).", ge=0,
                         identity=False, flag="--retries")  # fmt: skip


@dataclass(frozen=True)
class PipelineRun:
    arch: str = param("cnn4f", "`kit train` ARCH.")
    seed: int = param(0, "--seed.", ge=0)
    args: str = param("", 'More `kit train` options for this run only, e.g. "--epochs 8 -S train.lr=0.003".')


@dataclass(frozen=True)
class PipelineParams:
    runs: dict[str, PipelineRun] = param(
        {f"cnn4f-s{s}": PipelineRun("cnn4f", s, "--epochs 8") for s in (0, 1)},
        "One `train@<name>` stage per entry: name -> {arch, seed, args}.",
    )
    submission: str = param("pipeline", "The ensemble stage writes submissions/<this>.csv.")
    engine: Literal["serial", "ray"] = param(
        "serial", "How `dvc repro` trains the runs: serial (one stage after another), or ray (`kit sweep` first)."
    )


@dataclass(frozen=True)
class Params:
    data: DataParams = section(DataParams, "The dataset (`kit data`).")
    separate: SeparateParams = section(SeparateParams, "`kit separate`: vocal stems for the front-end.")
    features: FeaturesParams = section(FeaturesParams, "`kit features`: the feature store.")
    train: TrainParams = section(TrainParams, "`kit train ARCH`: one model, recorded as a run.")
    ensemble: EnsembleParams = section(EnsembleParams, "`kit ensemble`: the best runs, combined.")
    sweep: SweepParams = section(SweepParams, "`kit sweep`: many trainings at once on Ray.")
    pipeline: PipelineParams = section(PipelineParams, "`dvc repro` (dvc.yaml): the runs to train, the submission.")


# What each command reads (its -S keys, its flags, and its DVC stage's params): a section, or one key.
READS: dict[str, tuple[str, ...]] = {
    "data": ("data.source", "data.path", "data.competition", "data.num_classes", "data.demo"),
    "separate": (
        "separate", "data.root", "data.num_classes", "features.frontend", "features.duration",
        "features.logmel.sr", "features.logfreq.sr", "features.fbank.sr",
    ),
    "features": ("features", "data.root", "data.num_classes", "data.groups", "separate.out"),
    "train": ("train",),
    "ensemble": ("ensemble", "train.runs", "pipeline.submission"),
    "sweep": ("sweep", "train", "pipeline.runs", "pipeline.engine"),
}  # fmt: skip

# keys renamed since they were first released: params.yaml files and -S overrides that still use
# the old name are told the new one
RENAMED = {"train.stack": "train.pack"}
