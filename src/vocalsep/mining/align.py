"""Per-file and per-pair audio work: pure functions of file paths and a config.

:func:`digest_file` decodes one file and hashes its content (the same audio
under another name, container or tag set gives the same hash).

:func:`align_pair` decodes an original and an instrumental and finds how the
instrumental sits inside the original, in the convention of
:class:`vocalsep.data.PairManifest`::

    original[t] ~= gain * instrumental[t + offset * rate]      (outside vocals)

i.e. ``offset`` is the number of seconds the instrumental lags the original
and ``instrumental x gain`` matches the original: coarse offsets from onset envelopes, each
refined to the sample by GCC-PHAT, the gain by least squares outside the vocal regions, and
the residual deciding acceptance (every step and threshold: docs/mining.md).

Results are plain JSON-able dicts (they travel between processes and Ray
workers and are stored as files).  Arrays are float32 ``(channels, samples)``.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError, VocalsepError

FEATURE_RATE = 8000  # Hz of the coarse onset analysis
FEATURE_FFT = 512  # samples (64 ms) per onset frame
FEATURE_BANDS = (24, 60.0, 3900.0)  # bands, lowest and highest edge in Hz
RESIDUAL_BAND = (50.0, 8000.0)  # Hz compared by the residual (at most 70 % of the Nyquist frequency)


@dataclass(frozen=True)
class AlignConfig:
    """Thresholds of the audio stage (seconds, dB, shares in [0, 1]).

    - ``max_offset``: largest |offset| searched;
    - ``min_overlap``: shortest common part of the two files;
    - ``frame_hop``: onset frame hop (the coarse resolution);
    - ``fine_window``: +- seconds searched around the coarse offset;
    - ``max_residual_db``: highest residual-to-original level outside vocal
      regions (above it: a different master, mix or song);
    - ``min_vocal_activity``: lowest share of vocal frames (below it: the
      "instrumental" is the original itself);
    - ``vocal_margin_db``, ``vocal_min_db``: a frame is vocal when its
      residual-to-original ratio is this far above the floor and above this
      level (lossy coding noise stays below it);
    - ``max_gain_db``: largest |gain| in dB;
    - ``min_confidence``: pairs below it are rejected (0.5: each measure at its threshold).
    """

    max_offset: float = 10.0
    min_overlap: float = 5.0
    frame_hop: float = 0.01
    fine_window: float = 0.03
    max_residual_db: float = -15.0
    min_vocal_activity: float = 0.03
    vocal_margin_db: float = 10.0
    vocal_min_db: float = -20.0
    max_gain_db: float = 20.0
    min_confidence: float = 0.5

    def __post_init__(self):
        for name in ("max_offset", "min_overlap", "frame_hop", "fine_window", "vocal_margin_db", "max_gain_db"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{name} must be a positive number, got {value}")
        if not 0 <= self.min_vocal_activity < 1 or not 0 < self.min_confidence < 1:
            raise ConfigError("min_vocal_activity must be in [0, 1) and min_confidence in (0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


# -- decoding and content hashes

def _decode(path: str) -> tuple[np.ndarray, int]:
    from ..audio import load
    from ..errors import AudioError

    x, sr = load(path)
    if x.shape[1] == 0:
        raise AudioError(path, "contains no audio samples")
    if not np.any(x):
        raise AudioError(path, "is silent (all samples are zero)")
    return x, sr


def content_hash(x: np.ndarray, rate: int) -> str:
    """SHA-1 of the decoded audio quantised to 16 bits, with its rate and channel count."""
    q = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    h = hashlib.sha1(f"{rate}|{x.shape[0]}|".encode())
    h.update(np.ascontiguousarray(q).tobytes())
    return h.hexdigest()


def digest_file(path: str | os.PathLike) -> dict:
    """``{"status": "ok", "hash", "rate", "channels", "seconds"}`` or ``{"status": "failed", "reason"}``."""
    path = os.fspath(path)
    try:
        x, sr = _decode(path)
    except VocalsepError as exc:
        return {"status": "failed", "reason": str(exc)}
    return {"status": "ok", "hash": content_hash(x, sr), "rate": sr, "channels": int(x.shape[0]), "seconds": x.shape[1] / sr}


# -- signal helpers

def match_channels(y: np.ndarray, channels: int) -> np.ndarray:
    """``y`` with ``channels`` channels, as :class:`PairManifest` does: the mono mix repeated when the counts differ."""
    if y.shape[0] == channels:
        return y
    return np.repeat(y.mean(axis=0, keepdims=True), channels, axis=0)


def shift(y: np.ndarray, lag: int) -> np.ndarray:
    """``y[:, t + lag]`` for t >= 0: drop ``lag`` samples, or pad ``-lag`` zeros in front (the manifest's rule)."""
    return y[:, lag:] if lag >= 0 else np.pad(y, ((0, 0), (-lag, 0)))


def _band_matrix(n_fft: int, rate: int) -> np.ndarray:
    """``(bands, n_fft // 2 + 1)`` 0/1 matrix of log-spaced bands, each at least one bin wide."""
    bands, low, high = FEATURE_BANDS
    edges = np.geomspace(low, high, bands + 1) * n_fft / rate
    lo = np.floor(edges[:-1]).astype(int)
    hi = np.maximum(np.floor(edges[1:]).astype(int), lo + 1)
    m = np.zeros((bands, n_fft // 2 + 1), np.float32)
    for b in range(bands):
        m[b, lo[b] : hi[b]] = 1.0
    return m


def onset_envelope(mono: np.ndarray, rate: int, hop_seconds: float) -> np.ndarray:
    """``(bands, frames)`` standardised onset strength of a mono ``(samples,)`` signal.

    Frames every ``hop_seconds`` at :data:`FEATURE_RATE`; per band, the positive
    frame-to-frame difference of the log energy, then zero mean and unit variance.
    """
    from ..audio import resample

    x = resample(mono[None, :].astype(np.float32), rate, FEATURE_RATE)[0]
    hop = max(1, int(round(hop_seconds * FEATURE_RATE)))
    x = np.pad(x, (FEATURE_FFT // 2, FEATURE_FFT // 2))
    if x.size < FEATURE_FFT + hop:
        return np.zeros((FEATURE_BANDS[0], 1), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, FEATURE_FFT)[::hop] * np.hanning(FEATURE_FFT).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    energy = _band_matrix(FEATURE_FFT, FEATURE_RATE) @ power.T.astype(np.float32)
    log_e = np.log(energy + 1e-10 * FEATURE_FFT)
    onset = np.maximum(np.diff(log_e, axis=1, prepend=log_e[:, :1]), 0.0)
    onset -= onset.mean(axis=1, keepdims=True)
    onset /= onset.std(axis=1, keepdims=True) + 1e-6
    return onset.astype(np.float32)


def coarse_lags(ox: np.ndarray, oy: np.ndarray, max_lag: int, min_overlap: int, count: int = 5, exclude: int = 10) -> tuple[list[int], float]:
    """The ``count`` best lags in frames (best first) of the mean of ``ox[:, f] * oy[:, f + lag]``, and the peak ratio.

    ``ox``, ``oy``: ``(bands, frames)``.  Lags with fewer than ``min_overlap``
    common frames or beyond ``+-max_lag`` are not considered; the lags
    returned are at least ``exclude`` frames apart (music repeats every beat
    and bar, so the second peak is often a beat away from the first: each is
    verified on the audio).  The peak ratio is the best value over the best
    one at least ``exclude`` frames away, both above the median of all lags.
    """
    fx, fy = ox.shape[1], oy.shape[1]
    n = 1 << int(math.ceil(math.log2(fx + fy)))
    spec = (np.conj(np.fft.rfft(ox, n, axis=1)) * np.fft.rfft(oy, n, axis=1)).sum(axis=0)
    corr = np.fft.irfft(spec, n)
    lags = np.arange(-min(max_lag, fx - 1), min(max_lag, fy - 1) + 1)
    overlap = np.minimum(fx, fy - lags) - np.maximum(0, -lags)
    ok = overlap >= min_overlap
    if not ok.any():
        raise ValueError("the files do not overlap enough at any offset")
    lags, values = lags[ok], corr[lags[ok] % n] / overlap[ok]
    base = float(np.median(values))
    best: list[int] = []
    free = np.ones(values.size, bool)
    while len(best) < count and free.any():
        i = int(np.flatnonzero(free)[np.argmax(values[free])])
        best.append(i)
        free &= np.abs(lags - lags[i]) > exclude
    top = values[best[0]] - base
    second = values[best[1]] - base if len(best) > 1 else 0.0
    ratio = top / max(second, 1e-9 * max(top, 1e-12))
    return [int(lags[i]) for i in best], float(ratio)


def fine_lag(x: np.ndarray, y: np.ndarray, lag0: int, margin: int, excerpt: int, count: int = 8, beta: float = 0.8) -> int:
    """The lag within ``lag0 +- margin`` samples maximising the GCC-PHAT of mono ``x`` and ``y`` (``(samples,)``).

    Up to ``count`` excerpts of ``excerpt`` samples of ``x`` spread over the
    overlap are correlated with ``y``; their cross-spectra are summed and
    whitened by ``|S| ** beta`` before the inverse FFT.
    """
    lo = max(0, margin - lag0)
    hi = min(x.size, y.size - margin - lag0) - excerpt
    if hi < lo:
        excerpt = max(0, min(x.size, y.size - margin - lag0) - lo)
        hi = lo
    if excerpt < 2 * margin:
        return lag0
    n = 1 << int(math.ceil(math.log2(excerpt + 2 * margin + excerpt)))
    total = np.zeros(n // 2 + 1, np.complex128)
    for t in np.unique(np.linspace(lo, hi, count).astype(int)):
        xs = x[t : t + excerpt]
        ys = y[t + lag0 - margin : t + lag0 + margin + excerpt]
        total += np.conj(np.fft.rfft(xs, n)) * np.fft.rfft(ys, n)
    corr = np.fft.irfft(total / (np.abs(total) ** beta + 1e-20), n)[: 2 * margin + 1]
    return lag0 - margin + int(np.argmax(corr))


def frame_energies(x: np.ndarray, frame: int) -> np.ndarray:
    """``(frames,)`` energy of ``(channels, samples)`` per non-overlapping frame (the tail frame dropped)."""
    n = x.shape[1] // frame
    return (x[:, : n * frame].astype(np.float64) ** 2).reshape(x.shape[0], n, frame).sum(axis=(0, 2))


def least_squares_gain(x: np.ndarray, y: np.ndarray, frame: int, keep: np.ndarray | None = None) -> float:
    """The gain g minimising ``|x - g y|^2`` over the frames where ``keep`` is true (all when None)."""
    n = (x.shape[1] // frame) * frame
    xy = (x[:, :n].astype(np.float64) * y[:, :n]).reshape(x.shape[0], -1, frame).sum(axis=(0, 2))
    yy = frame_energies(y, frame)
    if keep is not None and keep.any():
        xy, yy = xy[keep], yy[keep]
    return float(xy.sum() / max(yy.sum(), 1e-30))


def _frames(mono: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(frames, n_fft)`` Hann-windowed frames of ``(samples,)`` (a view: no copy until windowed)."""
    padded = np.pad(mono.astype(np.float32), (n_fft // 2, n_fft // 2))
    return np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]


def spectral_energies(x: np.ndarray, y: np.ndarray, gain: float, n_fft: int, bins: slice, block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Per STFT frame (hop ``n_fft // 2``): the energy of ``|X|`` and of ``|X| - gain |Y|``.

    ``x``, ``y``: aligned ``(channels, n)``, compared as their mono mixes.
    Magnitudes, not waveforms: lossy coding keeps a band's energy but not
    the waveform of noise-like sounds (cymbals, drums), so a waveform residual
    would call a re-encoded copy "different".  Blocks of ``block`` frames
    bound the memory; only the frequency ``bins`` count (lossy encoders cut the
    top of the spectrum).  Returns two ``(frames,)`` float64 arrays.
    """
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    fx, fy = _frames(x.mean(axis=0), n_fft, n_fft // 2), _frames(y.mean(axis=0), n_fft, n_fft // 2)
    ex, er = [], []
    for i in range(0, fx.shape[0], block):
        mx = np.abs(np.fft.rfft(fx[i : i + block] * window, axis=1)[:, bins])
        my = np.abs(np.fft.rfft(fy[i : i + block] * window, axis=1)[:, bins])
        ex.append((mx.astype(np.float64) ** 2).sum(axis=1))
        er.append(((mx - abs(gain) * my).astype(np.float64) ** 2).sum(axis=1))
    return np.concatenate(ex), np.concatenate(er)


def residual_stats(ex: np.ndarray, er: np.ndarray, margin_db: float, min_db: float) -> dict:
    """Residual measures from per-frame energies of the original ``ex`` and of the residual ``er``.

    Returns ``floor_db`` (5th percentile of the residual-to-original ratio over
    frames with signal), ``vocal`` (bool per frame: ratio above floor +
    ``margin_db`` and above ``min_db``), ``active`` (frames with signal: energy
    above 1e-5 of the loudest frame's), ``residual_db`` (residual-to-original energy ratio
    over active frames outside vocal regions) and ``vocal_activity`` (share
    of active frames that are vocal).
    """
    active = ex > ex.max() * 1e-5
    ratio = 10 * np.log10((er + 1e-20) / (ex + 1e-20))
    floor = float(np.percentile(ratio[active], 5))
    vocal = active & (ratio > max(floor + margin_db, min_db))
    quiet = active & ~vocal
    residual = 10 * math.log10((er[quiet].sum() + 1e-20) / (ex[quiet].sum() + 1e-20))
    return {"floor_db": floor, "vocal": vocal, "active": active, "residual_db": residual,
            "vocal_activity": float(vocal.sum() / max(active.sum(), 1))}


def _score(value: float, threshold: float, scale: float) -> float:
    """Logistic confidence: 0.5 at ``threshold``, rising with ``value`` over ``scale``."""
    z = max(min((value - threshold) / scale, 50.0), -50.0)
    return 1.0 / (1.0 + math.exp(-z))


def confidences(m: dict, cfg: AlignConfig) -> dict[str, float]:
    """Per-measure confidences in (0, 1), each 0.5 at its threshold in ``cfg``."""
    return {
        "residual": _score(cfg.max_residual_db - m["residual_db"], 0.0, 2.0),
        "vocal_activity": _score(m["vocal_activity"], cfg.min_vocal_activity, 0.01),
        "gain": _score(cfg.max_gain_db - abs(m["gain_db"]), 0.0, 1.0),
    }


REASONS = {
    "residual": "residual {residual_db:.1f} dB outside vocal regions (> {max_residual_db:g} dB): a different master, mix or recording",
    "vocal_activity": "vocal activity {vocal_activity:.1%} (< {min_vocal_activity:.0%}): the instrumental is the same audio as the original",
    "gain": "gain {gain_db:+.1f} dB (beyond +-{max_gain_db:g} dB): the instrumental is not contained in the original",
}


def _candidate_lags(x: np.ndarray, y: np.ndarray, rate: int, cfg: AlignConfig) -> tuple[list[int], float]:
    """Sample lags worth verifying (coarse onset peaks refined by GCC-PHAT) and the onset peak ratio."""
    hop = cfg.frame_hop
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    ox, oy = onset_envelope(xm, rate, hop), onset_envelope(ym, rate, hop)
    coarse, peak_ratio = coarse_lags(ox, oy, int(round(cfg.max_offset / hop)), int(round(cfg.min_overlap / hop)))
    margin, excerpt = int(math.ceil(cfg.fine_window * rate)), int(round(2.0 * rate))
    lags = [fine_lag(xm, ym, int(round(c * hop * rate)), margin, excerpt) for c in coarse]
    return list(dict.fromkeys(lags)), peak_ratio


def _aligned(x: np.ndarray, y: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    y_al = shift(y, lag)
    n = min(x.shape[1], y_al.shape[1])
    return x[:, :n], y_al[:, :n]


def measure(x: np.ndarray, y: np.ndarray, rate: int, cfg: AlignConfig) -> dict:
    """Offset, gain and residual measures for decoded ``x`` (original) and ``y``
    (instrumental, already at ``rate`` with ``x``'s channel count); see the module docstring.

    Of the candidate lags, the one leaving the least residual energy wins.
    """
    frame = max(1, int(round(0.05 * rate)))
    lags, peak_ratio = _candidate_lags(x, y, rate, cfg)

    def leftover(lag: int) -> float:
        xs, ys = _aligned(x, y, lag)
        if xs.shape[1] < max(cfg.min_overlap * rate, frame):
            return math.inf
        g = least_squares_gain(xs, ys, frame)
        return float(frame_energies(xs - g * ys, frame).sum() / max(frame_energies(xs, frame).sum(), 1e-30))

    lag = min(lags, key=leftover)
    xs, ys = _aligned(x, y, lag)
    if xs.shape[1] < cfg.min_overlap * rate:
        raise ValueError(f"the aligned files overlap for {xs.shape[1] / rate:.1f} s only (< {cfg.min_overlap:g} s)")
    n_fft = 1 << int(round(math.log2(0.05 * rate)))  # about 50 ms
    top = min(RESIDUAL_BAND[1], 0.7 * rate / 2)
    bins = slice(int(RESIDUAL_BAND[0] * n_fft / rate), int(top * n_fft / rate) + 1)
    gain = least_squares_gain(xs, ys, n_fft // 2)
    stats = residual_stats(*spectral_energies(xs, ys, gain, n_fft, bins), cfg.vocal_margin_db, cfg.vocal_min_db)
    quiet = ~stats["vocal"] & stats["active"]
    if gain > 0 and quiet.sum() >= 10:  # again, outside the vocal regions (STFT frame i covers hops i-1 and i)
        keep = quiet[1:] if quiet.size > xs.shape[1] // (n_fft // 2) else quiet
        gain = least_squares_gain(xs, ys, n_fft // 2, keep[: xs.shape[1] // (n_fft // 2)])
        stats = residual_stats(*spectral_energies(xs, ys, gain, n_fft, bins), cfg.vocal_margin_db, cfg.vocal_min_db)
    return {"offset": lag / rate, "offset_samples": lag, "rate": rate, "gain": gain,
            "gain_db": 20 * math.log10(gain) if gain > 0 else -math.inf, "peak_ratio": peak_ratio, "lags_tried": len(lags),
            "residual_db": stats["residual_db"], "floor_db": stats["floor_db"], "vocal_activity": stats["vocal_activity"],
            "overlap_seconds": xs.shape[1] / rate}


def align_pair(original: str | os.PathLike, instrumental: str | os.PathLike, cfg: AlignConfig | dict | None = None) -> dict:
    """Align and verify one pair (see the module docstring); never raises for bad audio.

    Returns a JSON-able dict: ``status`` ("accepted", "rejected" or "failed"),
    ``reason`` (why, for the last two), and when measured ``offset`` (s),
    ``offset_samples`` (at ``rate``, the original's), ``gain`` (linear),
    ``gain_db``, ``residual_db``, ``floor_db``, ``vocal_activity`` (0-1),
    ``peak_ratio``, ``overlap_seconds``, ``confidences`` and ``confidence``
    (the smallest of them).
    """
    from ..audio import resample

    cfg = AlignConfig(**cfg) if isinstance(cfg, dict) else cfg or AlignConfig()
    try:
        x, sr = _decode(os.fspath(original))
        y, sry = _decode(os.fspath(instrumental))
    except VocalsepError as exc:
        return {"status": "failed", "reason": str(exc)}
    y = match_channels(resample(y, sry, sr), x.shape[0])
    try:
        m = measure(x, y, sr, cfg)
    except ValueError as exc:
        return {"status": "rejected", "reason": str(exc)}
    conf = confidences(m, cfg)
    weakest = min(conf, key=conf.get)
    m["confidences"] = conf
    m["confidence"] = conf[weakest]
    if m["gain"] <= 0:
        m["gain_db"] = None
        return {**m, "status": "rejected", "reason": "the instrumental correlates negatively with the original: inverted or not contained in it"}
    if conf[weakest] < cfg.min_confidence:
        return {**m, "status": "rejected", "reason": REASONS[weakest].format(**m, **cfg.to_dict())}
    return {**m, "status": "accepted", "reason": ""}
