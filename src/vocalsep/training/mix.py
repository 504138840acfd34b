"""Multi-channel training features from a recipe of sources (:mod:`vocalsep.data.recipe`).

The cache holds each track's sources at the preset's rate with their own
channels (mono or stereo), as float16 ``.npy`` files that the training
processes map into memory: hours of music cost page cache, shared between
the two targets' runs, not process memory.

:class:`MixSampler` draws each patch as a real track (mixture = its voice plus
its accompaniment, same place) or as a remix (a voice from one source over an
accompaniment from another, each at a random place; the voice set to a random
level over the accompaniment and the mixture to a random loudness).  Mono
sources are panned at random near the centre and stereo ones have their
channels swapped at random; the network's channels (``preset.unet.in_channels``)
are then filled: stereo models see both, mono models their mean.  Patches
shorter than ``patch_frames`` (short tracks) are zero-padded and the padding's
frames are left out of the loss.  Every draw is a function of
``(seed, rank, step)``: a resumed run draws what an uninterrupted one would.
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
from ..data.recipe import POOLS, Recipe, SourceTracks, open_source
from ..errors import ConfigError
from ..spectral import STFT, SpleeterSTFT
from ..stems import STEMS

log = logging.getLogger(__name__)


@dataclass
class MixTrack:
    """One track at the preset's rate: ``parts`` maps ``vocals`` and/or ``accompaniment`` to
    ``(channels, samples)`` arrays (float16, memory-mapped)."""

    name: str
    group: str
    source: str
    parts: dict[str, np.ndarray]

    @property
    def samples(self) -> int:
        return min(x.shape[-1] for x in self.parts.values())

    def get(self, part: str, channels: int | None = None) -> np.ndarray:
        """The whole part as float32 ``(channels, samples)``; mono duplicated or stereo averaged to ``channels``."""
        return _channels(np.asarray(self.parts[part][:, : self.samples], np.float32), channels)

    def mixture(self, channels: int | None = None) -> np.ndarray:
        out = None
        for p in STEMS:
            if p in self.parts:
                x = self.get(p, channels)
                out = x if out is None else _channels(out, x.shape[0]) + _channels(x, out.shape[0])
        return out


def _channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    if channels is None or x.shape[0] == channels:
        return x
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    return np.repeat(x[:1], channels, axis=0) if x.shape[0] == 1 else x[:channels]


def load_mix_track(track: Track, source: str, rate: int, cache_dir: Path) -> MixTrack:
    """``track`` at ``rate`` from the cache (decoded and resampled once, stored as float16)."""
    digest = hashlib.sha1(f"{track.key}|{rate}|mix-v1".encode()).hexdigest()[:20]
    folder = cache_dir / digest
    done = folder / "done"
    if not done.is_file():
        data = track.load(rate)
        folder.mkdir(parents=True, exist_ok=True)
        for part in STEMS:
            if part in data:
                x = np.clip(data[part], -65000, 65000).astype(np.float16)
                target = folder / f"{part}.npy"
                tmp = temp_beside(target)
                try:
                    with open(tmp, "wb") as f:
                        np.save(f, np.ascontiguousarray(x))
                    publish(tmp, target)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
        done.write_text(track.name)
    parts = {p: np.load(folder / f"{p}.npy", mmap_mode="r") for p in STEMS if (folder / f"{p}.npy").is_file()}
    return MixTrack(track.name, track.group, source, parts)


def load_recipe(recipe: Recipe, root: Path, rate: int, cache_dir: Path, seed: int = 0) -> tuple[dict[str, list[MixTrack]], list[MixTrack]]:
    """The training tracks per source and the validation tracks of ``recipe``."""
    train: dict[str, list[MixTrack]] = {}
    valid: list[MixTrack] = []
    for spec in recipe.sources:
        st: SourceTracks = open_source(root, spec, seed)
        tracks = [load_mix_track(t, spec.name, rate, cache_dir) for t in st.train]
        if spec.max_seconds is not None:
            order = np.random.default_rng([seed, len(tracks)]).permutation(len(tracks))
            kept, total = [], 0.0
            for i in order:
                if total >= spec.max_seconds:
                    break
                kept.append(tracks[i])
                total += tracks[i].samples / rate
            tracks = sorted(kept, key=lambda t: t.name)
        train[spec.name] = tracks
        valid.extend(load_mix_track(t, spec.name, rate, cache_dir) for t in st.valid)
        log.info("recipe source %s: %d training tracks (%.2f h), %d validation tracks", spec.name, len(tracks),
                 sum(t.samples for t in tracks) / rate / 3600, len(st.valid))
    return train, valid


def preset_stft(preset: Preset) -> STFT:
    return SpleeterSTFT(preset.n_fft, preset.hop) if preset.framing == "spleeter" else STFT(preset.n_fft, preset.hop)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


class MixSampler:
    """Training batches from a recipe: mixture and target magnitudes ``(batch, channels, bins, frames)``
    and a frame weight ``(batch, 1, 1, frames)`` (0 on padding past a track's end)."""

    def __init__(self, tracks: dict[str, list[MixTrack]], recipe: Recipe, preset: Preset, target: str, patch_frames: int,
                 seed: int = 0, rank: int = 0, target_rule: str = "magnitude"):
        self.recipe = recipe
        self.preset = preset
        self.target = target
        self.target_rule = target_rule
        self.seed, self.rank = seed, rank
        self.channels = preset.unet.in_channels
        self.stft = preset_stft(preset)
        self.patch_frames = patch_frames
        # samples whose STFT has exactly patch_frames frames
        if isinstance(self.stft, SpleeterSTFT):
            self.patch_samples = patch_frames * preset.hop - preset.n_fft
        else:
            self.patch_samples = (patch_frames - 1) * preset.hop + 1
        self.pools: dict[str, tuple[list[str], np.ndarray, dict[str, tuple[list[MixTrack], np.ndarray]]]] = {}
        specs = {s.name: s for s in recipe.sources}
        for pool in POOLS:
            need = "vocals" if pool == "vocals" else "accompaniment"
            names, weights, members = [], [], {}
            for name, ts in tracks.items():
                w = getattr(specs[name], pool)
                ok = [t for t in ts if need in t.parts and (pool != "true" or set(STEMS) <= set(t.parts)) and t.samples > 0]
                if w > 0 and ok:
                    lengths = np.array([t.samples for t in ok], np.float64)
                    names.append(name)
                    weights.append(w)
                    members[name] = (ok, lengths / lengths.sum())
            if weights:
                self.pools[pool] = (names, np.array(weights) / sum(weights), members)
        if recipe.true_share > 0 and "true" not in self.pools:
            raise ConfigError("the recipe's 'true' sources hold no training track with both stems (are they all held out for validation?)")
        if recipe.true_share < 1 and not set(STEMS) <= set(self.pools):
            raise ConfigError("the recipe's remix pools hold no training tracks")
        self.total_samples = int(sum(t.samples for ts in tracks.values() for t in ts))

    # -- drawing
    def _draw(self, rng: np.random.Generator, pool: str) -> MixTrack:
        names, weights, members = self.pools[pool]
        ts, w = members[names[int(rng.choice(len(names), p=weights))]]
        return ts[int(rng.choice(len(ts), p=w))]

    def _crop(self, rng: np.random.Generator, t: MixTrack, parts: tuple[str, ...]) -> tuple[list[np.ndarray], int]:
        n = self.patch_samples
        start = int(rng.integers(0, max(1, t.samples - n + 1)))
        out = []
        for p in parts:
            seg = np.asarray(t.parts[p][:, start : start + n], np.float32)
            out.append(seg)
        valid = out[0].shape[-1]
        out = [np.pad(s, ((0, 0), (0, n - s.shape[-1]))) if s.shape[-1] < n else s for s in out]
        return out, valid

    def _pan(self, rng: np.random.Generator) -> np.ndarray:
        """Constant-power gains ``(2, 1)`` for a mono signal at a random position in ``[-pan, pan]``
        (0: the centre, where both gains are 1)."""
        angle = (rng.uniform(-self.recipe.pan, self.recipe.pan) + 1) * np.pi / 4
        return np.array([[np.cos(angle)], [np.sin(angle)]], np.float32) * np.float32(np.sqrt(2))

    def _place(self, rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
        """``x`` as two channels: mono panned near the centre, stereo maybe swapped."""
        if x.shape[0] == 1:
            return x * self._pan(rng)
        if rng.random() < self.recipe.swap_channels:
            return x[::-1].copy()
        return x

    def item(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
        """One patch: (voice, accompaniment) float32 ``(2, patch_samples)`` and its valid length."""
        r = self.recipe
        if rng.random() < r.true_share:
            t = self._draw(rng, "true")
            (voc, acc), valid = self._crop(rng, t, STEMS)
            if voc.shape[0] != acc.shape[0]:
                voc, acc = _channels(voc, 2), _channels(acc, 2)
            if voc.shape[0] == 1:  # a mono track: voice and accompaniment panned alike
                g = self._pan(rng)
                voc, acc = voc * g, acc * g
            elif rng.random() < r.swap_channels:  # the same swap for both parts
                voc, acc = voc[::-1].copy(), acc[::-1].copy()
            return voc, acc, valid
        tv, ta = self._draw(rng, "vocals"), self._draw(rng, "accompaniment")
        (voc,), valid_v = self._crop(rng, tv, ("vocals",))
        (acc,), valid_a = self._crop(rng, ta, ("accompaniment",))
        voc, acc = self._place(rng, voc), self._place(rng, acc)
        rv, ra = _rms(voc[:, :valid_v]), _rms(acc[:, :valid_a])
        if rv > 1e-5 and ra > 1e-5:
            voc = voc * np.float32(ra / rv * 10 ** (rng.uniform(*r.vocal_db) / 20))
        mix_rms = _rms(voc + acc)
        if mix_rms > 1e-5:
            g = np.float32(10 ** (rng.uniform(*r.mix_dbfs) / 20) / mix_rms)
            voc, acc = voc * g, acc * g
        return voc, acc, min(valid_v, valid_a)

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step ``step``'s batch as waveforms: voice and accompaniment ``(batch, channels, samples)``
        and each item's valid samples ``(batch,)``; :meth:`features` turns it into (X, Y, w) on the
        training device, where the STFT is cheapest."""
        rng = np.random.default_rng([self.seed, self.rank, step])
        voices, accs, valids = [], [], []
        for _ in range(batch_size):
            v, a, n = self.item(rng)
            voices.append(_channels(v, self.channels))
            accs.append(_channels(a, self.channels))
            valids.append(n)
        return torch.from_numpy(np.stack(voices)), torch.from_numpy(np.stack(accs)), torch.tensor(valids)

    def features(self, voc: torch.Tensor, acc: torch.Tensor, valids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(X, Y, w) from :meth:`batch`'s waveforms, on their device: mixture and target magnitudes
        ``(batch, channels, bins, patch_frames)`` and the frame weight ``(batch, 1, 1, patch_frames)``."""
        bins = self.preset.bins
        Xc = self.stft.forward(voc + acc)[..., :bins, : self.patch_frames]
        Yc = self.stft.forward(voc if self.target == "vocals" else acc)[..., :bins, : self.patch_frames]
        X = Xc.abs()
        if self.target_rule == "phase-sensitive":
            Y = torch.minimum((Yc * Xc.conj()).real / X.clamp_min(1e-12), X).clamp_min(0)
        else:
            Y = Yc.abs()
        # frames whose centre lies inside the valid samples
        lead = getattr(self.stft, "lead", 0)
        last = (lead + torch.div(valids.to(X.device) + self.preset.hop - 1, self.preset.hop, rounding_mode="floor")).clamp(max=X.shape[-1])
        w = (torch.arange(X.shape[-1], device=X.device) < last[:, None]).to(X.dtype)
        return X, Y, w[:, None, None, :]

    def valid_patches(self, tracks: list[MixTrack], count: int = 16) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Fixed patches of the validation tracks (no augmentation), for the validation loss."""
        rng = np.random.default_rng([self.seed, 7777])
        stems = [t for t in tracks if set(STEMS) <= set(t.parts)]
        if not stems:
            return []
        out = []
        for _ in range(max(1, count // 4)):
            voices, accs, valids = [], [], []
            for _ in range(4):
                t = stems[int(rng.integers(len(stems)))]
                (v, a), n = self._crop(rng, t, STEMS)
                voices.append(_channels(v, self.channels))
                accs.append(_channels(a, self.channels))
                valids.append(n)
            out.append(self.features(torch.from_numpy(np.stack(voices)), torch.from_numpy(np.stack(accs)), torch.tensor(valids)))
        return out
