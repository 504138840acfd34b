"""Training mixtures of several sources: a recipe (JSON) that names them and their shares.

A recipe lists sources, each a folder (or several) under the data root in one layout (a dataset
layout of :mod:`vocalsep.data.datasets`, ``files`` or ``folder-mix``), with its weight in each
pool (real tracks, voices, accompaniments), the groups it holds out for validation, the files a
vocal check flagged, and the levels, pans and channel swaps of the remixes.  The format, field by
field: docs/training.md, "The recipe format".
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import is_audio_file, load, resample
from ..errors import ConfigError
from ..stems import STEMS
from .datasets import Track, _file_key, open_dataset

LAYOUTS = ("mir1k", "stems", "musdb", "files", "folder-mix")
ROLES = ("stems", *STEMS)
POOLS = ("true", *STEMS)


def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"recipe: {name} must be a pair [low, high]") from None
    if not lo <= hi:
        raise ConfigError(f"recipe: {name} must be [low, high] with low <= high")
    return lo, hi


@dataclass(frozen=True)
class SourceSpec:
    name: str
    layout: str
    path: tuple[str, ...]
    role: str = "stems"
    true: float = 0.0
    vocals: float = 0.0
    accompaniment: float = 0.0
    valid: tuple[str, ...] = ()
    exclude_flagged: str | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        def texts(value, what: str) -> tuple[str, ...]:  # one string or a list of strings
            items = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (list, tuple)) else None
            if items is None or not all(isinstance(v, str) for v in items):
                raise ConfigError(f"recipe source {self.name!r}: {what} must be a string or a list of strings")
            return items

        if not isinstance(self.name, str) or not isinstance(self.layout, str):
            raise ConfigError("recipe: a source's name and layout are strings")
        path = texts(self.path, "path")
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "valid", texts(self.valid, "valid"))
        if self.max_seconds is not None and (isinstance(self.max_seconds, bool) or not isinstance(self.max_seconds, (int, float))):
            raise ConfigError(f"recipe source {self.name!r}: max_seconds must be a number of seconds")
        if not self.name or not path:
            raise ConfigError("recipe: every source needs a name and a path")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"recipe source {self.name!r}: layout must be one of {', '.join(LAYOUTS)}")
        role = self.role if self.layout in ("files", "folder-mix") else "stems"
        object.__setattr__(self, "role", role)
        if role not in ROLES or (self.layout in ("files", "folder-mix") and role == "stems"):
            raise ConfigError(f"recipe source {self.name!r}: a {self.layout} source needs role vocals or accompaniment")
        for pool in POOLS:
            w = getattr(self, pool)
            if not (isinstance(w, (int, float)) and w >= 0):
                raise ConfigError(f"recipe source {self.name!r}: weight {pool!r} must be a number >= 0")
        if role == "vocals" and (self.true or self.accompaniment):
            raise ConfigError(f"recipe source {self.name!r}: a vocals source has only a 'vocals' weight")
        if role == "accompaniment" and (self.true or self.vocals):
            raise ConfigError(f"recipe source {self.name!r}: an accompaniment source has only an 'accompaniment' weight")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(f"recipe source {self.name!r}: max_seconds must be > 0")


@dataclass(frozen=True)
class Recipe:
    sources: tuple[SourceSpec, ...]
    true_share: float = 0.5
    vocal_db: tuple[float, float] = (-8.0, 4.0)
    mix_dbfs: tuple[float, float] = (-28.0, -14.0)
    pan: float = 0.3
    swap_channels: float = 0.5
    name: str = ""
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(s if isinstance(s, SourceSpec) else SourceSpec(**s) for s in self.sources))
        object.__setattr__(self, "vocal_db", _pair(self.vocal_db, "vocal_db"))
        object.__setattr__(self, "mix_dbfs", _pair(self.mix_dbfs, "mix_dbfs"))
        if not self.sources:
            raise ConfigError("recipe: no sources")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ConfigError("recipe: source names must be unique")
        for name in ("true_share", "pan", "swap_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"recipe: {name} must be a number in [0, 1]")
        if self.true_share > 0 and not any(s.true for s in self.sources):
            raise ConfigError("recipe: true_share > 0 needs a source with a 'true' weight")
        if self.true_share < 1 and not (any(s.vocals for s in self.sources) and any(s.accompaniment for s in self.sources)):
            raise ConfigError("recipe: remixes (true_share < 1) need sources with 'vocals' and 'accompaniment' weights")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"recipe: unknown keys {sorted(unknown)}")
        if not isinstance(d.get("sources"), list):
            raise ConfigError("recipe: 'sources' must be a list of source objects")
        src_known = {f.name for f in dataclasses.fields(SourceSpec)}
        for s in d["sources"]:
            if not isinstance(s, dict):
                raise ConfigError("recipe: each source is an object")
            bad = set(s) - src_known
            if bad:
                raise ConfigError(f"recipe source {s.get('name', '?')!r}: unknown keys {sorted(bad)}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Recipe":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the recipe ({exc.strerror or exc})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a JSON recipe ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a recipe is a JSON object")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SourceTracks:
    """The tracks of one recipe source, split into training and validation tracks."""

    spec: SourceSpec
    train: list[Track]
    valid: list[Track]


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_file(p))


def _flagged(root: Path, spec: SourceSpec) -> set[Path]:
    if not spec.exclude_flagged:
        return set()
    check = root / spec.exclude_flagged
    try:
        files = json.loads(check.read_text())["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"recipe source {spec.name!r}: cannot read {check} ({exc})") from None
    return {(check.parent / rel).resolve() for rel, v in files.items() if v.get("flagged")}


def _one_role_loader(files: list[Path], role: str):
    def load_track(rate: int) -> dict[str, np.ndarray]:
        total = None
        for f in files:
            x, sr = load(f)
            x = resample(x, sr, rate)
            if x.shape[0] > 2:
                x = x.mean(axis=0, keepdims=True)
            if total is None:
                total = x
            else:
                if total.shape[0] != x.shape[0]:
                    total, x = np.broadcast_to(total, (2, total.shape[1])), np.broadcast_to(x, (2, x.shape[1]))
                n = min(total.shape[1], x.shape[1])
                total = total[:, :n] + x[:, :n]
        return {role: np.ascontiguousarray(total, dtype=np.float32)}

    return load_track


def open_source(root: Path, spec: SourceSpec, seed: int = 0) -> SourceTracks:
    """The tracks of ``spec`` under the data ``root``."""
    folders = [root / p for p in spec.path]
    for f in folders:
        if not f.exists():
            raise ConfigError(f"recipe source {spec.name!r}: {f} does not exist")
    tracks: list[Track] = []
    if spec.layout in ("files", "folder-mix"):
        flagged = _flagged(root, spec)
        for folder in folders:
            files = [folder] if folder.is_file() else _audio_files(folder)
            if spec.layout == "files":
                groups = {f: [f] for f in files}
            else:
                groups = {}
                for f in files:
                    groups.setdefault(f.parent, []).append(f)
            for key, members in sorted(groups.items()):
                if any(m.resolve() in flagged for m in members):
                    continue
                name = f"{spec.name}/{key.relative_to(root).as_posix()}"
                tracks.append(Track(name, name, _one_role_loader(members, spec.role), None, spec.role, _file_key(members)))
    else:
        for folder in folders:
            ds = open_dataset(folder, spec.layout)
            tracks.extend(dataclasses.replace(t, name=f"{spec.name}/{t.name}") for t in ds.tracks)
    if not tracks:
        raise ConfigError(f"recipe source {spec.name!r}: no tracks under {', '.join(map(str, folders))}")
    groups = {t.group for t in tracks}
    unknown = sorted(set(spec.valid) - groups)
    if unknown:
        raise ConfigError(f"recipe source {spec.name!r}: validation groups {unknown} are not in the data")
    valid = [t for t in tracks if t.group in spec.valid]
    train = [t for t in tracks if t.group not in spec.valid]
    return SourceTracks(spec, train, valid)
