"""Dataset layouts.

- :class:`MIR1K`: ``audio/SINGER_SONG_CLIP.flac`` stereo clips, left channel
  accompaniment, right channel voice (mixture = their sum); optional labels in
  ``vocal-nonvocal/*.vocal`` and ``pitch/*.pv`` (one value per 20 ms frame).
  Group = singer.  The clips of one song are joined in order into one track
  (most clips are shorter than one 11 s training patch).
- :class:`StemFolders`: ``TRACK/{mixture,vocals,accompaniment}.EXT`` (mixture
  optional: the sum of the stems) and MUSDB18-HQ folders
  (``TRACK/{mixture,vocals,drums,bass,other}.wav``: accompaniment = drums + bass
  + other).  Group = track.
- :class:`MUSDB`: MUSDB18 ``.stem.mp4`` files (stream 0 mixture, 1 drums,
  2 bass, 3 other, 4 vocals).  Group = track.
- :class:`PairManifest`: a CSV of (original, instrumental) pairs with
  ``original,instrumental`` columns and optional ``offset`` (seconds the
  instrumental lags the original), ``gain`` (instrumental x gain matches the
  original), ``artist``, ``title``, ``group``.  There is no vocal waveform: the
  vocal target is the half-wave rectified difference of magnitudes,
  ``max(|X_original| - |Y_instrumental|, 0)``.

Sources are loaded as float32 ``(channels, samples)`` at the file's rate.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import AUDIO_EXTENSIONS, load, resample, track_name
from ..errors import AudioError, ConfigError, VocalsepError

log = logging.getLogger(__name__)


@dataclass
class Track:
    """One training or evaluation item.

    ``load(rate)`` returns ``{"mixture", "vocals", "accompaniment"}`` float32
    ``(channels, samples)`` arrays at ``rate`` (for pairs: ``"mixture"`` is the
    original and ``"accompaniment"`` the aligned instrumental; ``"vocals"`` is
    absent).  ``vocal_activity(rate)`` is a per-sample 0/1 array when labels
    exist, else None.
    """

    name: str
    group: str
    loader: Callable[[int], dict[str, np.ndarray]] = field(repr=False)
    activity: Callable[[int, int], np.ndarray | None] | None = field(default=None, repr=False)
    kind: str = "stems"  # "stems" | "pair"
    key: str = ""  # identifies the content for caches (paths, sizes, mtimes)

    def load(self, rate: int) -> dict[str, np.ndarray]:
        return self.loader(rate)

    def vocal_activity(self, rate: int, samples: int) -> np.ndarray | None:
        return None if self.activity is None else self.activity(rate, samples)


def _file_key(paths: Sequence[Path]) -> str:
    h = hashlib.sha1()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _at_rate(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    return resample(x, src, dst)


class MIR1K:
    """MIR-1K: songs of 12 amateur singers, split into clips (see module doc)."""

    LABEL_HOP = 0.02  # seconds per label frame

    def __init__(self, root: str | os.PathLike, *, join_songs: bool = True):
        self.root = Path(root)
        audio = self.root / "audio" if (self.root / "audio").is_dir() else self.root
        files = sorted(audio.glob("*.flac")) + sorted(audio.glob("*.wav"))
        if not files:
            raise ConfigError(f"{self.root}: no MIR-1K clips (expected audio/SINGER_SONG_CLIP.flac)")
        pattern = re.compile(r"^(?P<singer>.+?)_(?P<song>\d+)_(?P<clip>\d+)$")
        songs: dict[str, list[Path]] = defaultdict(list)
        singers: dict[str, str] = {}
        for f in files:
            m = pattern.match(f.stem)
            if not m:
                raise ConfigError(f"{f}: not a MIR-1K clip name (SINGER_SONG_CLIP)")
            key = f"{m['singer']}_{m['song']}" if join_songs else f.stem
            songs[key].append(f)
            singers[key] = m["singer"]
        self.tracks = [
            Track(name, singers[name], self._loader(clips), self._activity(clips), "stems", _file_key(clips))
            for name, clips in sorted(songs.items())
        ]

    def _loader(self, clips: list[Path]):
        def load_song(rate: int) -> dict[str, np.ndarray]:
            parts = []
            for c in sorted(clips, key=lambda p: p.stem):
                x, sr = load(c)
                if x.shape[0] != 2:
                    raise VocalsepError(f"{c}: MIR-1K clips are stereo (accompaniment, voice); this has {x.shape[0]} channel(s)")
                parts.append(_at_rate(x, sr, rate))
            both = np.concatenate(parts, axis=1)
            acc, voc = both[:1], both[1:2]
            return {"mixture": acc + voc, "vocals": voc, "accompaniment": acc}

        return load_song

    def _activity(self, clips: list[Path]):
        label_dirs = [self.root / "vocal-nonvocal", self.root / "pitch"]

        def activity(rate: int, samples: int) -> np.ndarray | None:
            parts = []
            for c in sorted(clips, key=lambda p: p.stem):
                labels = None
                for d, ext in zip(label_dirs, (".vocal", ".pv")):
                    f = d / (c.stem + ext)
                    if f.is_file():
                        values = np.loadtxt(f, ndmin=1)
                        labels = (values > 0).astype(np.float32)
                        break
                if labels is None:
                    return None
                n = int(round(_clip_frames(c) * rate))
                idx = np.minimum((np.arange(n) / rate / self.LABEL_HOP).astype(int), len(labels) - 1)
                parts.append(labels[idx])
            act = np.concatenate(parts)
            return _fit1(act, samples)

        return activity


def _clip_frames(path: Path) -> float:
    """Duration of a clip in seconds."""
    import soundfile as sf

    return sf.info(path).duration


def _fit1(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if x.size >= n else np.pad(x, (0, n - x.size), mode="edge" if x.size else "constant")


MAX_LENGTH_MISMATCH = 1.0  # seconds the stems of one track may differ in length


class StemFolders:
    """``TRACK/{mixture,vocals,accompaniment}.EXT`` folders, or MUSDB18-HQ folders."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigError(f"{self.root}: no such folder" if not self.root.exists() else f"{self.root}: not a folder of stem folders")
        self.tracks = []
        for d in sorted(p for p in self.root.rglob("*") if p.is_dir()):
            files = {f.stem.lower(): f for f in d.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS}
            if "vocals" not in files:
                continue
            if "accompaniment" in files:
                acc_parts = [files["accompaniment"]]
            elif all(k in files for k in ("drums", "bass", "other")):
                acc_parts = [files["drums"], files["bass"], files["other"]]
            else:
                log.warning("%s: a vocals file without accompaniment (or drums, bass and other): not a track", d)
                continue
            rel = d.relative_to(self.root).as_posix()
            mix = files.get("mixture")
            self.tracks.append(Track(rel, rel, self._loader(files["vocals"], acc_parts, mix), None, "stems",
                                     _file_key([files["vocals"], *acc_parts] + ([mix] if mix else []))))
        if not self.tracks:
            raise ConfigError(f"{self.root}: no stem folders (expected TRACK/vocals.* with TRACK/accompaniment.* or drums/bass/other)")

    @staticmethod
    def _loader(vocals: Path, acc_parts: list[Path], mixture: Path | None):
        def load_track(rate: int) -> dict[str, np.ndarray]:
            v, sr = load(vocals)
            acc = None
            for p in acc_parts:
                a, sra = load(p)
                if sra != sr:
                    a = resample(a, sra, sr)
                acc = a if acc is None else _sum_aligned(acc, a)
            lengths = [v.shape[1], acc.shape[1]]
            n = min(lengths)
            v, acc = v[:, :n], acc[:, :n]
            if mixture is not None:
                m, srm = load(mixture)
                if srm != sr:
                    m = resample(m, srm, sr)
                lengths.append(m.shape[1])
                m = m[:, :n]
                if m.shape[1] < n:
                    v, acc = v[:, : m.shape[1]], acc[:, : m.shape[1]]
            else:
                m = v + acc
            if max(lengths) - min(lengths) > MAX_LENGTH_MISMATCH * sr:  # a wrong or cut file, not an encoder's padding
                said = ", ".join(f"{k} {n / sr:.1f} s" for k, n in zip(("vocals", "accompaniment", "mixture"), lengths))
                raise AudioError(vocals.parent, f"its stems differ in length ({said}): one of them is the wrong file or cut short")
            return {k: _at_rate(x, sr, rate) for k, x in (("mixture", m), ("vocals", v), ("accompaniment", acc))}

        return load_track


