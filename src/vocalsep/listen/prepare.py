"""``vocalsep listen prepare``: cut the clips of a listening study and write its study file.

Inputs: the systems' separated outputs (``DIR/TRACK/vocals.EXT`` and
``DIR/TRACK/accompaniment.EXT``, as ``vocalsep separate`` writes them), the
mixtures (``MIXTURES/TRACK.EXT`` or ``MIXTURES/TRACK/mixture.EXT``) and, when
the researcher has them, the true vocal stems (``VOCALS/TRACK/vocals.EXT`` or
``VOCALS/TRACK.EXT``).  A track is used when the mixture and both stems of
every system exist.

How excerpts are chosen, cut, faded and loudness-normalised: :mod:`vocalsep.listen.excerpts`.

Control questions (hidden, each with one planted clip of known answer: the mixture itself, a
degraded stem, the true vocal stem) and their acceptable ranges: docs/listening-test.md.

Output is built in a hidden temporary folder beside ``out`` and renamed into
place when complete, so an interrupted run leaves no half-made study.  Audio
files get opaque random names (seeded), and every use of a clip in a control
gets a copy of its own, so that neither a URL nor a repeated file tells a
participant which system made a clip or which question is a control.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .._version import __version__
from ..audio import AudioReader, is_audio_file, save, track_name
from ..errors import AudioError, ConfigError, VocalsepError
from ..stems import STEMS
from .study import (
    AUDIO_DIR,
    DB_FILE,
    DEFAULT_INSTRUCTIONS,
    DEFAULT_QUESTIONS,
    DEFAULT_SCALE,
    DEFAULT_TITLE,
    FORMAT,
    ID_RE,
    STUDY_FILE,
    VERSION,
    write_study,
)

from .excerpts import (
    FRAME_SECONDS,
    VOICED_DBFS,
    choose_excerpts,
    cut,
    degrade,
    fade,
    frame_levels,
    loudness_lufs,
    true_peak_db,
    voiced_frames,
    window_shares,
)

log = logging.getLogger(__name__)

ABSOLUTE_GATE_LUFS = -70.0
MAX_TARGET_DROP_DB = 10.0
FORMATS = ("wav", "flac")

# (question id, planted source, acceptable range); the true-vocals one only with `vocals`
CONTROL_KINDS = (
    ("vocals-removal", "mixture", (1, 2)),
    ("accompaniment-removal", "mixture", (1, 2)),
    ("vocals-quality", "degraded", (1, 3)),
    ("accompaniment-quality", "degraded", (1, 3)),
)
TRUE_VOCALS_CONTROL = ("vocals-removal", "vocals", (5, 7))


def parse_system(spec: str) -> tuple[str, str]:
    """``NAME=DIR`` -> (name, dir); ConfigError when malformed."""
    name, sep, folder = spec.partition("=")
    name = name.strip()
    if not sep or not folder:
        raise ConfigError(f"--system {spec!r}: expected NAME=DIR, e.g. unet=separated/unet")
    if not ID_RE.match(name):
        raise ConfigError(f"--system {spec!r}: the name {name!r} may hold letters, digits and _ . + - only")
    return name, folder


@dataclass(frozen=True)
class PrepareConfig:
    """Everything :func:`prepare` needs (see the module documentation)."""

    systems: tuple[tuple[str, str], ...]  # (name, folder of TRACK/{vocals,accompaniment}.EXT)
    mixtures: str
    out: str
    clips: int = 10
    duration: float = 10.0
    vocals: str | None = None
    seed: int = 0
    min_voiced: float = 0.8
    relative_db: float = 20.0
    loudness: float = -23.0
    ceiling: float = -1.0
    fade: float = 0.02
    fmt: str = "wav"
    mono: bool = False
    controls: int | None = None  # None: one per kind
    title: str | None = None
    force: bool = False
    progress: bool = False
    command: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "systems", tuple((str(n), str(d)) for n, d in self.systems))
        if not self.systems:
            raise ConfigError("at least one --system NAME=DIR is needed")
        names = [n for n, _ in self.systems]
        for n in names:
            if not ID_RE.match(n):
                raise ConfigError(f"system name {n!r}: use letters, digits and _ . + - only")
        if len(set(names)) != len(names):
            raise ConfigError(f"system names must differ: {', '.join(names)}")
        if len(names) > 25:
            raise ConfigError("at most 25 systems (a question shows one clip of each, labelled A to Y)")
        if isinstance(self.clips, bool) or not isinstance(self.clips, int) or self.clips < 1:
            raise ConfigError(f"clips must be a positive integer, not {self.clips!r}")
        if not (math.isfinite(self.duration) and 1.0 <= self.duration <= 120.0):
            raise ConfigError(f"duration must be between 1 and 120 seconds, not {self.duration}")
        if not 0.0 < self.min_voiced <= 1.0:
            raise ConfigError(f"min_voiced must be in (0, 1], not {self.min_voiced}")
        if not 0.0 < self.relative_db <= 100.0:
            raise ConfigError(f"relative_db must be in (0, 100], not {self.relative_db}")
        if not (math.isfinite(self.loudness) and -60.0 <= self.loudness <= -5.0):
            raise ConfigError(f"loudness must be between -60 and -5 LUFS, not {self.loudness}")
        if not (math.isfinite(self.ceiling) and -20.0 <= self.ceiling <= 0.0):
            raise ConfigError(f"ceiling must be between -20 and 0 dBFS, not {self.ceiling}")
        if not 0.0 <= self.fade <= self.duration / 4:
            raise ConfigError(f"fade must be between 0 and a quarter of the duration, not {self.fade}")
        if self.fmt not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {self.fmt!r}")
        if self.controls is not None and (isinstance(self.controls, bool) or not isinstance(self.controls, int) or self.controls < 0):
            raise ConfigError(f"controls must be a non-negative integer, not {self.controls!r}")
        if self.title is not None and not (self.title.strip() and len(self.title) <= 200):
            raise ConfigError("title must be a non-empty string of at most 200 characters")


# -- finding the files

def _stem_file(folder: Path, stem: str) -> Path | None:
    """``folder/STEM.EXT`` (any audio extension); AudioError when more than one exists."""
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.stem == stem and is_audio_file(p))
    if len(found) > 1:
        raise AudioError(folder / stem, f"more than one file: {', '.join(p.name for p in found)}; keep one")
    return found[0] if found else None


def find_mixtures(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Track name -> mixture file (``TRACK.EXT`` or ``TRACK/mixture.EXT``), and problems."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: the mixtures folder does not exist")
    found: dict[str, list[Path]] = {}
    problems: list[str] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() and is_audio_file(p):
            found.setdefault(track_name(p), []).append(p)
        elif p.is_dir():
            try:
                m = _stem_file(p, "mixture")
            except AudioError as exc:
                problems.append(f"{exc}; track skipped")
                continue
            if m is not None:
                found.setdefault(p.name, []).append(m)
    tracks = {}
    for name, files in found.items():
        if len(files) > 1:
            problems.append(f"{folder}: track {name!r} has more than one mixture ({', '.join(str(f) for f in files)}); skipped")
        else:
            tracks[name] = files[0]
    if not tracks and not problems:
        raise ConfigError(f"{folder}: no mixtures found (expected TRACK.wav/.flac/.mp3... or TRACK/mixture.EXT)")
    return tracks, problems


def _true_vocals(folder: Path, track: str) -> Path | None:
    f = _stem_file(folder / track, "vocals")
    if f is not None:
        return f
    return _stem_file(folder, track)


def _seconds(path: Path) -> float:
    r = AudioReader(path)
    if r.frames is not None:
        return r.frames / r.sample_rate
    return sum(b.shape[1] for b in r.blocks()) / r.sample_rate


@dataclass(eq=False)
class _ClipJob:
    """One audio file of the study: how to make it, and (after measuring) its loudness and gain."""

    make: Callable[[], tuple[np.ndarray, int]]
    meta: dict  # the study.json object to fill: file, lufs, gain_db
    what: str  # for messages
    excerpt: str
    channels: int = 0
    lufs: float = math.nan
    peak_db: float = math.nan
    name: str = ""


def _gains(jobs: list[_ClipJob], target: float, ceiling: float) -> tuple[float, list[str]]:
    """Fill each job's gain (and ``limited_db``); return the applied common target and warnings."""
    warnings = []
    measurable = [j for j in jobs if math.isfinite(j.lufs) and j.lufs > ABSOLUTE_GATE_LUFS]
    excess = max((j.peak_db + (target - j.lufs) - ceiling for j in measurable), default=0.0)
    applied = target
    if excess > 0:
        applied = target - min(excess, MAX_TARGET_DROP_DB)
        warnings.append(f"loudness target lowered from {target:g} to {applied:.1f} LUFS for all clips, "
                        f"so that no clip's true peak exceeds {ceiling:g} dBFS")
    for j in jobs:
        if j not in measurable:
            j.meta.update(lufs=None, gain_db=0.0)
            warnings.append(f"{j.what}: too quiet to measure its loudness (below {ABSOLUTE_GATE_LUFS:g} LUFS); left as it is")
            continue
        gain = applied - j.lufs
        limited = j.peak_db + gain - ceiling
        j.meta.update(lufs=round(j.lufs, 2), gain_db=round(gain, 2))
        if limited > 1e-6:
            gain -= limited
            j.meta.update(gain_db=round(gain, 2), limited_db=round(limited, 2))
            warnings.append(f"{j.what}: {limited:.1f} dB quieter than the other clips: more gain would make it peak above {ceiling:g} dBFS")
        j.meta["_gain"] = gain
    return applied, warnings


