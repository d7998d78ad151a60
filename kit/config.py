"""params.yaml -> typed, validated config. The one place for defaults.

Every stage reads its section from here; a CLI option overrides the value for one run.
Unknown keys and bad values fail with the key's path, e.g.
``params.yaml: features.logmel.n_mels: expected an integer, got 'many'``.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kit.errors import KitError

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class DemoParams:
    n_train: int = 240  # clips
    n_test: int = 80  # clips
    seed: int = 0


@dataclass(frozen=True)
class DataParams:
    source: Literal["demo", "kaggle", "path"] = "demo"  # what `kit data fetch` puts at root
    root: str = "data/raw"  # the dataset: a folder or manifest CSV (`kit data demo|download|fetch` write here)
    path: str = ""  # source path: a dataset folder that `kit data fetch` copies to root
    competition: str = ""  # Kaggle slug used by `kit data download`
    groups: str = ""  # an id,group CSV giving each train clip its song / speaker, for grouped splits
    num_classes: int | None = 4  # None: inferred from the labels
    demo: DemoParams = field(default_factory=DemoParams)


@dataclass(frozen=True)
class LogmelParams:
    """librosa.feature.melspectrogram + power_to_db semantics."""

    sr: int = 22050  # Hz
    n_fft: int = 2048  # samples
    hop_length: int = 512  # samples
    n_mels: int = 128
    fmin: float = 0.0  # Hz
    fmax: float | None = None  # Hz; None = sr / 2
    top_db: float | None = 80.0  # dB below each clip's peak; None = no floor


@dataclass(frozen=True)
class LogfreqParams:
    """Log-frequency (constant-Q) bands from a long FFT: fine pitch resolution where voices live."""

    sr: int = 22050  # Hz
    n_fft: int = 4096  # samples (also the window): 5.4 Hz FFT bins at 22050 Hz
    hop_length: int = 512  # samples
    n_bins: int = 128  # bands, geometrically spaced from fmin to fmax
    fmin: float = 60.0  # Hz
    fmax: float = 8000.0  # Hz
    top_db: float | None = 80.0  # dB below each clip's peak; None = no floor


@dataclass(frozen=True)
class FbankParams:
    """Seeds A/B: python_speech_features.logfbank with a Hamming window."""

    sr: int = 16000  # Hz
    preemph: float = 0.97
    win_ms: float = 25.0  # frame length
    hop_ms: float = 10.0  # frame step
    n_fft: int = 1024  # samples
    n_mels: int = 40
    fmin: float = 0.0  # Hz
    fmax: float = 8000.0  # Hz


@dataclass(frozen=True)
class ImageParams:
    """Ready-made spectrogram images: grey levels scaled to [0, 1], resized."""

    height: int = 128  # pixels
    width: int = 128  # pixels


@dataclass(frozen=True)
class DspParams:
    """REPET-SIM style soft mask: what does not repeat across frames is voice."""

    n_fft: int = 2048  # samples
    hop_length: int = 512  # samples
    min_gap_s: float = 0.25  # similar frames are looked for at least this far away
    neighbours: int = 20  # similar frames whose median is the repeating part
    margin_vocals: float = 4.0  # higher: stricter vocal mask
    margin_accomp: float = 2.0
    power: float = 2.0  # soft-mask exponent


@dataclass(frozen=True)
class SpleeterParams:
    env: str = ".kit/envs/spleeter"  # its own venv (`kit separate setup spleeter`)
    python: str = "python3.11"  # interpreter the venv is made with
    model_dir: str = ""  # holds 2stems/; "" = $MODEL_PATH, else pretrained_models
    batch_size: int = 32  # clips per worker request


@dataclass(frozen=True)
class DemucsParams:
    model: str = "htdemucs"
    repo: str = ""  # local folder of downloaded weights; "" = demucs' own cache / download
    device: str = "auto"  # auto | cpu | cuda


@dataclass(frozen=True)
class SeparateParams:
    backend: Literal["none", "dsp", "spleeter", "demucs"] = "dsp"
    out: str = "data/stems"  # stems folder (`kit features` reads it for vocals input)
    accompaniment: bool = False  # also write the accompaniment stem
    workers: int = 0  # processes; 0 = one per core
    dsp: DspParams = field(default_factory=DspParams)
    spleeter: SpleeterParams = field(default_factory=SpleeterParams)
    demucs: DemucsParams = field(default_factory=DemucsParams)


@dataclass(frozen=True)
class VoiceParams:
    """A pretrained speaker encoder's embedding of each clip's inputs (mix / vocals), stored beside the
    spectrograms; `train.voice` turns it into the runs' voice head."""

    embed: bool = True  # audio datasets: store each input's 256-d voice embedding (image datasets: ignored)
    weights: str = ""  # GE2E encoder weights (.pt / .safetensors); "" = the resemblyzer package's pretrained.pt