def _sum_aligned(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = min(a.shape[1], b.shape[1])
    return a[:, :n] + b[:, :n]


class MUSDB:
    """MUSDB18 ``.stem.mp4`` files (found recursively)."""

    STREAMS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        files = sorted(self.root.rglob("*.stem.mp4")) if self.root.is_dir() else [self.root]
        if not files or not all(f.name.endswith(".stem.mp4") for f in files):
            raise ConfigError(f"{self.root}: no MUSDB18 .stem.mp4 files")
        self.tracks = [Track(track_name(f), track_name(f), self._loader(f), None, "stems", _file_key([f])) for f in files]

    def _loader(self, path: Path):
        def load_track(rate: int) -> dict[str, np.ndarray]:
            parts = {}
            sr = None
            for name, stream in self.STREAMS.items():
                parts[name], sr = load(path, stream=stream)
            n = min(x.shape[1] for x in parts.values())
            acc = parts["drums"][:, :n] + parts["bass"][:, :n] + parts["other"][:, :n]
            out = {"mixture": parts["mixture"][:, :n], "vocals": parts["vocals"][:, :n], "accompaniment": acc}
            return {k: _at_rate(x, sr, rate) for k, x in out.items()}

        return load_track


class PairManifest:
    """(original mix, instrumental version) pairs listed in a CSV (see module doc)."""

    def __init__(self, manifest: str | os.PathLike):
        self.path = Path(manifest)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: no such pair manifest (CSV with original,instrumental columns)")
        base = self.path.parent
        self.tracks = []
        with open(self.path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"original", "instrumental"} <= set(reader.fieldnames):
                raise ConfigError(f"{self.path}: a pair manifest needs 'original' and 'instrumental' columns")
            for i, row in enumerate(reader):
                where = f"{self.path} line {reader.line_num}"
                if not row.get("original") or not row.get("instrumental"):
                    raise ConfigError(f"{where}: needs an original and an instrumental file")
                orig = (base / row["original"]).resolve()
                inst = (base / row["instrumental"]).resolve()
                for f in (orig, inst):
                    if not f.is_file():
                        raise ConfigError(f"{where}: no such audio file {f}")
                try:
                    offset = float(row.get("offset") or 0.0)
                    gain = float(row.get("gain") or 1.0)
                except ValueError:
                    raise ConfigError(f"{where}: offset and gain must be numbers "
                                      f"(got {row.get('offset')!r} and {row.get('gain')!r})") from None
                name = row.get("title") or track_name(orig)
                group = row.get("group") or row.get("artist") or name
                self.tracks.append(Track(f"{i:05d}-{name}", group, self._loader(orig, inst, offset, gain), None, "pair",
                                         _file_key([orig, inst]) + f"|{offset}|{gain}"))
        if not self.tracks:
            raise ConfigError(f"{self.path}: the manifest lists no pairs")

    @staticmethod
    def _loader(original: Path, instrumental: Path, offset: float, gain: float):
        def load_pair(rate: int) -> dict[str, np.ndarray]:
            x, sr = load(original)
            y, sry = load(instrumental)
            if sry != sr:
                y = resample(y, sry, sr)
            if y.shape[0] != x.shape[0]:
                y = np.broadcast_to(y.mean(axis=0, keepdims=True), (x.shape[0], y.shape[1])).copy()
            shift = int(round(offset * sr))  # the instrumental lags the original by `offset` seconds
            y = y[:, shift:] if shift >= 0 else np.pad(y, ((0, 0), (-shift, 0)))
            n = min(x.shape[1], y.shape[1])
            x, y = x[:, :n], gain * y[:, :n]
            return {"mixture": _at_rate(x, sr, rate), "accompaniment": _at_rate(y, sr, rate)}

        return load_pair


DATASETS = {"mir1k": MIR1K, "stems": StemFolders, "musdb": MUSDB, "pairs": PairManifest}


def guess_layout(path: str | os.PathLike) -> str:
    """The dataset layout a path most likely holds (see :data:`DATASETS`)."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return "pairs"
    if (p / "audio").is_dir() or (p.is_dir() and any(p.glob("*_*_*.flac"))):
        return "mir1k"
    if p.name.endswith(".stem.mp4") or (p.is_dir() and any(p.rglob("*.stem.mp4"))):
        return "musdb"
    return "stems"


def open_dataset(path: str | os.PathLike, kind: str | None = None, **options):
    """Open a dataset by layout name, or guess the layout from the path when ``kind`` is None.

    ``options`` go to the layout's class (e.g. ``join_songs=False`` for
    :class:`MIR1K`: one track per clip, as the paper evaluates).
    """
    kind = kind or guess_layout(path)
    if kind not in DATASETS:
        raise ConfigError(f"unknown dataset layout {kind!r}; known: {', '.join(DATASETS)}")
    return DATASETS[kind](path, **options)


def split_tracks(tracks: Sequence[Track], valid_groups: Sequence[str] | None = None, valid_fraction: float = 0.2, seed: int = 0) -> tuple[list[Track], list[Track]]:
    """Split by group (singer or song), never by clip; deterministic.

    ``valid_groups`` names the held-out groups; otherwise a seeded choice of
    groups holding about ``valid_fraction`` of the tracks.
    """
    groups = sorted({t.group for t in tracks})
    if valid_groups:
        unknown = sorted(set(valid_groups) - set(groups))
        if unknown:
            raise ConfigError(f"validation groups {unknown} are not in the data (groups: {', '.join(groups)})")
        held = set(valid_groups)
    else:
        rng = np.random.default_rng(seed)
        order = [groups[i] for i in rng.permutation(len(groups))]
        target = max(1, int(round(valid_fraction * len(tracks))))
        held, count = set(), 0
        for g in order:
            if count >= target or len(held) >= len(groups) - 1:
                break
            held.add(g)
            count += sum(1 for t in tracks if t.group == g)
    train = [t for t in tracks if t.group not in held]
    valid = [t for t in tracks if t.group in held]
    if not train:
        raise ConfigError("the split leaves no training data")
    return train, valid
