"""The systems an evaluation compares: trained models, other tools' outputs and two references.

A system is given as text (``vocalsep evaluate --system ...``):

- ``NAME=MODEL``: a registered model name, a ``.safetensors`` file or a folder
  of them, or two files joined by a comma (``VOCALS.safetensors,ACC.safetensors``,
  e.g. two training runs' ``best.safetensors``), run through the real
  :class:`~vocalsep.Separator`;
- ``NAME=FOLDER``: a folder of another tool's estimates,
  ``FOLDER/TRACK/vocals.wav`` and ``FOLDER/TRACK/accompaniment.wav`` (any
  audio format vocalsep reads is accepted in place of ``.wav``); a folder that
  holds ``.safetensors`` files at its top is a model, anything else an
  estimates folder;
- ``mixture``: the mixture itself as the estimate of both sources (NSDR 0 by
  definition: a sanity check);
- ``oracle``: the ideal ratio mask ``clip(|Y| / |X|, 0, 1)`` of each source at
  the preset's resolution (8192 Hz, STFT 1024/768, 512 bins for
  ``jansson2017``), applied through the same full-band rule as the separator:
  the upper bound of the method.

Every system maps a mixture ``(channels, samples)`` to ``{"vocals",
"accompaniment"}`` arrays of the same shape and rate.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AUDIO_EXTENSIONS, load, resample
from ..errors import AudioError, ConfigError
from ..stems import STEMS

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
BUILTIN = ("mixture", "oracle")
MAX_LENGTH_MISMATCH = 1.0  # seconds an estimate may differ from its reference before it is refused


@dataclass(frozen=True)
class SystemSpec:
    """One ``--system``: its display name, kind (model, estimates, mixture, oracle) and value."""

    name: str
    kind: str
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> SystemSpec:
        text = text.strip()
        if text in BUILTIN:
            return cls(text, text)
        name, sep, value = text.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ConfigError(f"--system {text!r}: expected NAME=MODEL, NAME=ESTIMATES_DIR, 'mixture' or 'oracle'")
        if not NAME.match(name):
            raise ConfigError(f"--system {text!r}: a name is letters, digits and _.+- (it names files)")
        if name in BUILTIN:
            raise ConfigError(f"--system {text!r}: {name!r} is built in; give it without a value")
        path = Path(value)
        if "," not in value and path.is_dir() and not any(path.glob("*.safetensors")):
            return cls(name, "estimates", value)
        return cls(name, "model", value)

    @property
    def model(self) -> str | list[str]:
        """The value as :meth:`Separator.from_pretrained` takes it."""
        return [v.strip() for v in self.value.split(",")] if "," in self.value else self.value

    def identity(self, options: str) -> str:
        """What the stored scores of this system depend on: a rerun reuses them only when this is unchanged."""
        if self.kind == "model":
            from ..checkpoint import read_metadata
            from ..config import Preset
            from ..models import resolve_model

            h = hashlib.sha256()
            paths = resolve_model(self.model)[1]
            for p in paths:
                h.update(Path(p).read_bytes())
            # a preset's Wiener filter and its power (defaults that can change without the files) are part of the identity
            presets = [Preset.from_json(read_metadata(p)["vocalsep.preset"]) for p in paths]
            wiener = max(p.wiener for p in presets)
            power = max(p.wiener_power for p in presets)
            return (f"model:{self.value}:sha256={h.hexdigest()[:16]}:{options}" + (f";preset-wiener={wiener}" if wiener else "")
                    + (f";preset-wiener-power={power:g}" if wiener and power != 1 else ""))
        if self.kind == "estimates":  # its files' names, sizes and times: replaced stems are scored again
            folder = Path(self.value).resolve()
            h = hashlib.sha256()
            for f in sorted(p for p in folder.rglob("*") if p.is_file()):
                st = f.stat()
                h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            return f"estimates:{folder}:files={h.hexdigest()[:16]}"
        if self.kind == "oracle":
            return f"oracle:{options}"
        return self.kind


def parse_systems(texts) -> list[SystemSpec]:
    specs = [SystemSpec.parse(t) for t in texts]
    if not specs:
        raise ConfigError("no systems to evaluate: give at least one --system")
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"system name(s) {dup} given more than once")
    return specs


def ratio_masks(front, spec, signals: dict[str, np.ndarray], rate: int):
    """``clip(|S| / |X|, 0, 1)`` at the preset's resolution for each signal ``(channels, n)``:
    ``spec`` is the mixture's low-rate STFT from ``front.analyse``.  Returns
    ``{name: (channels, bins, frames)}`` tensors (0 where the mixture is 0)."""
    import torch

    bins = front.preset.bins
    X = spec[:, :bins].abs()
    out = {}
    for name, y in signals.items():
        Y = front.analyse(np.asarray(y, np.float32), rate)[1][:, :bins].abs()
        out[name] = torch.where(X > 0, (Y / X.clamp_min(1e-12)).clamp(0, 1), torch.zeros_like(X))
    return out


class MixtureSystem:
    def __init__(self, spec: SystemSpec):
        self.name = spec.name

    def estimate(self, track: str, mixture: np.ndarray, references: dict[str, np.ndarray], rate: int) -> dict[str, np.ndarray]:
        return {s: mixture.copy() for s in STEMS}


class OracleSystem:
    def __init__(self, spec: SystemSpec, preset, options):
        import torch

        from ..separator import SpectralFrontEnd

        self.name = spec.name
        self.front = SpectralFrontEnd(preset, options, torch.device("cpu"))

    def estimate(self, track: str, mixture: np.ndarray, references: dict[str, np.ndarray], rate: int) -> dict[str, np.ndarray]:
        """The ideal masks, with the separator's rules; with ``shifts`` framings, those of each
        framing (mixture and references delayed alike), averaged as the separator does."""
        from ..separator import delay, shift_average, shift_offsets

        def framing(s: int) -> dict[str, np.ndarray]:
            x = delay(mixture, s)
            low, spec = self.front.analyse(x, rate)
            masks = ratio_masks(self.front, spec, {k: delay(np.asarray(v, np.float32), s) for k, v in references.items()}, rate)
            return self.front.synthesise(x, rate, low, spec, masks)

        offsets = shift_offsets(self.front.preset, self.front.shifts, rate)
        return shift_average(framing, mixture.shape[-1], offsets)


class ModelSystem:
    def __init__(self, spec: SystemSpec, options, device: str = "cpu"):
        from ..separator import Separator

        self.name = spec.name
        self.separator = Separator.from_pretrained(spec.model, options, device=device)

    def estimate(self, track: str, mixture: np.ndarray, references: dict[str, np.ndarray], rate: int) -> dict[str, np.ndarray]:
        return {s: y.numpy() for s, y in self.separator.separate(mixture, rate).items()}


class EstimatesSystem:
    def __init__(self, spec: SystemSpec):
        self.name = spec.name
        self.root = Path(spec.value)

    def path(self, track: str, source: str) -> Path:
        folder = self.root / track
        wav = folder / f"{source}.wav"
        if wav.is_file() or not folder.is_dir():
            return wav
        others = sorted(f for f in folder.glob(f"{source}.*") if f.suffix.lower() in AUDIO_EXTENSIONS)
        return others[0] if others else wav

    def estimate(self, track: str, mixture: np.ndarray, references: dict[str, np.ndarray], rate: int) -> dict[str, np.ndarray]:
        out = {}
        channels, n = mixture.shape
        for s in STEMS:
            path = self.path(track, s)
            if not path.is_file():
                raise AudioError(path, f"missing estimate ({self.name}, track {track})")
            y, sr = load(path)
            y = resample(y, sr, rate).astype(np.float64)
            if not np.isfinite(y).all():
                raise AudioError(path, "contains NaN or infinite samples")
            if y.shape[0] != channels:
                if channels == 1:
                    y = y.mean(axis=0, keepdims=True)  # the paper's evaluation is mono
                else:
                    raise AudioError(path, f"has {y.shape[0]} channel(s); the reference has {channels}")
            if abs(y.shape[1] - n) > MAX_LENGTH_MISMATCH * rate:
                raise AudioError(path, f"lasts {y.shape[1] / rate:.2f} s; the reference lasts {n / rate:.2f} s")
            out[s] = y[:, :n] if y.shape[1] >= n else np.pad(y, ((0, 0), (0, n - y.shape[1])))
        return out


def build_system(spec: SystemSpec, preset, options, device: str = "cpu"):
    if spec.kind == "mixture":
        return MixtureSystem(spec)
    if spec.kind == "oracle":
        return OracleSystem(spec, preset, options)
    if spec.kind == "model":
        return ModelSystem(spec, options, device)
    return EstimatesSystem(spec)
