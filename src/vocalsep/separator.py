"""The one place that turns a waveform into stems.

Per segment of the input (``(channels, samples)`` at its own rate):

1. resample to the preset's rate, take its STFT (:class:`~vocalsep.spectral.STFT`, or
   Spleeter's framing), and give the networks the magnitude of the lowest ``bins`` bins,
   padded by repeating the segment from its start (``pad``) or cut into patches
   (``split_patches``); channels go through as a batch, or as pairs (``"stereo"`` presets);
2. each network predicts a soft mask for its target; with a vocal and an accompaniment
   model the two masks are combined (``combine``, :func:`combine_masks`) or refined by a
   multichannel Wiener filter (``wiener``) that starts from the masks to the power ``wiener_power``;
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
Spleeter's presets: :mod:`vocalsep.spleeter.stream`, Spleeter's own patches).  Unset
options take the preset's values.  Outputs have the input's rate, length and channels.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .audio import AudioReader, AudioWriter
from .checkpoint import Checkpoint, load_checkpoint
from ._atomic import missing_dirs, remove_empty
from ._signals import deferred_signals
from ._threads import SerialWorker, prefetch
from .chunking import overlap_add
from .config import Preset
from .errors import AudioError, ConfigError, ModelError, OutputError
from .inference import DTYPES, InferenceUNet
from .model import UNet
from .separation.framings import delay, shift_average, shift_offsets
from .separation.frontend import SpectralFrontEnd
from .separation.masks import combine_masks, wiener_masks
from .separation.options import SeparationOptions
from .separation.output import DEFAULT_TEMPLATE, is_output, output_paths, template_fields
from .spleeter.stream import spleeter_stream
from .stems import STEMS

__all__ = ["DEFAULT_TEMPLATE", "SeparationOptions", "Separator", "SpectralFrontEnd", "combine_masks", "delay", "is_output",
           "output_paths", "shift_average", "shift_offsets", "template_fields", "wiener_masks"]

log = logging.getLogger(__name__)

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
        self.settings = self.options.resolved(preset)  # every unset option taken from the preset
        self.front = SpectralFrontEnd(preset, self.options, self.device)
        self._low_precision: dict[str, nn.Module] = {}

    @property
    def precision(self) -> str:
        """The networks' number format here: ``"fp32"`` or ``"bf16"`` (``"auto"`` resolved for the device)."""
        rule = self.settings.precision
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
    def stem_masks(self, spec: torch.Tensor, stems: Sequence[str]) -> tuple[dict[str, torch.Tensor], str, str | None]:
        """The masks to synthesise from a low-rate STFT, the primary stem, and the stem left to
        the complement (mixture - primary), if any."""
        complement = self.options.complement
        primary = "vocals" if "vocals" in self.models else "accompaniment"
        other = "accompaniment" if primary == "vocals" else "vocals"
        rule = self.settings.combine
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
        # the Wiener filter models the stems' stereo images: with the same signal in every channel (a mono
        # input, duplicated, or dual-mono stereo) it has none to model, and the combine rule's masks stay
        if self.settings.wiener and len(targets) == 2 and not all(torch.equal(spec[0], c) for c in spec[1:]):
            power = self.settings.wiener_power
            first = {t: (m.float() if power == 1 else m.float().clamp_min(0).pow(power)) * mag for t, m in raw.items()}
            masks = wiener_masks(spec[:, : self.preset.bins], first, self.settings.wiener)
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
        masks, primary, rest = self.stem_masks(spec, stems)
        out = front.synthesise(xs, sample_rate, low, spec, masks)
        if xs is not x:
            out = {t: front.restore(y, x.shape[0]) for t, y in out.items()}
        if rest is not None:
            out[rest] = x - out[primary]
        return {s: out[s] for s in stems}

    # -- Spleeter's framing, exactly, in bounded memory
    def _spleeter_exact(self, sample_rate: int) -> bool:
        """Whether a stream at ``sample_rate`` goes through :func:`~vocalsep.spleeter.stream.spleeter_stream`: a preset with
        Spleeter's framing and patches, at its own rate, with the ``bandlimited`` rule."""
        p = self.preset
        return (
            p.framing == "spleeter" and p.split_patches and sample_rate == p.sample_rate
            and self.front.fullband == "bandlimited" and self.front.shifts == 1
        )

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
        frames = self.settings.segment_frames
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
            yield from spleeter_stream(self, blocks, channels, stems)
            return
        segment, overlap = self.segment_samples(sample_rate)
        yield from overlap_add(blocks, channels, segment, overlap, lambda seg: self._separate_segment(seg, sample_rate, stems))

    def separate(self, waveform, sample_rate: int, stems: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Separate a whole waveform ``(channels, samples)`` (or ``(samples,)`` for mono).

        Returns ``{stem: (channels, samples)}`` float32 tensors at ``sample_rate``.
        """
        x = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
        sample_rate = _check_rate(sample_rate)
        squeeze = x.ndim == 1
        if squeeze:
            x = x[None]
        if x.ndim != 2:
            raise ValueError(f"waveform must be (channels, samples) or (samples,), got shape {x.shape}")
        if x.shape[0] > MAX_CHANNELS_GUESS and x.shape[0] > x.shape[1]:
            raise ValueError(f"waveform of shape {x.shape} would be {x.shape[0]} channels of {x.shape[1]} samples: pass "
                             "(channels, samples), e.g. audio.T for the (samples, channels) array that soundfile reads")
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
        """Separate one file into ``outdir``; returns ``{stem: output path}`` of the stems written (empty when
        every output exists and not ``force``).

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
        out = Path(outdir).resolve()
        made = missing_dirs([targets[s].parent for s in todo], next(d for d in (out, *out.parents) if d.exists()))
        writers = {}
        io = blocks = stream = None
        try:
            # a signal's exception waits until every temporary file has a writer here to discard it
            with deferred_signals():
                for s in todo:
                    writers[s] = AudioWriter(targets[s], reader.sample_rate, reader.channels, fmt=fmt, bit_depth=bit_depth)
            io = SerialWorker()
            total = 0
            peak = 0.0

            def counted(blocks):
                nonlocal total, peak
                for b in blocks:
                    total += b.shape[1]
                    peak = max(peak, float(b.max()), float(-b.min()))
                    yield b

            blocks = prefetch(counted(reader.blocks()))
            stream = self.separate_stream(blocks, reader.sample_rate, reader.channels, todo)
            for out in stream:
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
            # stop the decoder's thread first: an exit on a signal must not find it still decoding
            for gen in (stream, blocks):
                if gen is not None:
                    gen.close()
            if io is not None:
                io.close()
            for w in writers.values():
                w.discard()
            remove_empty(made)
            if isinstance(exc, AudioError) and exc.path is None:  # from the separation itself: name the input
                raise AudioError(path, exc.reason) from None
            raise
        return written

    def _check_stems(self, stems: Sequence[str] | str | None) -> list[str]:
        if stems is None:
            return list(STEMS)
        if isinstance(stems, str):  # "vocals" or "vocals,accompaniment"
            stems = [t.strip() for t in stems.split(",")]
        stems = list(dict.fromkeys(stems))
        bad = [s for s in stems if s not in STEMS]
        if bad or not stems:
            raise ConfigError(f"unknown stem(s) {bad}; choose from {', '.join(STEMS)}")
        return stems


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


MAX_CHANNELS_GUESS = 64  # more channels than samples, and more than this: a (samples, channels) array passed as it is


def _check_rate(sample_rate) -> int:
    try:
        rate = int(sample_rate)
    except (TypeError, ValueError):
        rate = 0
    if rate <= 0 or rate != sample_rate:
        raise ValueError(f"sample_rate must be a positive whole number of Hz, not {sample_rate!r}")
    return rate
