"""Chunked processing of long signals in bounded memory.

:func:`overlap_add` cuts a stream of blocks into segments of a fixed length
that overlap by ``overlap`` samples, runs a function on each segment, and
joins the results with a linear crossfade: weighted overlap-add, divided by
the summed weights, with a check that every output sample was covered
(the scheme of Demucs' ``apply.py``, but streaming).  Memory holds one segment
and its overlap, whatever the input's length.  :func:`overlap_sum` is the
same stream for processes that return overlap-add contributions (summed, not
crossfaded: the exact path of the ``spleeter`` preset); both cut the stream
with :func:`segments`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np


def segments(blocks: Iterable[np.ndarray], channels: int, segment: int, step: int) -> Iterator[tuple[np.ndarray, bool]]:
    """Cut a stream of ``(channels, n)`` blocks of any sizes into segments of at most
    ``segment`` samples that start every ``step`` samples; yields ``(segment, last)``.
    Memory holds one segment and the next block."""
    buf: list[np.ndarray] = []
    buffered = 0
    it = iter(blocks)
    eof = False
    while True:
        # read until we hold more than one segment, so that we know whether this one is the last
        while not eof and buffered <= segment:
            try:
                b = next(it)
            except StopIteration:
                eof = True
                break
            if b.ndim != 2 or b.shape[0] != channels:
                raise ValueError(f"expected blocks of shape ({channels}, n), got {b.shape}")
            if b.shape[1]:
                buf.append(b)
                buffered += b.shape[1]
        if buffered == 0:
            return
        whole = np.concatenate(buf, axis=1) if len(buf) > 1 else buf[0]
        last = eof and buffered <= segment
        yield whole[:, :segment], last
        if last:
            return
        rest = whole[:, step:]
        buf = [rest] if rest.shape[1] else []
        buffered = rest.shape[1]


def overlap_sum(
    blocks: Iterable[np.ndarray],
    channels: int,
    segment: int,
    overlap: int,
    process: Callable[[np.ndarray, bool], dict[str, np.ndarray]],
) -> Iterator[dict[str, np.ndarray]]:
    """Like :func:`overlap_add`, but the outputs of consecutive segments are
    *summed* where they overlap (no crossfade, no normalisation): for processes that return
    overlap-add contributions.  ``process(segment, last)`` is told which segment is the last."""
    if segment <= 0 or not 0 <= overlap < segment:
        raise ValueError(f"need segment > 0 and 0 <= overlap < segment (segment={segment}, overlap={overlap})")
    step = segment - overlap
    pending: dict[str, np.ndarray] | None = None
    for seg, last in segments(blocks, channels, segment, step):
        length = seg.shape[1]
        out = process(seg, last)
        emit = length if last else step
        result, new_pending = {}, {}
        for name, y in out.items():
            if y.shape[-1] != length:
                raise ValueError(f"process returned {y.shape[-1]} samples for a segment of {length}")
            if pending is not None:
                y = y.copy()
                y[..., : pending[name].shape[-1]] += pending[name]
            result[name] = y[..., :emit]
            new_pending[name] = y[..., emit:]
        pending = new_pending
        yield result


def overlap_add(
    blocks: Iterable[np.ndarray],
    channels: int,
    segment: int,
    overlap: int,
    process: Callable[[np.ndarray], dict[str, np.ndarray]],
) -> Iterator[dict[str, np.ndarray]]:
    """Yield processed output blocks, in order, as soon as they are final.

    ``blocks``: float32 ``(channels, n)`` arrays of any sizes.
    ``process``: ``(channels, L)`` -> ``{name: (channels', L)}`` for one segment.
    The yielded blocks, concatenated, have exactly the input's length.
    """
    if segment <= 0 or not 0 <= overlap <= segment // 2:
        raise ValueError(f"need segment > 0 and 0 <= overlap <= segment / 2 (segment={segment}, overlap={overlap})")
    step = segment - overlap
    ramp_up = ((np.arange(overlap, dtype=np.float64) + 0.5) / overlap).astype(np.float32) if overlap else np.zeros(0, np.float32)
    pending: dict[str, np.ndarray] | None = None
    pending_w: np.ndarray | None = None
    first = True
    for seg, last in segments(blocks, channels, segment, step):
        length = seg.shape[1]
        out = process(seg)
        w = np.ones(length, np.float32)
        if not first:
            n = min(overlap, length)
            w[:n] = ramp_up[:n]
        if not last:
            w[length - overlap :] = ramp_up[::-1]
        emit = length if last else length - overlap
        result = {}
        new_pending = {}
        wsum = w.copy()
        if pending_w is not None:
            wsum[: pending_w.shape[0]] += pending_w
        if not (wsum[:emit] > 0).all():
            raise AssertionError("overlap-add left output samples uncovered")
        for name, y in out.items():
            if y.shape[-1] != length:
                raise ValueError(f"process returned {y.shape[-1]} samples for a segment of {length}")
            acc = y * w
            if pending is not None:
                acc[..., : pending[name].shape[-1]] += pending[name]
            result[name] = acc[..., :emit] / wsum[:emit]
            new_pending[name] = acc[..., emit:]
        pending, pending_w = new_pending, wsum[emit:]
        yield result
        first = False
