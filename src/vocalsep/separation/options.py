"""What a separation does: :class:`SeparationOptions`, left unset to take the model's preset's values."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


from ..config import COMBINE_RULES, FULLBAND_RULES, HIGH_BAND_RULES, MAX_WIENER_POWER, PAD_RULES, PRECISIONS, Preset, valid_wiener_power
from ..errors import ConfigError


@dataclass(frozen=True)
class SeparationOptions:
    """How stems are formed; see the module docstring for each rule.

    ``fullband``, ``high_band``, ``combine`` and ``segment_frames`` left at
    ``None`` take the preset's value (jansson2017: ``interpolate``, ``edge``,
    ``average``, 320 frames = 30 s).
    """

    fullband: str | None = None  # None: the preset's (interpolate for jansson2017)
    fullband_n_fft: int = 2048
    fullband_hop: int = 1024
    high_band: str | None = None  # None: the preset's (edge for jansson2017)
    edge_hz: float = 1000.0
    complement: bool = False
    combine: str | None = None  # None: the preset's rule
    segment_frames: int | None = None  # model frames per segment; None: the preset's (320 x 768 / 8192 Hz = 30 s)
    overlap: float = 1.0  # seconds of crossfade between segments
    precision: str | None = None  # "fp32", "bf16" (InferenceUNet), "auto" (bf16 where the device has it); None: the preset's
    # how a segment's frames are padded before a network that takes the segment whole (not split_patches): to a
    # multiple of the U-Net's stride ** depth and at least one training patch; "wrap" (the one rule) repeats the
    # segment from its start (wrap_frames), and the padding's masks are dropped
    pad: str = "wrap"
    # framings per segment: the segment is separated ``shifts`` times, delayed by 0, 1/shifts, ...
    # of the model's hop, and the stems averaged (shift_average); 1: one framing
    shifts: int = 1
    # None: the preset's; 0: the masks of combine; N >= 1: a multichannel Wiener filter of the two
    # networks' output spectrograms with N EM iterations instead (needs both models and the bandlimited rule)
    wiener: int | None = None
    # None: the preset's; the power of the networks' masks in the Wiener filter's first estimates
    wiener_power: float | None = None

    def resolved(self, preset: Preset) -> "SeparationOptions":
        """These options with every unset field taken from ``preset``: the one place where a preset's
        defaults and the user's options meet.  Several framings (``shifts``) without a full-band rule
        of their own use the paper's reconstruction (``bandlimited``); the preset's Wiener filter
        applies only with that rule."""
        fullband = self.fullband or preset.fullband
        if self.fullband is None and self.shifts > 1 and fullband == "interpolate":
            fullband = "bandlimited"
        wiener = self.wiener if self.wiener is not None else preset.wiener if fullband == "bandlimited" else 0
        return replace(self, fullband=fullband, high_band=self.high_band or preset.high_band, wiener=wiener,
                       wiener_power=self.wiener_power if self.wiener_power is not None else preset.wiener_power,
                       combine=self.combine or preset.combine, segment_frames=self.segment_frames or preset.segment_frames,
                       precision=self.precision or preset.precision)

    def __post_init__(self) -> None:
        if self.fullband is not None and self.fullband not in FULLBAND_RULES:
            raise ConfigError(f"fullband must be one of {FULLBAND_RULES}, not {self.fullband!r}")
        if self.high_band is not None and self.high_band not in HIGH_BAND_RULES:
            raise ConfigError(f"high_band must be one of {HIGH_BAND_RULES}, not {self.high_band!r}")
        if self.fullband_hop <= 0 or self.fullband_hop > self.fullband_n_fft:
            raise ConfigError("fullband_hop must be in (0, fullband_n_fft]")
        if not (isinstance(self.edge_hz, (int, float)) and math.isfinite(self.edge_hz) and self.edge_hz > 0):
            raise ConfigError(f"edge_hz must be a positive number of Hz, not {self.edge_hz!r}")
        if self.combine is not None and self.combine not in COMBINE_RULES:
            raise ConfigError(f"combine must be one of {COMBINE_RULES}, not {self.combine!r}")
        if self.segment_frames is not None and self.segment_frames < 8:
            raise ConfigError("segment_frames must be at least 8")
        if self.overlap < 0 or not math.isfinite(self.overlap):
            raise ConfigError("overlap must be a non-negative number of seconds")
        if self.pad not in PAD_RULES:
            raise ConfigError(f"pad must be one of {PAD_RULES}, not {self.pad!r}")
        if not isinstance(self.shifts, int) or isinstance(self.shifts, bool) or not 1 <= self.shifts <= 16:
            raise ConfigError(f"shifts must be a whole number from 1 to 16, not {self.shifts!r}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.wiener is not None and (not isinstance(self.wiener, int) or isinstance(self.wiener, bool) or not 0 <= self.wiener <= 10):
            raise ConfigError(f"wiener must be a whole number of EM iterations from 0 to 10, not {self.wiener!r}")
        if self.wiener_power is not None and not valid_wiener_power(self.wiener_power):
            raise ConfigError(f"wiener_power must be a number in (0, {MAX_WIENER_POWER:g}], not {self.wiener_power!r}")
