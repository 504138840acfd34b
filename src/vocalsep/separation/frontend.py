"""The spectral front end of the paper's presets and Spleeter's: from a waveform segment to the
networks' input, and from their masks back to full-band stems."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ..audio import resample
from ..config import Preset
from ..errors import AudioError, ConfigError
from ..spectral import STFT, SpleeterSTFT, apply_mask, interpolate_mask, lerp_axis
from ..stems import STEMS

from .framings import _as_tensor, _fit
from .masks import wrap_frames
from .options import SeparationOptions


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
        self.options = options = options.resolved(preset)
        self.device = device
        self.fullband = options.fullband
        self.high_band = options.high_band
        if options.wiener and self.fullband != "bandlimited":
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
