"""Excerpts of a listening study: where there is singing, and how each clip is cut, faded,
degraded and measured.

How excerpts are chosen (deterministic for a given ``seed``):

- *where there is singing*: the true vocal stem when given, else the first
  system's vocal estimate, in 20 ms frames; a frame is voiced when its RMS
  level is above -60 dBFS and within ``relative_db`` decibels (default 20)
  of the track's loud level (the 95th percentile of its frame levels), so
  that the low accompaniment residue of a separated vocal stem, or a
  recording's noise floor, does not count as singing;
- candidate windows of ``duration`` seconds start every 0.1 s; a window is
  eligible when at least ``min_voiced`` (80 %) of its frames are voiced;
- the tracks are visited in a seeded random order, one excerpt per track per
  round (so ``clips`` excerpts come from as many tracks as possible), each
  a seeded random choice among the track's eligible windows that do not
  overlap one already taken.

Every clip of an excerpt (the mixture, each system's stems, the controls'
clips) is cut at the same start and length (read at each file's own rate,
in seconds), faded in and out over ``fade`` seconds (20 ms, raised cosine,
against clicks), optionally mixed down to mono, and then loudness-normalised
(ITU-R BS.1770-4 integrated loudness with pyloudnorm; a mono clip is measured
as it is heard, on both ears): every clip gets the gain that brings it to
``loudness`` LUFS (-23, EBU R128), the common target lowered where a clip's true peak would pass
``ceiling``; a clip too quiet to measure keeps its level (each rule: docs/listening-test.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..audio import AudioReader, resample
from ..errors import AudioError

FRAME_SECONDS = 0.02
STEP_FRAMES = 5  # candidate windows start every 0.1 s
VOICED_DBFS = -60.0
DEGRADE_NOISE_DB = 5.0  # degrade(): white noise this far below the clip's RMS


# -- where there is singing

def frame_levels(path: Path) -> np.ndarray:
    """RMS level (dBFS) of each 20 ms frame of a file, channels averaged in power; read in blocks."""
    reader = AudioReader(path)
    hop = max(1, round(FRAME_SECONDS * reader.sample_rate))
    carry = np.zeros(0, np.float64)
    levels = []
    for block in reader.blocks():
        power = np.concatenate([carry, np.mean(np.asarray(block, np.float64) ** 2, axis=0)])
        n = power.size // hop * hop
        if n:
            levels.append(10 * np.log10(power[:n].reshape(-1, hop).mean(axis=1) + 1e-20))
        carry = power[n:]
    return np.concatenate(levels) if levels else np.zeros(0)


def voiced_frames(levels: np.ndarray, relative_db: float = 20.0) -> np.ndarray:
    """Boolean per frame: above -60 dBFS and within ``relative_db`` of the 95th-percentile level."""
    if levels.size == 0:
        return np.zeros(0, bool)
    threshold = max(VOICED_DBFS, float(np.percentile(levels, 95)) - relative_db)
    return levels > threshold


def window_shares(voiced: np.ndarray, window: int, usable: int) -> tuple[np.ndarray, np.ndarray]:
    """(start frames, share of voiced frames) of every ``window``-frame window starting every
    ``STEP_FRAMES`` frames and ending within the first ``usable`` frames."""
    usable = min(usable, voiced.size)
    if window > usable:
        return np.zeros(0, int), np.zeros(0)
    cs = np.concatenate([[0], np.cumsum(voiced[:usable], dtype=np.int64)])
    starts = np.arange(0, usable - window + 1, STEP_FRAMES)
    return starts, (cs[starts + window] - cs[starts]) / window


def choose_excerpts(shares: dict[str, tuple[np.ndarray, np.ndarray]], count: int, window: int, min_voiced: float,
                    seed: int) -> list[tuple[str, int, float]]:
    """Pick up to ``count`` non-overlapping windows ``(track, start frame, share)``: tracks in a seeded
    random order, one per track per round, each a seeded random choice among the eligible windows."""
    rng = np.random.default_rng(seed)
    names = sorted(shares)
    order = [names[i] for i in rng.permutation(len(names))]
    taken: dict[str, list[int]] = {t: [] for t in names}
    chosen: list[tuple[str, int, float]] = []
    while len(chosen) < count:
        added = False
        for t in order:
            if len(chosen) == count:
                break
            starts, share = shares[t]
            ok = share >= min_voiced - 1e-9
            for s in taken[t]:
                ok &= np.abs(starts - s) >= window
            idx = np.flatnonzero(ok)
            if idx.size == 0:
                continue
            k = int(idx[rng.integers(idx.size)])
            taken[t].append(int(starts[k]))
            chosen.append((t, int(starts[k]), float(share[k])))
            added = True
        if not added:
            break
    return sorted(chosen, key=lambda c: (c[0], c[1]))


# -- clips

def cut(path: Path, start: float, duration: float, *, mono: bool) -> tuple[np.ndarray, int]:
    """``duration`` seconds from ``start`` of a file, exactly ``round(duration * rate)`` samples."""
    reader = AudioReader(path, offset=start, duration=duration)
    x = reader.read()
    rate = reader.sample_rate
    want = round(duration * rate)
    if x.shape[1] < want - round(0.05 * rate):
        raise AudioError(path, f"ends at {start + x.shape[1] / rate:.2f} s, before the excerpt's end at {start + duration:.2f} s")
    if x.shape[1] < want:
        x = np.pad(x, ((0, 0), (0, want - x.shape[1])))
    x = x[:, :want]
    if mono and x.shape[0] > 1:
        x = x.mean(axis=0, keepdims=True)
    return np.ascontiguousarray(x, np.float32), rate


def fade(x: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    n = min(round(seconds * rate), x.shape[1] // 2)
    if n < 1:
        return x
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
    y = x.copy()
    y[:, :n] *= ramp
    y[:, -n:] *= ramp[::-1]
    return y


def degrade(x: np.ndarray, rate: int, seed: int) -> np.ndarray:
    """A clearly poor version of a clip: low-pass 3.5 kHz, hard clipping at 30 % of the peak, noise
    ``DEGRADE_NOISE_DB`` below its RMS."""
    from scipy.signal import butter, sosfilt

    y = np.asarray(x, np.float64)
    if rate > 8000:
        y = sosfilt(butter(4, 3500, "low", fs=rate, output="sos"), y, axis=1)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0:
        y = np.clip(y, -0.3 * peak, 0.3 * peak)
    rms = float(np.sqrt(np.mean(y**2))) if y.size else 0.0
    noise = np.random.default_rng(seed).standard_normal(y.shape) * rms * 10 ** (-DEGRADE_NOISE_DB / 20)
    return (y + noise).astype(np.float32)


def loudness_lufs(x: np.ndarray, rate: int) -> float:
    """BS.1770-4 integrated loudness of ``(channels, samples)``; a mono clip is measured on two channels
    (as heard on headphones).  -inf when everything is below the absolute gate."""
    import pyloudnorm

    data = np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x
    meter = pyloudnorm.Meter(rate)
    return float(meter.integrated_loudness(np.asarray(data.T, np.float64)))


def true_peak_db(x: np.ndarray, rate: int) -> float:
    """Peak level (dBFS) of the 4x-oversampled clip (an estimate of the true peak, as in BS.1770 annex 2)."""
    y = resample(np.ascontiguousarray(x, np.float32), rate, 4 * rate)
    peak = max(float(np.max(np.abs(y))) if y.size else 0.0, float(np.max(np.abs(x))) if x.size else 0.0)
    return 20 * math.log10(peak) if peak > 0 else -math.inf
