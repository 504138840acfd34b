"""The one place that turns a waveform into stems.

Per segment of the input (``(channels, samples)`` at its own rate):

1. resample to the preset's rate (8192 Hz for ``jansson2017``) and take the
   STFT; the model input is the magnitude of the lowest ``preset.bins`` bins;
2. each model predicts a soft mask for its target (channels go through the
   network as a batch: every channel is separated on its own, never mixed);
3. the full-band output is formed from the low-rate masks (``fullband``):

   - ``"interpolate"`` (default): the masks are interpolated, bilinearly in
     seconds and Hz, onto an STFT of the input at its own rate
     (``fullband_n_fft``/``fullband_hop``, default 2048/1024), multiplied with
     that spectrogram and inverted with the mixture's phase; bins above the
     modelled band (4088 Hz) get the ``high_band`` rule: ``"edge"`` (default;
     per frame, the mean mask over the top ``edge_hz`` of the modelled band),
     ``"zero"`` or ``"one"``.
   - ``"bandlimited"``: the paper's reconstruction: mask x mixture magnitude
     with mixture phase, inverse STFT at the preset's rate, resampled back
     up.  The mixture's content above the modelled band (the mixture minus
     its band-limited version) is added scaled by the ``high_band`` rule
     (``"zero"`` drops it, as a plain resampling would).

   Why ``interpolate`` is the default: with the trained models it scores
   +0.67 / +0.29 dB NSDR (vocals / accompaniment) above ``bandlimited`` on
   51 held-out MIR-1K clips (docs/training.md), because interpolation
   smooths the network's mask errors.  With ideal masks it is the other way
   round (``bandlimited`` is 0.1-0.2 dB better on MIR-1K and more on the
   MUSDB18 excerpt, docs/fullband.md): interpolating onto coarser full-rate
   bins smears a perfect mask's harmonic detail.  ``edge`` beats ``zero`` by
   0.5-0.8 dB SNR and is the rule that keeps the band above 4 kHz.

4. ``complement=True`` makes the stems mixture-consistent: accompaniment =
   mixture - vocals (with only an accompaniment model: vocals = mixture -
   accompaniment).  A stem without a model of its own is always the complement.

Long inputs go through in segments of ``segment_frames`` model frames (about
30 s) with ``overlap`` seconds of linear crossfade (:mod:`vocalsep.chunking`),
decoded, separated and written as a stream: memory does not grow with the
input's length.

Outputs have the input's sample rate, length and channel count.
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

from .audio import AudioReader, AudioWriter, resample, track_name
from .checkpoint import TARGETS, Checkpoint, load_checkpoint
from ._threads import SerialWorker, prefetch
from .chunking import overlap_add
from .config import Preset
from .errors import AudioError, ConfigError, ModelError, OutputError
from .model import UNet
from .spectral import STFT, apply_mask, interpolate_mask, lerp_axis

log = logging.getLogger(__name__)

FULLBAND_RULES = ("interpolate", "bandlimited")
HIGH_BAND_RULES = ("edge", "zero", "one")
STEMS = TARGETS  # ("vocals", "accompaniment")
DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"


@dataclass(frozen=True)
class SeparationOptions:
    """How stems are formed; see the module docstring for each rule."""

    fullband: str = "interpolate"
    fullband_n_fft: int = 2048
    fullband_hop: int = 1024
    high_band: str = "edge"
    edge_hz: float = 1000.0
    complement: bool = False
    segment_frames: int = 320  # model frames per segment: 320 x 768 / 8192 Hz = 30 s
    overlap: float = 1.0  # seconds of crossfade between segments

    def __post_init__(self) -> None:
        if self.fullband not in FULLBAND_RULES:
            raise ConfigError(f"fullband must be one of {FULLBAND_RULES}, not {self.fullband!r}")
        if self.high_band not in HIGH_BAND_RULES:
            raise ConfigError(f"high_band must be one of {HIGH_BAND_RULES}, not {self.high_band!r}")
        if self.fullband_hop <= 0 or self.fullband_hop > self.fullband_n_fft:
            raise ConfigError("fullband_hop must be in (0, fullband_n_fft]")
        if self.segment_frames < 8:
            raise ConfigError("segment_frames must be at least 8")
        if self.overlap < 0 or not math.isfinite(self.overlap):
            raise ConfigError("overlap must be a non-negative number of seconds")


def _as_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad the last axis to ``n`` samples."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])


class SpectralFrontEnd:
    """The low-rate analysis and the full-band synthesis shared by every mask source
    (the trained models, and the ideal masks of the evaluation's oracle)."""

    def __init__(self, preset: Preset, options: SeparationOptions, device: torch.device):
        self.preset = preset
        self.options = options
        self.device = device
        self.low_stft = STFT(preset.n_fft, preset.hop)
        self.full_stft = STFT(options.fullband_n_fft, options.fullband_hop)

    def analyse(self, x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, torch.Tensor]:
        """``(channels, n)`` at ``sample_rate`` -> (low-rate waveform, low-rate complex STFT ``(channels, freqs, frames)``)."""
        low = resample(x, sample_rate, self.preset.sample_rate)
        spec = self.low_stft.forward(_as_tensor(low, self.device))
        return low, spec

    def magnitude(self, spec: torch.Tensor) -> torch.Tensor:
        """Model input ``(channels, 1, bins, frames)`` from a low-rate STFT."""
        return spec[:, : self.preset.bins].abs().unsqueeze(1)

    def synthesise(
        self, x: np.ndarray, sample_rate: int, low: np.ndarray, spec: torch.Tensor, masks: Mapping[str, torch.Tensor]
    ) -> dict[str, np.ndarray]:
        """Full-band stems ``{target: (channels, n)}`` from low-rate masks ``{target: (channels, bins, frames)}``."""
        o, p = self.options, self.preset
        n = x.shape[-1]
        out: dict[str, np.ndarray] = {}
        if o.fullband == "interpolate":
            full = self.full_stft.forward(_as_tensor(x, self.device))
            for target, mask in masks.items():
                m = interpolate_mask(
                    mask, src_rate=p.sample_rate, src_n_fft=p.n_fft, src_hop=p.hop,
                    dst_rate=sample_rate, dst_n_fft=o.fullband_n_fft, dst_hop=o.fullband_hop,
                    dst_frames=full.shape[-1], high=o.high_band, edge_hz=o.edge_hz,
                )
                out[target] = self.full_stft.inverse(apply_mask(full, m), n).cpu().numpy()
            return out
        # bandlimited: the paper's reconstruction at the low rate, resampled up
        targets = list(masks)
        channels = x.shape[0]
        lows = []
        for target in targets:
            m = interpolate_mask(
                masks[target], src_rate=p.sample_rate, src_n_fft=p.n_fft, src_hop=p.hop,
                dst_rate=p.sample_rate, dst_n_fft=p.n_fft, dst_hop=p.hop,
                dst_frames=spec.shape[-1], high=o.high_band, edge_hz=o.edge_hz,
            )  # the same grid: only fills the dropped top bin(s)
            lows.append(self.low_stft.inverse(apply_mask(spec, m), low.shape[-1]).cpu().numpy())
        add_high = o.high_band != "zero" and sample_rate > p.sample_rate
        if add_high:
            lows.append(low)
        # one resampler call for every target (and the mixture's band-limited version)
        up = _fit(resample(np.concatenate(lows, axis=0), p.sample_rate, sample_rate), n)
        residual = x - up[len(targets) * channels :] if add_high else None  # the mixture above the model's band
        for i, target in enumerate(targets):
            est = up[i * channels : (i + 1) * channels]
            if residual is not None:
                est = est + residual * self._high_gain(masks[target], n, sample_rate)
            out[target] = est
        return out

    def _high_gain(self, mask: torch.Tensor, n: int, sample_rate: int) -> np.ndarray:
        """Per-sample gain ``(channels, n)`` for the band above the model: the ``high_band`` rule's
        per-frame value, linearly interpolated between frame centres."""
        o, p = self.options, self.preset
        if o.high_band == "one":
            return np.ones((1, n), np.float32)
        k = max(1, int(round(o.edge_hz / (p.sample_rate / p.n_fft))))
        per_frame = mask[:, -k:, :].mean(dim=1)  # (channels, frames)
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
            if target not in TARGETS:
                raise ModelError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
        self.device = _device(device)
        self.models = {t: m.eval().to(self.device) for t, m in models.items()}
        self.preset = preset
        self.options = options or SeparationOptions()
        self.name = name
        self.checkpoints = list(checkpoints)
        self.front = SpectralFrontEnd(preset, self.options, self.device)

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
        presets = {c.preset for c in checkpoints}
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
    @torch.inference_mode()
    def _separate_segment(self, x: np.ndarray, sample_rate: int, stems: Sequence[str]) -> dict[str, np.ndarray]:
        """``(channels, n)`` -> ``{stem: (channels, n)}`` for one segment."""
        complement = self.options.complement
        primary = "vocals" if "vocals" in self.models else "accompaniment"
        other = "accompaniment" if primary == "vocals" else "vocals"
        if complement or other not in self.models:
            targets = [primary]
        else:
            targets = [t for t in stems if t in self.models]
        low, spec = self.front.analyse(x, sample_rate)
        mag = self.front.magnitude(spec)
        masks = {t: self.models[t](mag)[:, 0] for t in targets}
        out = self.front.synthesise(x, sample_rate, low, spec, masks)
        if other in stems and other not in out:
            out[other] = x - out[primary]
        return {s: out[s] for s in stems}

    def segment_samples(self, sample_rate: int) -> tuple[int, int]:
        """(segment, overlap) in samples at ``sample_rate``.

        A segment holds at most ``segment_frames`` model frames.  Where the
        rate allows it, the step between segments is a whole number of model
        hops at a whole number of input samples (0.75 s at 44.1 kHz), so that
        every segment sees the same STFT frame grid as the whole file would.
        """
        p, o = self.preset, self.options
        segment = int((o.segment_frames - 1) * p.hop * sample_rate // p.sample_rate)
        overlap = min(int(round(o.overlap * sample_rate)), segment // 2)
        step = segment - overlap
        hops = p.sample_rate // math.gcd(p.hop * sample_rate, p.sample_rate)
        unit = hops * p.hop * sample_rate // p.sample_rate
        if unit <= step:
            step -= step % unit
        return step + overlap, overlap

    def separate_stream(
        self,
        blocks: Iterable[np.ndarray],
        sample_rate: int,
        channels: int,
        stems: Sequence[str] | None = None,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Separate a stream of float32 ``(channels, n)`` blocks; yields ``{stem: (channels, m)}`` blocks in order."""
        stems = self._check_stems(stems)
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
        writers = {s: AudioWriter(targets[s], reader.sample_rate, reader.channels, fmt=fmt, bit_depth=bit_depth) for s in todo}
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
                    io.submit(writers[s].write, y)
                    n = y.shape[1]
                if progress is not None:
                    progress(n)
            io.wait()
            if total == 0:
                raise AudioError(path, "contains no audio samples" + (" in the selected range" if offset or duration else ""))
            if peak == 0.0:
                raise AudioError(path, "is digital silence (every sample is zero): nothing to separate")
        except BaseException:
            io.close()
            for w in writers.values():
                w.discard()
            raise
        io.close()
        return {s: w.commit() for s, w in writers.items()}

    def _check_stems(self, stems: Sequence[str] | None) -> list[str]:
        if stems is None:
            return list(STEMS)
        stems = list(dict.fromkeys(stems))
        bad = [s for s in stems if s not in STEMS]
        if bad or not stems:
            raise ConfigError(f"unknown stem(s) {bad}; choose from {', '.join(STEMS)}")
        return stems


def output_paths(path: str | os.PathLike, outdir: str | os.PathLike, stems: Sequence[str], fmt: str, template: str = DEFAULT_TEMPLATE) -> dict[str, Path]:
    """Where each stem of ``path`` goes; refuses a template that escapes ``outdir``."""
    outdir_abs = Path(outdir).resolve()
    result = {}
    for s in stems:
        try:
            rel = template.format(track=track_name(path), stem=s, ext=fmt)
        except (KeyError, IndexError, ValueError) as exc:
            raise OutputError(f"invalid --filename template {template!r}: use {{track}}, {{stem}} and {{ext}} ({exc})") from None
        target = (outdir_abs / rel).resolve()
        if target == outdir_abs or outdir_abs not in target.parents:
            raise OutputError(f"--filename template {template!r} makes {target}, outside the output folder {outdir_abs}")
        result[s] = target
    if len(set(result.values())) != len(result):
        raise OutputError(f"--filename template {template!r} gives several stems the same file; include {{stem}}")
    return result


def _device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    return dev
