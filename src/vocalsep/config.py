"""Frozen, validated configuration: the preset (signal processing) and the U-Net.

A preset is data, not code: it serialises to and from JSON and is stored in
every checkpoint, so that a model always runs with the spectrogram it was
trained on.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

NORMALIZATIONS = ("max", "none")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class UNetConfig:
    """The layer table of the U-Net of Jansson et al. (2017).

    ``channels`` are the encoder's output channels; the decoder mirrors them and
    ends in ``out_channels`` masks.  Every layer is a 5x5 convolution with
    stride 2, so the bins and frames of the input must be multiples of
    ``stride ** len(channels)``; the model pads and crops that itself.
    """

    in_channels: int = 1
    out_channels: int = 1
    channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    kernel_size: int = 5
    stride: int = 2
    leaky_slope: float = 0.2
    dropout: float = 0.5
    dropout_layers: int = 3  # the first decoder layers that get dropout
    skip: bool = True  # False: the paper's baseline encoder-decoder
    input_norm: str = "max"  # see vocalsep.model.normalize_magnitude

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        _check(self.in_channels >= 1 and self.out_channels >= 1, "U-Net needs >= 1 input and output channel")
        _check(len(self.channels) >= 1 and all(c >= 1 for c in self.channels), "U-Net channels must be positive")
        _check(self.kernel_size % 2 == 1 and self.kernel_size >= 1, "kernel_size must be odd")
        _check(self.stride >= 2, "stride must be >= 2")
        _check(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        _check(0 <= self.dropout_layers <= len(self.channels), "dropout_layers exceeds the decoder depth")
        _check(self.input_norm in NORMALIZATIONS, f"input_norm must be one of {NORMALIZATIONS}")

    @property
    def multiple(self) -> int:
        """Bins and frames are padded to a multiple of this."""
        return self.stride ** len(self.channels)


@dataclass(frozen=True)
class Preset:
    """The signal processing a model is trained and run with.

    - ``sample_rate``: the rate the model sees (audio is resampled to it).
    - ``n_fft``/``hop``: STFT with a periodic Hann window of ``n_fft`` samples.
    - ``bins``: the lowest ``bins`` frequency bins are modelled (the top ones
      are dropped; the paper keeps 512 of 513).
    - ``patch_frames``: frames per training patch.
    """

    name: str = "jansson2017"
    sample_rate: int = 8192
    n_fft: int = 1024
    hop: int = 768
    bins: int = 512
    patch_frames: int = 128
    unet: UNetConfig = field(default_factory=UNetConfig)

    def __post_init__(self) -> None:
        if isinstance(self.unet, dict):
            object.__setattr__(self, "unet", UNetConfig(**self.unet))
        _check(self.sample_rate > 0, "sample_rate must be positive")
        _check(self.n_fft > 0 and self.hop > 0, "n_fft and hop must be positive")
        _check(self.hop <= self.n_fft, "hop must not exceed n_fft")
        _check(0 < self.bins <= self.n_fft // 2 + 1, "bins must be in (0, n_fft/2 + 1]")
        _check(self.patch_frames > 0, "patch_frames must be positive")

    @property
    def max_frequency(self) -> float:
        """Centre frequency (Hz) of the highest modelled bin."""
        return (self.bins - 1) * self.sample_rate / self.n_fft

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preset":
        data = dict(data)
        unet = data.pop("unet", {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        _check(not unknown, f"unknown preset keys: {sorted(unknown)}")
        unet_known = {f.name for f in dataclasses.fields(UNetConfig)}
        _check(not (set(unet) - unet_known), f"unknown U-Net keys: {sorted(set(unet) - unet_known)}")
        return cls(unet=UNetConfig(**unet), **data)

    @classmethod
    def from_json(cls, text: str) -> "Preset":
        return cls.from_dict(json.loads(text))


PRESETS: dict[str, Preset] = {
    "jansson2017": Preset(),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None
