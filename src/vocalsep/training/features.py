"""Cached training features and the patch sampler.

The cache holds each track's sources as mono float32 waveforms at the
preset's rate (``.npz`` per track, keyed by the source files' paths, sizes and
modification times and by the rate), so that epochs never decode or resample
audio again.  Spectrograms are computed per batch from those waveforms,
because augmentation (remixing) happens on waveforms.

Stereo tracks are mixed down to mono (mean of the channels), as the paper's
model is mono.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._atomic import publish, temp_beside
from ..config import Preset
from ..data.datasets import Track
from ..spectral import STFT
from .config import Augment

log = logging.getLogger(__name__)


@dataclass
class CachedTrack:
    name: str
    group: str
    kind: str  # "stems" | "pair"
    mixture: np.ndarray  # (samples,) float32 at the preset's rate
    accompaniment: np.ndarray
    vocals: np.ndarray | None  # None for pairs

    @property
    def samples(self) -> int:
        return self.mixture.shape[0]


def load_cached(track: Track, rate: int, cache_dir: Path | None) -> CachedTrack:
    path = None
    if cache_dir is not None:
        digest = hashlib.sha1(f"{track.key}|{rate}|v1".encode()).hexdigest()[:20]
        path = cache_dir / f"{digest}.npz"
        if path.is_file():
            try:
                with np.load(path) as z:
                    voc = z["vocals"] if "vocals" in z.files else None
                    return CachedTrack(track.name, track.group, track.kind, z["mixture"], z["accompaniment"], voc)
            except Exception:  # noqa: BLE001 - a broken cache entry is rebuilt
                log.warning("%s: unreadable cache entry, rebuilding", path)
    data = track.load(rate)
    mono = {k: np.ascontiguousarray(v.mean(axis=0), dtype=np.float32) for k, v in data.items()}
    if path is not None:
        tmp = temp_beside(path)
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **mono)
            publish(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return CachedTrack(track.name, track.group, track.kind, mono["mixture"], mono["accompaniment"], mono.get("vocals"))


class PatchSampler:
    """Draws training batches: mixture and target magnitudes ``(batch, 1, bins, frames)``
    and a frame weight ``(batch, 1, 1, frames)`` (0 on padding past a track's end).

    Every draw is a pure function of ``(seed, rank, step)``, so a resumed run
    draws exactly what an uninterrupted one would.
    """

    def __init__(self, tracks: list[CachedTrack], preset: Preset, target: str, augment: Augment, seed: int = 0, rank: int = 0,
                 target_rule: str = "magnitude"):
        if not tracks:
            raise ValueError("no training tracks")
        self.tracks = tracks
        self.preset = preset
        self.target = target
        self.augment = augment
        self.target_rule = target_rule
        self.seed = seed
        self.rank = rank
        self.stft = STFT(preset.n_fft, preset.hop)
        self.patch_samples = (preset.patch_frames - 1) * preset.hop + 1
        lengths = np.array([max(t.samples, 1) for t in tracks], np.float64)
        self.weights = lengths / lengths.sum()
        self.stems = [i for i, t in enumerate(tracks) if t.vocals is not None]
        self.total_samples = int(lengths.sum())

    def _crop(self, x: np.ndarray, start: int) -> tuple[np.ndarray, int]:
        seg = x[start : start + self.patch_samples]
        valid = seg.shape[0]
        if valid < self.patch_samples:
            seg = np.pad(seg, (0, self.patch_samples - valid))
        return seg, valid

    def _start(self, rng: np.random.Generator, t: CachedTrack) -> int:
        return int(rng.integers(0, max(1, t.samples - self.patch_samples + 1)))

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, step])
        a = self.augment
        mixes, voices, accs, valids = [], [], [], []
        pair_flags = []
        for _ in range(batch_size):
            i = int(rng.choice(len(self.tracks), p=self.weights))
            t = self.tracks[i]
            start = self._start(rng, t)
            if t.vocals is None:  # a pair: original and instrumental move together
                mix, valid = self._crop(t.mixture, start)
                acc, _ = self._crop(t.accompaniment, start)
                mixes.append(mix)
                accs.append(acc)
                voices.append(None)
                valids.append(valid)
                pair_flags.append(True)
                continue
            voc, valid = self._crop(t.vocals, start)
            if self.stems and rng.random() < a.remix:
                j = self.stems[int(rng.integers(len(self.stems)))]
                other = self.tracks[j]
                acc, valid_a = self._crop(other.accompaniment, self._start(rng, other))
                valid = min(valid, valid_a)
            else:
                acc, _ = self._crop(t.accompaniment, start)
            voices.append(voc)
            accs.append(acc)
            mixes.append(voc + acc)
            valids.append(valid)
            pair_flags.append(False)
        mix = torch.from_numpy(np.stack(mixes).astype(np.float32))
        acc = torch.from_numpy(np.stack(accs).astype(np.float32))
        bins = self.preset.bins
        Xc = self.stft.forward(mix)[:, :bins]
        Ac = self.stft.forward(acc)[:, :bins]
        X, A = Xc.abs(), Ac.abs()
        pairs = torch.tensor(pair_flags)
        if self.target == "accompaniment":
            Yc, Y = Ac, A
        else:
            voc = torch.from_numpy(np.stack([v if v is not None else np.zeros(self.patch_samples, np.float32) for v in voices]).astype(np.float32))
            Yc = self.stft.forward(voc)[:, :bins]
            if pairs.any():  # no voice waveform: the voice is what the original has more than the instrumental
                Yc[pairs] = Xc[pairs] - Ac[pairs]
            Y = Yc.abs()
            if pairs.any():  # the paper's vocal target from pairs: max(X - Y_instrumental, 0)
                Y[pairs] = (X[pairs] - A[pairs]).clamp_min(0)
        if self.target_rule == "phase-sensitive":
            # Erdogan et al. (ICASSP 2015): the part of the source in phase with the mixture,
            # |Y| cos(angle(Y) - angle(X)) = Re(Y conj(X)) / |X|, truncated to [0, |X|]
            Y = torch.minimum((Yc * Xc.conj()).real / X.clamp_min(1e-12), X).clamp_min(0)
        frames = X.shape[-1]
        w = torch.zeros(batch_size, 1, 1, frames)
        for k, valid in enumerate(valids):
            w[k, ..., : self.stft.frames(valid)] = 1.0
        return X.unsqueeze(1), Y.unsqueeze(1), w

    @staticmethod
    def features(X: torch.Tensor, Y: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch as the loss takes it: :meth:`batch` already returns (X, Y, w)."""
        return X, Y, w
