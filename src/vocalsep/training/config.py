"""Training configuration: one frozen, validated, JSON-serialisable dataclass."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..config import get_preset
from ..errors import ConfigError
from ..stems import STEMS

TARGET_RULES = ("magnitude", "phase-sensitive")
LOSSES = ("l1", "sdr")

# Settings that stored training configurations (checkpoints' ``training.config``, ``OUT/config.json``,
# ``OUT/state.pt``) may hold from earlier versions, with the value that means "off": a stored
# configuration with these values reads as today's; other values describe training that this
# version no longer does.
REMOVED = {"input_norm": None, "ema": 0.0, "schedule": "cosine"}
REMOVED_AUGMENT = {"gain_db": 0.0, "silence": 0.0, "pitch": 0.0, "wrap_short": 0.0}


@dataclass(frozen=True)
class Augment:
    """Data augmentation, applied to the waveforms of each patch before the STFT.

    - ``remix``: probability that a patch takes its voice and its accompaniment
      from two different (random) training tracks; pairs (original,
      instrumental) have no voice waveform and are never remixed.
    """

    remix: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.remix <= 1.0:
            raise ConfigError("augment.remix must be a probability in [0, 1]")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Augment":
        """From a stored configuration; the keys of removed augmentations are dropped (see
        :data:`REMOVED_AUGMENT`)."""
        return cls(**{k: v for k, v in d.items() if k not in REMOVED_AUGMENT})


@dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str
    dataset: str | None = None  # mir1k | stems | musdb | pairs; None: guessed from the path
    # a training-mixture recipe (JSON, vocalsep.data.recipe): its sources' paths are relative to ``data``,
    # which is then the data folder; needed by presets with stereo networks
    recipe: str | None = None
    patch_frames: int | None = None  # frames per training patch; None: the preset's (recipes only)
    target: str = "vocals"
    preset: str = "jansson2017"
    skip: bool = True  # False: the paper's baseline (no skip connections)
    channels: tuple[int, ...] | None = None  # override the preset's U-Net channels (small test models)
    dropout: float | None = None  # override the preset's decoder dropout (the paper: 0.5 in 3 layers)
    # what mask x |X| is trained towards: the source's magnitude |Y| (the paper's), or its part in phase
    # with the mixture, |Y| cos(angle(Y) - angle(X)) truncated to [0, |X|] (Erdogan et al., ICASSP 2015)
    target_rule: str = "magnitude"
    # the training loss: "l1" the paper's L1,1 of (mask x X - Y) / max(X); "sdr" minus each patch's
    # signal-to-distortion ratio in dB (training.losses.masked_sdr, scale-free), every patch weighted alike;
    # validation loss stays L1
    loss: str = "l1"
    precision: str = "fp32"  # fp32 | bf16 (autocast: bfloat16 convolutions, float32 weights and optimiser)
    device: str = "cpu"  # cpu | cuda | cuda:N (under torchrun, cuda means each process's LOCAL_RANK GPU)
    batch_size: int = 8
    lr: float = 1e-3
    lr_min: float = 1e-5  # floor of the cosine learning-rate schedule
    warmup_steps: int = 100
    steps: int | None = None
    epochs: float | None = None
    time_budget: float | None = None  # seconds of training (validation excluded)
    # stop at this step, keeping the schedule of ``steps``: one stage of a longer run, continued with
    # --resume and a later stop_after (or none); the weights are those of the uninterrupted run
    stop_after: int | None = None
    steps_per_epoch: int | None = None  # default: training audio / patch length / batch size
    valid_groups: tuple[str, ...] = ()
    valid_fraction: float = 0.2
    valid_seconds: float | None = 60.0  # at most this much of each validation track is scored
    valid_every: int | None = None  # steps between validations; default: once per epoch
    augment: Augment = field(default_factory=Augment)
    # start from these weights (a model file of the same network) instead of a random initialisation;
    # the schedule, the optimiser and the step count start afresh (fine-tuning); ignored by --resume,
    # which continues from the interrupted run's own state
    init: str | None = None
    seed: int = 0
    threads: int | None = None
    workers: int = 0  # processes preparing batches ahead (0: in the training process)
    cache_dir: str | None = None  # default: OUT/../.cache (shared between runs)
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        _check_types(self)
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", Augment(**self.augment))
        object.__setattr__(self, "valid_groups", tuple(self.valid_groups))
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.target not in STEMS:
            raise ConfigError(f"target must be one of {STEMS}")
        preset = get_preset(self.preset)
        if self.recipe is None and (preset.channel_mode != "batch" or preset.framing != "center"):
            raise ConfigError(f"preset {self.preset!r} trains from a recipe of sources (--recipe); "
                              "without one, choose a mono-input preset such as jansson2017")
        if self.patch_frames is not None:
            if self.recipe is None:
                raise ConfigError("patch_frames is for recipe training (--recipe); other data use the preset's patch")
            if self.patch_frames < preset.unet.multiple:
                raise ConfigError(f"patch_frames must be at least {preset.unet.multiple} (the U-Net's frame multiple)")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError("dropout must be in [0, 1)")
        if self.target_rule not in TARGET_RULES:
            raise ConfigError(f"target_rule must be one of {TARGET_RULES}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError("precision must be fp32 or bf16")
        if self.device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", self.device):
            raise ConfigError(f"device must be cpu, cuda or cuda:N, not {self.device!r}")
        if self.workers < 0:
            raise ConfigError("workers must be >= 0")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        if not self.lr > 0 or self.lr_min < 0:
            raise ConfigError("lr must be > 0 and lr_min >= 0")
        if self.steps is None and self.epochs is None and self.time_budget is None:
            raise ConfigError("say when to stop: steps, epochs or time_budget")
        for name in ("steps", "steps_per_epoch", "valid_every", "stop_after"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError("epochs must be > 0")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError("time_budget must be > 0 seconds")
        if not 0 <= self.valid_fraction < 1:
            raise ConfigError("valid_fraction must be in [0, 1)")
        if self.valid_seconds is not None and not self.valid_seconds > 0:
            raise ConfigError("valid_seconds must be > 0")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """From a stored configuration (:meth:`to_dict`, also of an earlier version): the keys of
        removed settings (:data:`REMOVED`, :data:`REMOVED_AUGMENT`) are dropped, other unknown keys
        are an error."""
        d = dict(d)
        for key in REMOVED:
            d.pop(key, None)
        if isinstance(d.get("augment"), dict):
            d["augment"] = Augment.from_dict(d["augment"])
        return cls(**d)


_WHOLE = ("batch_size", "warmup_steps", "steps", "stop_after", "steps_per_epoch", "valid_every", "seed", "threads", "workers",
          "patch_frames")
_NUMBER = ("lr", "lr_min", "epochs", "time_budget", "valid_fraction", "valid_seconds", "dropout")
_TEXT = ("dataset", "target", "preset", "target_rule", "loss", "precision", "device")
_PATH = ("data", "out", "recipe", "init", "cache_dir")


def _check_types(cfg: "TrainConfig") -> None:
    """Each setting of the right kind (a --config file or a config.json may hold anything), as one line."""
    for names, kinds, what in ((_WHOLE, (int,), "a whole number"), (_NUMBER, (int, float), "a number"), (_TEXT, (str,), "text"),
                               (_PATH, (str, os.PathLike), "a path")):
        for name in names:
            v = getattr(cfg, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, kinds)):
                raise ConfigError(f"{name} must be {what}, not {v!r}")


def removed_settings(d: dict[str, Any]) -> dict[str, Any]:
    """The settings of a stored configuration ``d`` that this version no longer supports and that
    are not at their "off" value (:data:`REMOVED`, :data:`REMOVED_AUGMENT`), e.g.
    ``{"ema": 0.999}``: the run trained differently from what this version can continue.
    ``loss`` ``"l2"`` counts too."""
    found = {k: d[k] for k, off in REMOVED.items() if k in d and d[k] != off}
    augment = d.get("augment") if isinstance(d.get("augment"), dict) else {}
    found.update({f"augment.{k}": augment[k] for k, off in REMOVED_AUGMENT.items() if k in augment and augment[k] != off})
    if d.get("loss") not in (None, *LOSSES):
        found["loss"] = d["loss"]
    return found