@dataclass(frozen=True)
class FeaturesParams:
    out: str = "data/features"  # feature store folder
    # logmel+logfreq: both, stacked as channels (one store, one hash); image datasets always use `image`
    frontend: Literal["logmel", "logfreq", "fbank", "logmel+logfreq"] = "logmel"
    input: Literal["mix", "vocals", "mix+vocals"] = "mix+vocals"  # channels; vocals come from `kit separate`
    duration: float = 3.0  # seconds; clips are padded / trimmed to this
    batch_size: int = 8  # clips per spectrogram batch
    workers: int = 0  # decoding threads; 0 = one per core
    on_error: Literal["fail", "silence"] = "fail"  # undecodable clips
    logmel: LogmelParams = field(default_factory=LogmelParams)
    logfreq: LogfreqParams = field(default_factory=LogfreqParams)
    fbank: FbankParams = field(default_factory=FbankParams)
    image: ImageParams = field(default_factory=ImageParams)
    voice: VoiceParams = field(default_factory=VoiceParams)

    @property
    def sr(self) -> int:
        """The audio front-end's sample rate (what clips and stems are decoded at)."""
        return getattr(self, self.frontend.split("+")[0]).sr


@dataclass(frozen=True)
class SplitParams:
    kind: Literal["holdout", "kfold"] = "holdout"
    fraction: float = 0.2  # holdout: share of train clips used for validation
    folds: int = 5  # kfold: K
    seed: int = 0
    grouped: bool = False  # keep each group (store meta `groups`) on one side of the split


# sum mixing's labels for the contest (0 no voice, 1 male, 2 female, 3 several): voices add up
VOICES_ADD_UP = ((0, 1, 2, 3), (1, 3, 3, 3), (2, 3, 3, 3), (3, 3, 3, 3))


@dataclass(frozen=True)
class AugmentParams:
    """On the feature tensors, per batch."""

    freq_masks: int = 2  # SpecAugment frequency masks per example
    freq_width: int = 16  # max bins per frequency mask (at most a quarter of the bins)
    time_masks: int = 2  # SpecAugment time masks per example
    time_width: int = 20  # max frames per time mask (at most a quarter of the frames)
    time_reverse: float = 0.0  # probability of reversing an example in time
    time_shift: float = 1.0  # max circular shift, as a fraction of the frames
    mixup_alpha: float = 0.3  # Beta(alpha, alpha) mixup; 0 = off
    mixup_epochs: float = 0.5  # fraction of the epochs (from the start) with mixup on
    sum_mix: float = 0.5  # share of each batch summed (in power) with another clip; 0 = off
    sum_gain_db: float = 6.0  # the partner's level: uniform within ± this many dB
    sum_partner: Literal["clip", "vocals"] = "clip"  # what the partner adds: its whole clip, or its vocals
    sum_labels: list[list[int]] = field(default_factory=lambda: [list(row) for row in VOICES_ADD_UP])
    filter_db: float = 6.0  # random EQ (FilterAugment): a piecewise-linear gain curve within ± this many dB; 0 = off
    filter_points: int = 4  # the curve's knots, evenly spread from the lowest to the highest band
    freq_shift: int = 0  # shift each example by up to ± this many frequency bins (logfreq: a pitch shift); 0 = off


@dataclass(frozen=True)
class PseudoParams:
    """Self-training: the unlabelled clips (validation and test audio, never their labels) join the
    training batches under the labels the model itself gives them with enough confidence."""

    start: float = 0.0  # fraction of the epochs before pseudo-labels join; 0 = off
    threshold: float = 0.7  # a clip joins when its top class probability is at least this


@dataclass(frozen=True)
class VoiceHeadParams:
    """Late fusion with the store's voice embeddings: a multinomial logistic regression on them, fitted
    on the clips each model trains on; the run predicts (1 - weight) * network + weight * voice head."""

    weight: float = 0.5  # the voice head's share of the run's probabilities; 0 = off
    c: float = 0.0  # inverse L2 strength; 0 = chosen by (grouped) cross-validation on the training clips