# -- the whole

def _check_out(cfg: PrepareConfig) -> Path:
    out = Path(cfg.out)
    if out.exists():
        if not out.is_dir():
            raise ConfigError(f"{out}: exists and is not a folder")
        if any(out.iterdir()):
            if not cfg.force:
                raise ConfigError(f"{out}: exists and is not empty; use --force to replace a study folder")
            if not (out / STUDY_FILE).is_file():
                raise ConfigError(f"{out}: is not a study folder (no {STUDY_FILE}); refusing to replace it")
            if (out / DB_FILE).exists():
                raise ConfigError(f"{out}: holds collected responses ({DB_FILE}); refusing to replace it: prepare a new folder")
    resolved = out.resolve()
    inputs = [Path(d) for _, d in cfg.systems] + [Path(cfg.mixtures)] + ([Path(cfg.vocals)] if cfg.vocals else [])
    for d in inputs:
        r = d.resolve()
        if r == resolved or r.is_relative_to(resolved):
            raise ConfigError(f"{out}: the study folder must not hold the input folder {d}")
    return out


def prepare(cfg: PrepareConfig) -> dict:
    """Make the study folder ``cfg.out``; returns a summary (``study``, ``excerpts``, ``controls``,
    ``failed``: tracks that could not be used, with reasons, ``skipped``: tracks without a singing excerpt,
    ``warnings``).  Raises :class:`ConfigError` when no excerpt can be made."""
    from tqdm import tqdm

    out = _check_out(cfg)
    for name, folder in cfg.systems:
        if not Path(folder).is_dir():
            raise ConfigError(f"{folder}: the folder of system {name!r} does not exist")
    if cfg.vocals and not Path(cfg.vocals).is_dir():
        raise ConfigError(f"{cfg.vocals}: the vocals folder does not exist")
    mixtures, failed = find_mixtures(Path(cfg.mixtures))
    skipped: list[str] = []
    warnings: list[str] = []
    window = round(cfg.duration / FRAME_SECONDS)

    # 1. which tracks are usable, and where they have singing
    files: dict[str, dict] = {}
    shares: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    activity_source = "the true vocal stems (--vocals)" if cfg.vocals else f"the vocal estimates of system {cfg.systems[0][0]!r}"
    for track in tqdm(sorted(mixtures), desc="finding singing", unit="track", disable=not cfg.progress, leave=False):
        try:
            f = {"mixture": mixtures[track], "systems": {}}
            for name, folder in cfg.systems:
                f["systems"][name] = {}
                for target in STEMS:
                    p = _stem_file(Path(folder) / track, target)
                    if p is None:
                        raise AudioError(Path(folder) / track, f"system {name!r} has no {target} file for this track")
                    f["systems"][name][target] = p
            if cfg.vocals:
                f["vocals"] = _true_vocals(Path(cfg.vocals), track)
                if f["vocals"] is None:
                    raise AudioError(Path(cfg.vocals) / track, "no true vocal stem for this track (TRACK/vocals.EXT or TRACK.EXT)")
            every = [f["mixture"], *(p for s in f["systems"].values() for p in s.values())] + ([f["vocals"]] if cfg.vocals else [])
            lengths = {p: _seconds(p) for p in every}
            if max(lengths.values()) - min(lengths.values()) > 1.0:
                warnings.append(f"{track}: the files differ in length by {max(lengths.values()) - min(lengths.values()):.1f} s; "
                                f"using the first {min(lengths.values()):.1f} s, where all of them have audio")
            activity = f["vocals"] if cfg.vocals else f["systems"][cfg.systems[0][0]]["vocals"]
            voiced = voiced_frames(frame_levels(activity), cfg.relative_db)
        except VocalsepError as exc:
            failed.append(str(exc))
            continue
        usable = math.floor((min(lengths.values()) - 0.05) / FRAME_SECONDS)
        starts, share = window_shares(voiced, window, usable)
        if not np.any(share >= cfg.min_voiced - 1e-9):
            best = f"{share.max():.0%}" if share.size else "none (shorter than the excerpt)"
            skipped.append(f"{track}: no {cfg.duration:g} s window with {cfg.min_voiced:.0%} of its frames voiced (best: {best})")
            continue
        files[track] = f
        shares[track] = (starts, share)
    chosen = choose_excerpts(shares, cfg.clips, window, cfg.min_voiced, cfg.seed)
    if not chosen:
        why = "; ".join((failed + skipped)[:5]) or "no tracks"
        raise ConfigError(f"no excerpt with singing could be made from {cfg.mixtures}: {why}")
    if len(chosen) < cfg.clips:
        warnings.append(f"only {len(chosen)} of the {cfg.clips} excerpts asked for: the tracks hold no more "
                        f"non-overlapping {cfg.duration:g} s windows with {cfg.min_voiced:.0%} singing")

    # 2. what each clip is
    systems = [n for n, _ in cfg.systems]
    questions = [dict(q) for q in DEFAULT_QUESTIONS]
    rng = np.random.default_rng([cfg.seed, 1])
    jobs: list[_ClipJob] = []
    excerpts = []

    def job(make, what: str, excerpt: str, **fields) -> dict:
        meta = dict(fields)  # filled in when written: file, lufs, gain_db
        jobs.append(_ClipJob(make, meta, what, excerpt))
        return meta

    def cutter(path: Path, start: float, degraded_seed: int | None = None):
        def make():
            x, rate = cut(path, start, cfg.duration, mono=cfg.mono)
            if degraded_seed is not None:
                x = degrade(x, rate, degraded_seed)
            return fade(x, rate, cfg.fade), rate
        return make

    for k, (track, s, share) in enumerate(chosen):
        f = files[track]
        start = round(s * FRAME_SECONDS, 3)
        eid = f"e{k + 1:02d}"
        ex = {"id": eid, "track": track, "start": start, "duration": cfg.duration, "voiced_share": round(share, 3),
              "reference": job(cutter(f["mixture"], start), f"{eid} ({track}): mixture", eid), "clips": {}}
        for name in systems:
            ex["clips"][name] = {t: job(cutter(f["systems"][name][t], start), f"{eid} ({track}): {name} {t}", eid) for t in STEMS}
        excerpts.append(ex)

    kinds = list(CONTROL_KINDS) + ([TRUE_VOCALS_CONTROL] if cfg.vocals else [])
    n_controls = len(kinds) if cfg.controls is None else cfg.controls
    control_excerpts = [excerpts[i] for i in rng.permutation(len(excerpts))]
    controls = []
    for c in range(n_controls):
        qid, source, accept = kinds[c % len(kinds)]
        target = next(q["target"] for q in questions if q["id"] == qid)
        ex = control_excerpts[c % len(control_excerpts)]
        track, start = ex["track"], ex["start"]
        f = files[track]
        cid = f"control-{c + 1}"
        what = f"{cid} ({ex['id']}, {track})"
        if source == "mixture":
            planted = cutter(f["mixture"], start)
        elif source == "vocals":
            planted = cutter(f["vocals"], start)
        else:
            src = f["vocals"] if cfg.vocals and target == "vocals" else f["systems"][systems[0]][target]
            planted = cutter(src, start, degraded_seed=int(rng.integers(2**31)))
        clip_list = [job(planted, f"{what}: {source}", ex["id"], source=source, accept=list(accept))]
        others = [systems[i] for i in rng.permutation(len(systems))[: len(systems) - 1]]
        for name in others:
            clip_list.append(job(cutter(f["systems"][name][target], start), f"{what}: {name} {target}", ex["id"],
                                 source="system", system=name, accept=None))
        controls.append({"id": cid, "question": qid, "excerpt": ex["id"], "clips": clip_list})

    # 3. measure, decide the gains, write (into a temporary folder, renamed into place at the end)
    for j in tqdm(jobs, desc="measuring loudness", unit="clip", disable=not cfg.progress, leave=False):
        x, rate = j.make()
        j.lufs = loudness_lufs(x, rate)
        j.peak_db = true_peak_db(x, rate)
        j.channels = x.shape[0]
    for ex in excerpts:
        layouts = sorted({j.channels for j in jobs if j.excerpt == ex["id"]})
        if len(layouts) > 1:
            warnings.append(f"{ex['id']} ({ex['track']}): its clips have {' and '.join(map(str, layouts))} channels, "
                            f"which listeners may hear; --mono presents them all alike")
    applied, gain_warnings = _gains(jobs, cfg.loudness, cfg.ceiling)
    warnings += gain_warnings
    names: set[str] = set()
    name_rng = np.random.default_rng([cfg.seed, 2])
    for j in jobs:
        while not j.name or j.name in names:
            j.name = name_rng.bytes(8).hex() + "." + cfg.fmt
        names.add(j.name)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.part-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        (tmp / AUDIO_DIR).mkdir(parents=True)
        for j in tqdm(jobs, desc="writing clips", unit="clip", disable=not cfg.progress, leave=False):
            x, rate = j.make()
            gain = j.meta.pop("_gain", 0.0)
            save(tmp / AUDIO_DIR / j.name, x * np.float32(10 ** (gain / 20)), rate, bit_depth="16", fmt=cfg.fmt)
            j.meta["file"] = f"{AUDIO_DIR}/{j.name}"
        for ex in excerpts:  # the reference is an object with its file; keep keys in a readable order
            ex["reference"] = _ordered(ex["reference"])
            for name in systems:
                for t in STEMS:
                    ex["clips"][name][t] = _ordered(ex["clips"][name][t])
        for c in controls:
            c["clips"] = [_ordered(cl) for cl in c["clips"]]
        data = {
            "format": FORMAT,
            "version": VERSION,
            "title": cfg.title or DEFAULT_TITLE,
            "instructions": DEFAULT_INSTRUCTIONS,
            "scale": list(DEFAULT_SCALE),
            "min_listen_seconds": None,
            "max_participants": None,
            "systems": systems,
            "questions": questions,
            "excerpts": excerpts,
            "controls": controls,
            "prepare": {
                "vocalsep": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "command": cfg.command,
                "config": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "command", "force")},
                "activity": {"source": activity_source, "frame_seconds": FRAME_SECONDS,
                             "rule": f"voiced: frame RMS above {VOICED_DBFS:g} dBFS and within {cfg.relative_db:g} dB of the "
                                     f"track's 95th-percentile frame level; excerpt: at least {cfg.min_voiced:.0%} of frames voiced"},
                "loudness": {"standard": "ITU-R BS.1770-4 integrated loudness (pyloudnorm)", "target_lufs": cfg.loudness,
                             "applied_lufs": round(applied, 2), "true_peak_ceiling_dbfs": cfg.ceiling},
                "fade_seconds": cfg.fade,
                "failed": failed,
                "skipped": skipped,
                "warnings": warnings,
            },
        }
        write_study(tmp, data)
        _publish_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for w in warnings:
        log.warning("%s", w)
    return {"study": str(out / STUDY_FILE), "excerpts": len(excerpts), "controls": len(controls), "clips": len(jobs),
            "failed": failed, "skipped": skipped, "warnings": warnings, "loudness": applied}


def _ordered(meta: dict) -> dict:
    first = ("file", "source", "system", "accept", "lufs", "gain_db", "limited_db")
    return {k: meta[k] for k in first if k in meta} | {k: v for k, v in meta.items() if k not in first}


def _publish_dir(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` folder onto ``out`` (replacing an old study folder)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if not any(out.iterdir()):
            out.rmdir()
            old = None
        else:
            os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

