"""The one place that turns a waveform into stems.

Per segment of the input (``(channels, samples)`` at its own rate):

1. resample to the preset's rate, take its STFT (:class:`~vocalsep.spectral.STFT`, or
   Spleeter's framing), and give the networks the magnitude of the lowest ``bins`` bins,
   padded by repeating the segment from its start (``pad``) or cut into patches
   (``split_patches``); channels go through as a batch, or as pairs (``"stereo"`` presets);
2. each network predicts a soft mask for its target; with a vocal and an accompaniment
   model the two masks are combined (``combine``, :func:`combine_masks`) or refined by a
   multichannel Wiener filter (``wiener``);
3. full-band stems are formed from the low-rate masks (``fullband``): ``"interpolate"``
   maps the masks onto an STFT of the input at its own rate
   (:func:`~vocalsep.spectral.interpolate_mask`); ``"bandlimited"`` inverts the masked
   low-rate STFT and resamples it back up.  Above the modelled band the ``high_band``
   rule applies: ``"edge"`` each frame's mean mask over the top ``edge_hz`` of the
   band, ``"zero"`` nothing;
4. ``complement`` runs one model and makes the other stem the mixture minus it;
   ``shifts=N`` averages N separations delayed by ``k/N`` of the model's hop
   (:func:`shift_average`; without a ``fullband`` option, the rule is then ``"bandlimited"``).

Long inputs are decoded, separated and written as a stream, in segments of
``segment_frames`` model frames crossfaded over ``overlap`` seconds (:mod:`vocalsep.chunking`;
Spleeter's presets: :meth:`Separator._spleeter_stream`, Spleeter's own patches).  Unset
options take the preset's values.  Outputs have the input's rate, length and channels.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .audio import OUTPUT_FORMATS, AudioReader, AudioWriter, resample, track_name
from .checkpoint import Checkpoint, load_checkpoint
from ._atomic import missing_dirs, remove_empty
from ._threads import SerialWorker, prefetch
from .chunking import overlap_add, overlap_sum
from .config import COMBINE_RULES, FULLBAND_RULES, HIGH_BAND_RULES, PRECISIONS, Preset
from .errors import AudioError, ConfigError, ModelError, OutputError
from .inference import DTYPES, InferenceUNet
from .model import UNet
from .spectral import STFT, SpleeterSTFT, apply_mask, interpolate_mask, lerp_axis
from .stems import STEMS

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
PAD_RULES = ("wrap",)


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
    # None: the masks of combine; N >= 0: a multichannel Wiener filter (norbert) of the two networks'
    # output spectrograms with N EM iterations instead (needs both models and the bandlimited rule)
    wiener: int | None = None

    def __post_init__(self) -> None:
        if self.fullband is not None and self.fullband not in FULLBAND_RULES:
            raise ConfigError(f"fullband must be one of {FULLBAND_RULES}, not {self.fullband!r}")
        if self.high_band is not None and self.high_band not in HIGH_BAND_RULES:
            raise ConfigError(f"high_band must be one of {HIGH_BAND_RULES}, not {self.high_band!r}")
        if self.fullband_hop <= 0 or self.fullband_hop > self.fullband_n_fft:
            raise ConfigError("fullband_hop must be in (0, fullband_n_fft]")
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


def combine_masks(masks: Mapping[str, torch.Tensor], rule: str, eps: float = 1e-10) -> dict[str, torch.Tensor]:
    """The stems' masks from the raw masks of a vocal and an accompaniment model.

    ``independent`` returns them as they are; ``average``: vocals
    ``(m_v + 1 - m_a) / 2``, accompaniment ``1 -`` that; ``ratio``: each mask
    over their sum; ``ratio2``: Spleeter's ``(m^2 + eps/2) / (m_v^2 + m_a^2 + eps)``.
    Masks of a single model are returned unchanged, whatever the rule.
    """
    if rule not in COMBINE_RULES:
        raise ConfigError(f"combine must be one of {COMBINE_RULES}, not {rule!r}")
    if rule == "independent" or not set(STEMS) <= set(masks):
        return dict(masks)
    mv, ma = masks["vocals"], masks["accompaniment"]
    if rule == "average":
        v = ((mv + 1 - ma) * 0.5).clamp(0, 1)
        out = {"vocals": v, "accompaniment": 1 - v}
    elif rule == "ratio":
        mv, ma = mv.clamp_min(0), ma.clamp_min(0)
        total = mv + ma
        v = torch.where(total > 0, mv / total.clamp_min(1e-12), torch.full_like(mv, 0.5))
        out = {"vocals": v, "accompaniment": 1 - v}
    else:  # ratio2, in place where it can be: the same values, fewer passes over the spectrogram
        v2, a2 = mv * mv, ma * ma
        total = (v2 + a2).add_(eps)
        out = {"vocals": v2.add_(eps / 2).div_(total), "accompaniment": a2.add_(eps / 2).div_(total)}
    return {t: out[t] for t in masks}


def wiener_masks(spec: torch.Tensor, outputs: Mapping[str, torch.Tensor], iterations: int) -> dict[str, torch.Tensor]:
    """Complex masks ``{stem: (channels, bins, frames)}`` of a multichannel Wiener filter.

    ``spec`` is the mixture's complex STFT on the modelled bins ``(channels, bins, frames)`` and
    ``outputs`` each stem's output spectrogram (mask x mixture magnitude) of the same shape.
    norbert's ``wiener`` (Open-Unmix's filter) starts from their ratio mask and refines it with
    ``iterations`` EM iterations, and returns complex stems ``y``; the mask is ``y / spec``.
    """
    try:
        import norbert
    except ImportError:
        raise ConfigError("the Wiener filter needs the norbert package: pip install 'vocalsep[wiener]'") from None
    names = list(outputs)
    v = np.stack([outputs[t].float().cpu().numpy() for t in names], axis=-1).transpose(2, 1, 0, 3)  # frames, bins, ch, src
    x = spec.cpu().numpy().transpose(2, 1, 0)  # frames, bins, ch
    y = norbert.wiener(v.astype(np.float64), x.astype(np.complex128), iterations=iterations, use_softmask=True)
    xc = np.conj(x)[..., None]
    power = (np.abs(x) ** 2)[..., None]
    m = np.where(power > 0, y * xc / np.maximum(power, 1e-30), 0).astype(np.complex64)  # frames, bins, ch, src
    return {t: torch.from_numpy(np.ascontiguousarray(m[..., i].transpose(2, 1, 0))).to(spec.device) for i, t in enumerate(names)}


def wrap_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """``x`` (..., frames') repeated from its start along the last axis to ``frames`` frames
    (``frames >= frames'``): the padding of :attr:`SeparationOptions.pad` ``"wrap"``."""
    t = x.shape[-1]
    if frames <= t or t == 0:
        return x
    return x.repeat(*(1,) * (x.dim() - 1), -(-frames // t))[..., :frames]


def _as_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad the last axis to ``n`` samples."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])


def shift_offsets(preset: Preset, shifts: int, sample_rate: int) -> list[int]:
    """Delays in samples at ``sample_rate``: ``k / shifts`` of the model's hop, ``k = 0 .. shifts - 1``."""
    hop = preset.hop * sample_rate / preset.sample_rate
    return [int(round(k * hop / shifts)) for k in range(shifts)]


def delay(x: np.ndarray, samples: int) -> np.ndarray:
    """``x`` (``(..., n)``) with ``samples`` zeros before it."""
    if not samples:
        return x
    return np.concatenate([np.zeros((*x.shape[:-1], samples), x.dtype), x], axis=-1)


def shift_average(separate: Callable[[int], Mapping[str, np.ndarray]], n: int, offsets: Sequence[int]) -> dict[str, np.ndarray]:
    """The mean over ``offsets`` of ``separate(s)``, the stems of the input delayed by ``s`` samples,
    each advanced back by ``s`` and cut to ``n`` samples."""
    total: dict[str, np.ndarray] | None = None
    for s in offsets:
        out = {k: v[..., s : s + n] for k, v in separate(s).items()}
        total = out if total is None else {k: total[k] + out[k] for k in total}
    assert total is not None
    return {k: v / len(offsets) if len(offsets) > 1 else v for k, v in total.items()}


class SpectralFrontEnd:
    """The low-rate analysis and the full-band synthesis shared by every mask source
    (the trained models, and the ideal masks of the evaluation's oracle).

    The rules are the options', else the preset's: :attr:`fullband`,
    :attr:`high_band`.  With a ``"stereo"`` preset, :meth:`prepare` makes the
    channels a whole number of pairs (mono duplicated) and :meth:`restore`
    folds the stems back to the input's channels.
    """

    def __init__(self, preset: Preset, options: SeparationOptions, device: torch.device):
        self.preset = preset
        self.options = options
        self.device = device
        self.fullband = options.fullband or preset.fullband
        if options.fullband is None and options.shifts > 1 and self.fullband == "interpolate":
            # several framings without a full-band rule of their own: the paper's reconstruction
            self.fullband = "bandlimited"
        self.high_band = options.high_band or preset.high_band
        if options.wiener is not None and self.fullband != "bandlimited":
            raise ConfigError("the Wiener filter needs the bandlimited full-band rule (--fullband bandlimited)")
        self.low_stft = SpleeterSTFT(preset.n_fft, preset.hop) if preset.framing == "spleeter" else STFT(preset.n_fft, preset.hop)
        # frames of the model's grid before the one centred on sample 0 (Spleeter's framing: 2)
        self.lead = getattr(self.low_stft, "lead", 0)
        self.full_stft = STFT(options.fullband_n_fft, options.fullband_hop)
        self.shifts = options.shifts

    # -- channels
    def prepare(self, x: np.ndarray) -> np.ndarray:
        """The waveform the analysis sees: for a ``"stereo"`` preset, mono is duplicated and an odd
        last channel of a multichannel input too, so that channels go through in pairs."""
        if self.preset.channel_mode == "stereo" and x.shape[0] % 2:
            return np.concatenate([x, x[-1:]], axis=0)
        return x

    def restore(self, y: np.ndarray, channels: int) -> np.ndarray:
        """Back to ``channels`` channels after :meth:`prepare`: mono is the mean of the pair."""
        if y.shape[0] == channels:
            return y
        if channels == 1:
            return y.mean(axis=0, keepdims=True)
        return y[:channels]

    # -- analysis
    def analyse(self, x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, torch.Tensor]:
        """``(channels, n)`` at ``sample_rate`` -> (low-rate waveform, low-rate complex STFT ``(channels, freqs, frames)``)."""
        low = resample(x, sample_rate, self.preset.sample_rate)
        if low.shape[-1] == 0:
            n = x.shape[-1]
            raise AudioError(None, f"too short to separate ({n} sample{'s' if n != 1 else ''} at {sample_rate} Hz, none at the model's {self.preset.sample_rate} Hz)")
        spec = self.low_stft.forward(_as_tensor(low, self.device))
        return low, spec

    def magnitude(self, spec: torch.Tensor) -> torch.Tensor:
        """Model input ``(channels, 1, bins, frames)`` from a low-rate STFT (``"batch"`` presets)."""
        return spec[:, : self.preset.bins].abs().unsqueeze(1)

    def model_input(self, mag: torch.Tensor) -> torch.Tensor:
        """The network's input ``(batch, in_channels, bins, frames')`` from the modelled magnitude
        ``(channels, bins, frames)`` (``spec[:, :bins].abs()``).

        ``"batch"``: every channel is a batch item (:meth:`magnitude`).  ``"stereo"``: every
        pair of channels is one item with two input channels.  ``split_patches``: the frames
        are cut into patches of ``patch_frames`` (the last zero-padded), each a batch item.
        """
        p = self.preset
        if p.channel_mode == "stereo":
            mag = mag.reshape(-1, 2, *mag.shape[1:])
        else:
            mag = mag.unsqueeze(1)
        if p.split_patches:
            b, c, f, t = mag.shape
            n = -(-t // p.patch_frames)
            mag = torch.nn.functional.pad(mag, (0, n * p.patch_frames - t))
            mag = mag.reshape(b, c, f, n, p.patch_frames).permute(0, 3, 1, 2, 4).reshape(b * n, c, f, p.patch_frames)
        else:  # pad "wrap"
            mag = wrap_frames(mag, max(p.patch_frames, -(-mag.shape[-1] // p.unet.multiple) * p.unet.multiple))
        if p.channel_mode == "stereo":  # the models are channels-last too (Separator)
            mag = mag.contiguous(memory_format=torch.channels_last)
        return mag

    def model_masks(self, out: torch.Tensor, frames: int) -> torch.Tensor:
        """A network's output for :meth:`model_input` -> masks ``(channels, bins, frames)``."""
        p = self.preset
        if p.split_patches:
            n = -(-frames // p.patch_frames)
            bc, c, f, t = out.shape
            out = out.reshape(bc // n, n, c, f, t).permute(0, 2, 3, 1, 4).reshape(bc // n, c, f, n * t)
        return out[..., :frames].reshape(-1, *out.shape[2:-1], frames)

    def combine_inputs(self, masks: Mapping[str, torch.Tensor], mag: torch.Tensor, rule: str) -> dict[str, torch.Tensor]:
        """What :func:`combine_masks` compares: the masks, or for a ``combine_on="output"`` preset
        and the ratio rules of two models, the output spectrograms (mask x mixture magnitude ``mag``)."""
        if self.preset.combine_on == "output" and rule in ("ratio", "ratio2") and set(STEMS) <= set(masks):
            return {t: m * mag for t, m in masks.items()}
        return dict(masks)

    def extend(self, mask: torch.Tensor) -> torch.Tensor:
        """A mask ``(channels, bins, frames)`` on all ``n_fft / 2 + 1`` bins of the model's own STFT: the
        ``high_band`` rule above the modelled band (Spleeter's ``mask_extension``).  The same values as
        :func:`vocalsep.spectral.interpolate_mask` onto the same grid, without its interpolation."""
        p = self.preset
        freqs = p.n_fft // 2 + 1
        bins = mask.shape[-2]
        if bins >= freqs:
            return mask
        out = mask.new_empty(*mask.shape[:-2], freqs, mask.shape[-1])
        out[..., :bins, :] = mask
        if self.high_band == "edge":
            k = max(1, round(self.options.edge_hz / (p.sample_rate / p.n_fft)))
            top = mask[..., bins - k :, :]
            out[..., bins:, :] = (top.abs() if top.is_complex() else top).mean(dim=-2, keepdim=True)
        else:  # "zero"
            out[..., bins:, :] = 0.0
        return out

    def centred(self, mask: torch.Tensor) -> torch.Tensor:
        """A mask on the centred frame grid (frame ``j`` at sample ``j * hop``), whatever the framing."""
        return mask[..., self.lead :] if self.lead else mask

    # -- synthesis
    def synthesise(
        self, x: np.ndarray, sample_rate: int, low: np.ndarray, spec: torch.Tensor, masks: Mapping[str, torch.Tensor]
    ) -> dict[str, np.ndarray]:
        """Full-band stems ``{target: (channels, n)}`` from low-rate masks ``{target: (channels, bins, frames)}``."""
        o, p = self.options, self.preset
        n = x.shape[-1]
        out: dict[str, np.ndarray] = {}
        if self.fullband == "interpolate":
            full = self.full_stft.forward(_as_tensor(x, self.device))
            for target, mask in masks.items():
                m = interpolate_mask(
                    self.centred(mask), src_rate=p.sample_rate, src_n_fft=p.n_fft, src_hop=p.hop,
                    dst_rate=sample_rate, dst_n_fft=o.fullband_n_fft, dst_hop=o.fullband_hop,
                    dst_frames=full.shape[-1], high=self.high_band, edge_hz=o.edge_hz,
                )
                out[target] = self.full_stft.inverse(apply_mask(full, m), n).cpu().numpy()
            return out
        # bandlimited: the paper's reconstruction at the low rate, resampled up
        targets = list(masks)
        channels = x.shape[0]
        lows = []
        for target in targets:
            m = self.extend(masks[target])  # the same grid: only fills the dropped top bin(s)
            lows.append(self.low_stft.inverse(apply_mask(spec, m), low.shape[-1]).cpu().numpy())
        add_high = self.high_band != "zero" and sample_rate > p.sample_rate
        if add_high:
            lows.append(low)
        # one resampler call for every target (and the mixture's band-limited version)
        up = _fit(resample(np.concatenate(lows, axis=0), p.sample_rate, sample_rate), n)
        residual = x - up[len(targets) * channels :] if add_high else None  # the mixture above the model's band
        for i, target in enumerate(targets):
            est = up[i * channels : (i + 1) * channels]
            if residual is not None:
                est = est + residual * self._high_gain(self.centred(masks[target]), n, sample_rate)
            out[target] = est
        return out

    def _high_gain(self, mask: torch.Tensor, n: int, sample_rate: int) -> np.ndarray:
        """Per-sample gain ``(channels, n)`` for the band above the model (``high_band`` ``"edge"``): per
        frame, the mean mask over the top ``edge_hz`` of the modelled band, linearly interpolated
        between frame centres."""
        o, p = self.options, self.preset
        k = max(1, int(round(o.edge_hz / (p.sample_rate / p.n_fft))))
        top = mask[:, -k:, :]
        per_frame = (top.abs() if top.is_complex() else top).mean(dim=1)  # (channels, frames)
        positions = torch.arange(n, dtype=torch.float64, device=per_frame.device) * (p.sample_rate / (p.hop * sample_rate))
        return lerp_axis(per_frame, positions, 1).cpu().numpy()


class Separator:
    """Separates waveforms and files into ``vocals`` and ``accompaniment``.

    ``models`` maps a target (``"vocals"``, ``"accompaniment"``) to its U-Net;
    all share ``preset``.  Use :meth:`from_pretrained` to load model files.
    """

    def __init__(
        self,
        models: Mapping[str, UNet],
        preset: Preset,
        options: SeparationOptions | None = None,
        *,
        device: str | torch.device = "cpu",
        name: str = "custom",
        checkpoints: Sequence[Checkpoint] = (),
    ):
        if not models:
            raise ModelError("a Separator needs at least one model")
        for target in models:
            if target not in STEMS:
                raise ModelError(f"unknown target {target!r}; known: {', '.join(STEMS)}")
        self.device = _device(device)
        self.models = {t: m.eval().to(self.device) for t, m in models.items()}
        self._channels_last = False  # the float32 models, converted when they run (_networks)
        self.preset = preset
        self.options = options or SeparationOptions()
        self.name = name
        self.checkpoints = list(checkpoints)
        self.front = SpectralFrontEnd(preset, self.options, self.device)
        self._low_precision: dict[str, nn.Module] = {}

    @property
    def precision(self) -> str:
        """The networks' number format here: ``"fp32"`` or ``"bf16"`` (``"auto"`` resolved for the device)."""
        rule = self.options.precision or self.preset.precision
        if rule == "auto":
            rule = "bf16" if _has_bf16(self.device) else "fp32"
        return rule

    def _networks(self) -> Mapping[str, nn.Module]:
        """The networks in :attr:`precision` (float32: the models themselves)."""
        precision = self.precision
        if precision == "fp32":
            if self.preset.channel_mode == "stereo" and not self._channels_last:
                # the channels-last memory format suits oneDNN's convolutions; converted here, not in
                # __init__, because bfloat16 separation makes its own copies and does not need it
                self.models = {t: m.to(memory_format=torch.channels_last) for t, m in self.models.items()}
                self._channels_last = True
            return self.models
        if not self._low_precision:
            if not _has_bf16(self.device):
                log.warning("this %s has no bfloat16 instructions: precision bf16 will be slower than fp32", self.device.type.upper())
            dtype = DTYPES[precision]
            fmt = torch.channels_last if self.preset.channel_mode == "stereo" else torch.contiguous_format
            self._low_precision = {t: InferenceUNet(m, dtype).to(memory_format=fmt) for t, m in self.models.items()}
        return self._low_precision

    # -- construction
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | Sequence[str | os.PathLike] = "default",
        options: SeparationOptions | None = None,
        *,
        device: str | torch.device = "cpu",
    ) -> "Separator":
        """Load a registered model by name, a model folder, one model file, or a list of files."""
        from .models import resolve_model

        name, paths = resolve_model(name_or_path)
        dev = _device(device)
        checkpoints = [load_checkpoint(p, dev) for p in paths]
        # Dropout acts only in training: models trained with and without it
        # separate the same way and may run together. So may networks of
        # different widths: the separator needs only the signal processing
        # and the network's depth (its frame multiple) to agree.
        widths = checkpoints[0].preset.unet.channels

        def running_preset(c):
            u = c.preset.unet
            same_depth = len(u.channels) == len(widths)
            return replace(c.preset, unet=replace(u, dropout=0.0, channels=widths if same_depth else u.channels))

        presets = {running_preset(c) for c in checkpoints}
        if len(presets) > 1:
            raise ModelError(f"models {[c.path for c in checkpoints]} use different presets; they cannot run together")
        models: dict[str, UNet] = {}
        for c in checkpoints:
            if c.target in models:
                raise ModelError(f"two models for target {c.target!r}: give one vocal and/or one accompaniment model")
            models[c.target] = c.model
        return cls(models, checkpoints[0].preset, options, device=dev, name=name, checkpoints=checkpoints)

    def with_options(self, **changes) -> "Separator":
        """A separator sharing these models with some options changed."""
        return Separator(self.models, self.preset, replace(self.options, **changes), device=self.device, name=self.name, checkpoints=self.checkpoints)

    @property
    def stems(self) -> tuple[str, ...]:
        return STEMS

    # -- the core
    def _stem_masks(self, spec: torch.Tensor, stems: Sequence[str]) -> tuple[dict[str, torch.Tensor], str, str | None]:
        """The masks to synthesise from a low-rate STFT, the primary stem, and the stem left to
        the complement (mixture - primary), if any."""
        complement = self.options.complement
        primary = "vocals" if "vocals" in self.models else "accompaniment"
        other = "accompaniment" if primary == "vocals" else "vocals"
        rule = self.options.combine or self.preset.combine
        if complement or other not in self.models:
            targets = [primary]
        elif rule == "independent":
            targets = [t for t in stems if t in self.models]
        else:  # a joint rule needs both networks, whichever stems are written
            targets = list(STEMS)
        front = self.front
        mag = spec[:, : self.preset.bins].abs()
        inp = front.model_input(mag)
        nets = self._networks()
        raw = {t: front.model_masks(nets[t](inp), spec.shape[-1]) for t in targets}
        if self.options.wiener is not None and len(targets) == 2:
            masks = wiener_masks(spec[:, : self.preset.bins], {t: m.float() * mag for t, m in raw.items()}, self.options.wiener)
        else:
            masks = combine_masks(front.combine_inputs(raw, mag, rule), rule)
        if rule != "independent" and not complement and other in self.models:
            masks = {t: masks[t] for t in stems}  # synthesise only the stems asked for
        rest = other if other in stems and other not in masks else None
        return masks, primary, rest

    @torch.inference_mode()
    def _separate_segment(self, x: np.ndarray, sample_rate: int, stems: Sequence[str]) -> dict[str, np.ndarray]:
        """``(channels, n)`` -> ``{stem: (channels, n)}`` for one segment: the mean of its
        ``shifts`` framings (:func:`shift_average`)."""
        if self.front.shifts == 1:
            return self._separate_framing(x, sample_rate, stems)
        offsets = shift_offsets(self.preset, self.front.shifts, sample_rate)
        return shift_average(lambda s: self._separate_framing(delay(x, s), sample_rate, stems), x.shape[-1], offsets)

    def _separate_framing(self, x: np.ndarray, sample_rate: int, stems: Sequence[str]) -> dict[str, np.ndarray]:
        """``(channels, n)`` -> ``{stem: (channels, n)}`` for one segment, one framing."""
        front = self.front
        xs = front.prepare(x)
        low, spec = front.analyse(xs, sample_rate)
        masks, primary, rest = self._stem_masks(spec, stems)
        out = front.synthesise(xs, sample_rate, low, spec, masks)
        if xs is not x:
            out = {t: front.restore(y, x.shape[0]) for t, y in out.items()}
        if rest is not None:
            out[rest] = x - out[primary]
        return {s: out[s] for s in stems}

    # -- Spleeter's framing, exactly, in bounded memory
    def _spleeter_exact(self, sample_rate: int) -> bool:
        """Whether a stream at ``sample_rate`` goes through :meth:`_spleeter_stream`: a preset with
        Spleeter's framing and patches, at its own rate, with the ``bandlimited`` rule."""
        p = self.preset
        return (
            p.framing == "spleeter" and p.split_patches and sample_rate == p.sample_rate
            and self.front.fullband == "bandlimited" and self.front.shifts == 1
        )

    @torch.inference_mode()
    def _spleeter_chunk(self, chunk: np.ndarray, last: bool, stems: Sequence[str]) -> dict[str, np.ndarray]:
        """One chunk of :meth:`_spleeter_stream`: the overlap-add contributions ``{stem: (channels, n)}``
        of the chunk's frames (all of them on the last chunk, else those that lie inside it)."""
        front = self.front
        stft = front.low_stft
        xs = front.prepare(chunk)
        n = chunk.shape[-1]
        zero_above = front.high_band == "zero"  # nothing above the modelled band
        # only the modelled bins are needed unless a complement stem wants the whole mixture
        low_only = zero_above and not self.options.complement and set(STEMS) <= set(self.models)
        spec = stft.frame(_as_tensor(xs, self.device), pad_end=last, bins=self.preset.bins if low_only else None)
        masks, primary, rest = self._stem_masks(spec, stems)
        if zero_above:  # the inverse FFT zero-pads the bins above
            out = {t: stft.overlap_add(apply_mask(spec[..., : m.shape[-2], :], m), n).cpu().numpy() for t, m in masks.items()}
        else:
            out = {t: stft.overlap_add(apply_mask(spec, front.extend(m)), n).cpu().numpy() for t, m in masks.items()}
        if rest is not None:  # the mixture's own contribution minus the primary stem's
            out[rest] = stft.overlap_add(spec, n).cpu().numpy() - out[primary]
        if xs is not chunk:
            out = {t: front.restore(y, chunk.shape[0]) for t, y in out.items()}
        return {s: out[s] for s in stems}

    def _spleeter_stream(self, blocks: Iterable[np.ndarray], channels: int, stems: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        """Spleeter's separation of a whole stream, exactly and in bounded memory.

        Spleeter puts ``n_fft`` zeros before the signal, frames all of it, runs
        the network on consecutive ``patch_frames``-frame patches and
        overlap-adds the masked frames.  Here the padded stream is cut into
        chunks that start every ``segment_frames`` frames (whole patches, so
        the patches are Spleeter's own) and reach ``n_fft - hop`` samples
        further, so that each chunk holds all of its frames; the chunks'
        overlap-add contributions are summed where they overlap.  The result is
        Spleeter's output up to float rounding, for any length.
        """
        p = self.preset
        step = self.segment_frames * p.hop
        segment = step + p.n_fft - p.hop

        def padded():
            yield np.zeros((channels, p.n_fft), np.float32)
            yield from blocks

        skip = p.n_fft
        for out in overlap_sum(padded(), channels, segment, segment - step, lambda c, last: self._spleeter_chunk(c, last, stems)):
            if skip:
                k = min(skip, next(iter(out.values())).shape[-1])
                out = {s: y[..., k:] for s, y in out.items()}
                skip -= k
            if next(iter(out.values())).shape[-1]:
                yield out

    def segment_samples(self, sample_rate: int) -> tuple[int, int]:
        """(segment, overlap) in samples at ``sample_rate``.

        A segment holds at most ``segment_frames`` model frames.  Where the
        rate allows it, the step between segments is a whole number of model
        hops at a whole number of input samples (0.75 s at 44.1 kHz), so that
        every segment sees the same STFT frame grid as the whole file would.
        With ``split_patches``, ``segment_frames`` is rounded up to whole
        patches, and with Spleeter's framing a segment is
        ``segment_frames * hop - n_fft`` model samples: exactly that many frames.
        """
        p, o = self.preset, self.options
        frames = self.segment_frames
        if p.framing == "spleeter":
            model_samples = frames * p.hop - p.n_fft
        else:
            model_samples = (frames - 1) * p.hop
        segment = int(model_samples * sample_rate // p.sample_rate)
        overlap = min(int(round(o.overlap * sample_rate)), segment // 2)
        step = segment - overlap
        hops = p.sample_rate // math.gcd(p.hop * sample_rate, p.sample_rate)
        unit = hops * p.hop * sample_rate // p.sample_rate
        if unit <= step:
            step -= step % unit
        return step + overlap, overlap

    @property
    def segment_frames(self) -> int:
        """Model frames per segment: the option's, else the preset's, rounded up to whole patches with ``split_patches``."""
        p = self.preset
        frames = self.options.segment_frames or p.segment_frames
        if p.split_patches:
            frames = -(-frames // p.patch_frames) * p.patch_frames
        return frames

    def separate_stream(
        self,
        blocks: Iterable[np.ndarray],
        sample_rate: int,
        channels: int,
        stems: Sequence[str] | None = None,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Separate a stream of float32 ``(channels, n)`` blocks; yields ``{stem: (channels, m)}`` blocks in order."""
        stems = self._check_stems(stems)
        if self._spleeter_exact(sample_rate):
            yield from self._spleeter_stream(blocks, channels, stems)
            return
        segment, overlap = self.segment_samples(sample_rate)
        yield from overlap_add(blocks, channels, segment, overlap, lambda seg: self._separate_segment(seg, sample_rate, stems))

    def separate(self, waveform, sample_rate: int, stems: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Separate a whole waveform ``(channels, samples)`` (or ``(samples,)`` for mono).

        Returns ``{stem: (channels, samples)}`` float32 tensors at ``sample_rate``.
        """
        x = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
        squeeze = x.ndim == 1
        if squeeze:
            x = x[None]
        if x.ndim != 2:
            raise ValueError(f"waveform must be (channels, samples) or (samples,), got shape {x.shape}")
        x = x.astype(np.float32, copy=False)
        if x.shape[1] == 0:
            raise AudioError(None, "waveform has no samples")
        if not np.isfinite(x).all():
            raise AudioError(None, "waveform contains NaN or infinite samples")
        parts: dict[str, list[np.ndarray]] = {}
        for block in self.separate_stream([x], int(sample_rate), x.shape[0], stems):
            for s, y in block.items():
                parts.setdefault(s, []).append(y)
        out = {s: torch.from_numpy(np.concatenate(v, axis=1)) for s, v in parts.items()}
        if not all(torch.isfinite(y).all() for y in out.values()):
            raise AudioError(None, "separation gave NaN or infinite samples")
        return {s: (y[0] if squeeze else y) for s, y in out.items()}

    def separate_file(
        self,
        path: str | os.PathLike,
        outdir: str | os.PathLike,
        *,
        stems: Sequence[str] | None = None,
        fmt: str = "wav",
        bit_depth: str = "16",
        filename: str = DEFAULT_TEMPLATE,
        offset: float = 0.0,
        duration: float | None = None,
        stream: int = 0,
        force: bool = False,
        progress: Callable[[int], None] | None = None,
        protected: Iterable[str | os.PathLike] = (),
    ) -> dict[str, Path]:
        """Separate one file into ``outdir``; returns ``{stem: output path}``.

        Outputs are written as a stream and renamed into place only when the
        whole file succeeded.  An existing output is kept (and not recomputed)
        unless ``force``; an input is never overwritten.  ``progress`` is
        called with the number of input samples done since the last call.
        """
        stems = self._check_stems(stems)
        reader = AudioReader(path, stream=stream, offset=offset, duration=duration)
        targets = output_paths(path, outdir, stems, fmt, filename)
        protected_paths = {Path(path).resolve(), *(Path(p).resolve() for p in protected)}
        for s, t in targets.items():
            if t.resolve() in protected_paths:
                raise OutputError(f"{t}: refusing to overwrite an input file")
        todo = [s for s in stems if force or not targets[s].exists()]
        if not todo:
            log.info("%s: all outputs exist, skipped (use --force to overwrite)", path)
            return {}
        made = missing_dirs([targets[s].parent for s in todo], Path(outdir).resolve())
        try:
            writers = {s: AudioWriter(targets[s], reader.sample_rate, reader.channels, fmt=fmt, bit_depth=bit_depth) for s in todo}
        except BaseException:
            remove_empty(made)
            raise
        io = SerialWorker()
        try:
            total = 0
            peak = 0.0

            def counted(blocks):
                nonlocal total, peak
                for b in blocks:
                    total += b.shape[1]
                    peak = max(peak, float(b.max()), float(-b.min()))
                    yield b

            for out in self.separate_stream(prefetch(counted(reader.blocks())), reader.sample_rate, reader.channels, todo):
                n = 0
                for s, y in out.items():
                    if not np.isfinite(y).all():
                        raise AudioError(path, f"separation gave NaN or infinite samples (the input's peak is {peak:.3g}); no stem written")
                    io.submit(writers[s].write, y)
                    n = y.shape[1]
                if progress is not None:
                    progress(n)
            io.wait()
            if total == 0:
                raise AudioError(path, "contains no audio samples" + (" in the selected range" if offset or duration else ""))
            if peak == 0.0:
                raise AudioError(path, "is digital silence (every sample is zero): nothing to separate")
            io.close()
            written = {s: w.commit() for s, w in writers.items()}  # inside the try: a signal may come here too
        except BaseException as exc:
            io.close()
            for w in writers.values():
                w.discard()
            remove_empty(made)
            if isinstance(exc, AudioError) and exc.path is None:  # from the separation itself: name the input
                raise AudioError(path, exc.reason) from None
            raise
        return written

    def _check_stems(self, stems: Sequence[str] | None) -> list[str]:
        if stems is None:
            return list(STEMS)
        stems = list(dict.fromkeys(stems))
        bad = [s for s in stems if s not in STEMS]
        if bad or not stems:
            raise ConfigError(f"unknown stem(s) {bad}; choose from {', '.join(STEMS)}")
        return stems


TEMPLATE_FIELDS = ("track", "stem", "ext")


def template_fields(template: str) -> list[tuple[str, str | None]]:
    """``(literal text, field or None)`` pieces of an output template; refuses anything but the
    plain fields ``{track}``, ``{stem}`` and ``{ext}`` (no attributes, indices, conversions or specs)."""
    import string

    def bad(why: str) -> OutputError:
        return OutputError(f"invalid --filename template {template!r}: {why}; use {{track}}, {{stem}} and {{ext}}")

    try:
        pieces = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise bad(str(exc)) from None
    out = []
    for literal, field, spec, conversion in pieces:
        if field is not None and (field not in TEMPLATE_FIELDS or spec or conversion):
            raise bad(f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} is not one of its fields")
        out.append((literal, field))
    return out


def output_paths(path: str | os.PathLike, outdir: str | os.PathLike, stems: Sequence[str], fmt: str, template: str = DEFAULT_TEMPLATE) -> dict[str, Path]:
    """Where each stem of ``path`` goes; refuses a template (or a track name) that leads outside ``outdir``,
    and a path through a symbolic link below ``outdir``."""
    pieces = template_fields(template)
    outdir_abs = Path(outdir).resolve()
    track = track_name(path)
    result = {}
    for s in stems:
        values = {"track": track, "stem": s, "ext": fmt}
        rel = "".join(literal + (values[field] if field else "") for literal, field in pieces)
        target = Path(os.path.normpath(outdir_abs / rel))
        if target == outdir_abs or outdir_abs not in target.parents:
            if track != "track":
                output_paths("track", outdir, [s], fmt, template)  # raises when the template itself leads outside
                raise OutputError(f"{path}: its name {track!r} makes the output {target}, outside the output folder {outdir_abs}")
            raise OutputError(f"--filename template {template!r} makes {target}, outside the output folder {outdir_abs}")
        link = next((d for d in (target, *target.parents) if d != outdir_abs and outdir_abs in d.parents and d.is_symlink()), None)
        if link is not None:
            raise OutputError(f"{link}: is a symbolic link; outputs are not written through links (remove it)")
        result[s] = target
    if len(set(result.values())) != len(result):
        raise OutputError(f"--filename template {template!r} gives several stems the same file; include {{stem}}")
    return result


def is_output(path: str | os.PathLike, outdir: str | os.PathLike, template: str = DEFAULT_TEMPLATE) -> bool:
    """Whether ``path`` lies in ``outdir`` where ``template`` puts a stem (of any track, stem and format):
    a file vocalsep may have written, never an input."""
    import re

    try:
        rel = Path(path).resolve().relative_to(Path(outdir).resolve())
    except ValueError:
        return False
    choices = {"track": r"[^/]*", "stem": "|".join(STEMS), "ext": "|".join(OUTPUT_FORMATS)}
    pattern = "".join(re.escape(literal) + (f"(?:{choices[field]})" if field else "") for literal, field in template_fields(template))
    return re.fullmatch(pattern, rel.as_posix()) is not None


def _has_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (CPU: AVX512-BF16 or AMX, as oneDNN sees it)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def _device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    return dev
