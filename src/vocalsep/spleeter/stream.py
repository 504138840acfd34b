"""Spleeter's separation of a whole stream, as Spleeter does it (its framing, its patches, its
overlap-add), in bounded memory: the front end of the spleeter presets' exact path, run by
:class:`~vocalsep.separator.Separator` (``sep``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from ..chunking import overlap_sum
from ..separation.framings import _as_tensor
from ..spectral import apply_mask
from ..stems import STEMS


@torch.inference_mode()
def _chunk(sep, chunk: np.ndarray, last: bool, stems: Sequence[str]) -> dict[str, np.ndarray]:
    """One chunk of :func:`spleeter_stream`: the overlap-add contributions ``{stem: (channels, n)}``
    of the chunk's frames (all of them on the last chunk, else those that lie inside it)."""
    front = sep.front
    stft = front.low_stft
    xs = front.prepare(chunk)
    n = chunk.shape[-1]
    zero_above = front.high_band == "zero"  # nothing above the modelled band
    # only the modelled bins are needed unless a complement stem wants the whole mixture
    low_only = zero_above and not sep.options.complement and set(STEMS) <= set(sep.models)
    spec = stft.frame(_as_tensor(xs, sep.device), pad_end=last, bins=sep.preset.bins if low_only else None)
    masks, primary, rest = sep.stem_masks(spec, stems)
    if zero_above:  # the inverse FFT zero-pads the bins above
        out = {t: stft.overlap_add(apply_mask(spec[..., : m.shape[-2], :], m), n).cpu().numpy() for t, m in masks.items()}
    else:
        out = {t: stft.overlap_add(apply_mask(spec, front.extend(m)), n).cpu().numpy() for t, m in masks.items()}
    if rest is not None:  # the mixture's own contribution minus the primary stem's
        out[rest] = stft.overlap_add(spec, n).cpu().numpy() - out[primary]
    if xs is not chunk:
        out = {t: front.restore(y, chunk.shape[0]) for t, y in out.items()}
    return {s: out[s] for s in stems}

def spleeter_stream(sep, blocks: Iterable[np.ndarray], channels: int, stems: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
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
    p = sep.preset
    step = sep.segment_frames * p.hop
    segment = step + p.n_fft - p.hop

    def padded():
        yield np.zeros((channels, p.n_fft), np.float32)
        yield from blocks

    skip = p.n_fft
    for out in overlap_sum(padded(), channels, segment, segment - step, lambda c, last: _chunk(sep, c, last, stems)):
        if skip:
            k = min(skip, next(iter(out.values())).shape[-1])
            out = {s: y[..., k:] for s, y in out.items()}
            skip -= k
        if next(iter(out.values())).shape[-1]:
            yield out