@dataclass(frozen=True)
class TrainParams:
    features: str = "data/features"  # feature store to train on
    runs: str = "artifacts/runs"  # run folders (the registry)
    arch: str = "cnn4f"  # zoo entry or timm:<name>; `kit train ARCH` overrides
    seed: int = 0
    epochs: int = 36  # song4-dev on 2 CPU cores (bf16): ~14 min with the refit
    batch_size: int = 32
    lr: float = 0.004  # peak learning rate
    weight_decay: float = 0.01
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.9  # sgd only
    scheduler: Literal["onecycle", "cosine_restarts", "plateau", "multistep", "none"] = "onecycle"
    restart_epochs: int = 10  # cosine_restarts: epochs of the first cycle (T_0)
    milestones: list[int] = field(default_factory=lambda: [10, 15])  # multistep: epochs where lr *= gamma
    gamma: float = 0.1  # multistep / plateau decay factor
    patience: int = 3  # plateau: epochs without improvement before decaying
    label_smoothing: float = 0.1
    drop_rate: float = 0.3  # dropout before the classifier head
    stem: Literal["default", "seed"] = "default"  # seed: 3x3 stride-1 first conv, no max-pool
    pretrained: bool | str = False  # timm hub weights, or a local weights file
    normalize: Literal["band", "global", "none"] = "band"  # input standardisation from the train fold
    balance: Literal["none", "weights", "sampler"] = "none"  # class-weighted loss or balanced sampling
    metric: Literal["accuracy", "macro_f1", "log_loss"] = "accuracy"  # picks the best epoch
    keep: Literal["best", "last"] = "best"  # weights the run keeps: the best validation epoch, or the last
    early_stop: int = 0  # stop after this many epochs without improvement; 0 = off
    ema_epochs: float = 0.0  # validate / keep a moving average of the weights over ~this many epochs; 0 = off
    eval_batch_size: int = 256
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    compile: bool = False  # torch.compile the model; on CUDA its steps replay as CUDA graphs (~3x eager)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA and CPUs with native bf16
    channels: list[str] = field(default_factory=list)  # store channels the model sees (mix:logfreq ...); [] = all
    refit: bool = True  # holdout: then train on every train clip for the same epochs; its test predictions count
    stack: int = 1  # train seeds seed..seed+stack-1 at once, as one wider model (GPU throughput); each its own run
    voice: VoiceHeadParams = field(default_factory=VoiceHeadParams)
    split: SplitParams = field(default_factory=SplitParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    pseudo: PseudoParams = field(default_factory=PseudoParams)


@dataclass(frozen=True)
class EnsembleParams:
    method: Literal["mean", "weighted", "hillclimb", "stack"] = "mean"
    top: int = 5  # best comparable runs to combine
    metric: Literal["accuracy", "macro_f1", "log_loss"] = "accuracy"  # ranks the candidates
    geometric: bool = False  # geometric instead of arithmetic blending (mean / weighted / hillclimb)
    n_init: int = 1  # hillclimb: start from the best N members
    bagging: int = 0  # hillclimb: bags of half the members; 0 = off
    cv_folds: int = 5  # folds of the honest (out-of-fold) estimate
    out: str = "submissions"  # folder for <name>.csv + <name>.json
    name: str = ""  # submission name; "" = derived from the method and members


@dataclass(frozen=True)
class PipelineRun:
    """One `train@<name>` stage of dvc.yaml: DVC substitutes all three keys into the command."""

    arch: str = "cnn4f"
    seed: int = 0
    args: str = ""  # more `kit train` options for this run only, e.g. "--lr 0.003 --folds 5"


def _demo_runs() -> dict[str, PipelineRun]:
    return {f"cnn4f-s{s}": PipelineRun("cnn4f", s, "--epochs 8") for s in (0, 1)}


@dataclass(frozen=True)
class PipelineParams:
    runs: dict[str, PipelineRun] = field(default_factory=_demo_runs)  # run name -> run (arch x seed x options)
    submission: str = "pipeline"  # the ensemble stage writes submissions/<this>.csv


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    separate: SeparateParams = field(default_factory=SeparateParams)
    features: FeaturesParams = field(default_factory=FeaturesParams)
    train: TrainParams = field(default_factory=TrainParams)
    ensemble: EnsembleParams = field(default_factory=EnsembleParams)
    pipeline: PipelineParams = field(default_factory=PipelineParams)


def load_params(path: str | os.PathLike | None = None) -> Params:
    """Read params.yaml (default: ./params.yaml, or $KIT_PARAMS); defaults where absent."""
    path = Path(path or os.environ.get("KIT_PARAMS", PARAMS_FILE))
    if not path.exists():
        return Params()
    import yaml

    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise KitError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse(Params, raw, str(path), "")


def parse(cls: type, raw: Any, file: str, prefix: str) -> Any:
    """Build dataclass `cls` from a mapping, checking every key and value type."""
    if not isinstance(raw, dict):
        raise KitError(f"{file}: {prefix or 'top level'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise KitError(f"{file}: unknown key '{key}' (known: {', '.join(sorted(names))})")
    values = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        values[name] = _coerce(hints[name], value, file, key)
    return cls(**values)


def _coerce(tp: Any, value: Any, file: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value if value is not None else {}, file, key)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, file, key)
            except KitError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is dict:
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise KitError(f"{file}: {key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(item, v, file, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise KitError(f"{file}: {key}: expected a list, got {value!r}")
        return [_coerce(item, v, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise KitError(f"{file}: {key}: expected one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise KitError(f"{file}: {key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise KitError(f"{file}: {key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise KitError(f"{file}: {key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise KitError(f"{file}: {key}: expected a string, got {value!r}")
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def override(obj: Any, **values: Any) -> Any:
    """Replace fields of a params dataclass with CLI option values (None keeps the param; paths become str)."""
    hints = typing.get_type_hints(type(obj))
    checked = {
        name: _coerce(
            hints[name],
            str(value) if isinstance(value, os.PathLike) else value,
            "command line",
            "--" + name.replace("_", "-"),
        )
        for name, value in values.items()
        if value is not None
    }
    return dataclasses.replace(obj, **checked)
