"""``evaluate``: score systems on a dataset, track by track, into an output folder.

The flow, and where each piece lands in ``out``:

1. list the tracks (MIR-1K: one track per clip, as the paper evaluates), keep
   those chosen by ``groups`` (singers) and ``tracks``;
2. per track, in a process pool: load the mixture and references at ``rate``
   (the paper's variant ``v3`` works on the mono downmix, ``museval`` on the
   channels as they are), keep the track only if it has vocals (below), run
   every system, score it; the main process writes ``tracks/TRACK.json`` and
   ``tracks/TRACK.csv`` (atomically) as each track finishes;
3. aggregate: ``scores.csv`` (every track, system and source), ``summary.json``,
   ``summary.md`` (the tables), ``figures/`` (box plots, mask images) and,
   if asked, a report (``report=``) that embeds them.

A rerun with the same ``out`` reuses every finished track and system whose
setup is unchanged (metric, rate, preset, full-band rule, and for a model the
hash of its weights) and computes only what is missing or failed.

Which tracks count (as in the paper, only clips known to contain vocals): docs/evaluation.md.

Explicit outcomes instead of crashes or NaN: a track without vocals or with an
all-zero reference is *excluded* (recorded with its reason, counted in the
summary, in no mean); a system whose estimate of a source is all zeros, or
whose museval windows are all undefined, is *undefined* on that track
(recorded, counted, in no mean); a missing or unreadable estimate file is
*failed* (one line naming the file; the rest goes on; the exit code says so).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .._atomic import file_in_the_way
from ..errors import ConfigError
from ..separation.options import SeparationOptions
from .io import json_safe, safe_name, unfix, write_text, write_track
from .metrics import VARIANTS
from .report import summarise, write_outputs
from .scoring import (  # noqa: F401 - the constants, list_tracks and vocal_activity: part of this module's interface
    DEFAULT_RATES,
    FRAME_SECONDS,
    MIN_VOICED_SECONDS,
    VOICED_DBFS,
    TrackScorer,
    layout_of,
    list_tracks,
    rate_of,
    vocal_activity,
)
from .systems import parse_systems

log = logging.getLogger(__name__)

METRICS = ("v3", "museval")


@dataclass(frozen=True)
class EvalConfig:
    """Everything ``evaluate`` needs; see :func:`evaluate`."""

    data: str
    systems: tuple[str, ...]
    out: str
    dataset: str | None = None
    metric: str = "v3"
    groups: tuple[str, ...] = ()
    tracks: tuple[str, ...] = ()
    limit: int | None = None
    rate: int | None = None
    preset: str = "jansson2017"
    # the separation options of the model systems (and, for fullband and shifts, of the oracle)
    separation: SeparationOptions = field(default_factory=SeparationOptions)
    jobs: int | None = None
    device: str = "cpu"
    force: bool = False
    progress: bool = False
    report: str | None = None
    mask_systems: tuple[str, ...] = ()
    figure_track: str | None = None
    excerpt: float = 10.0
    command: str = ""

    def __post_init__(self) -> None:
        for name in ("systems", "groups", "tracks", "mask_systems"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.separation, dict):
            object.__setattr__(self, "separation", SeparationOptions(**self.separation))
        if self.metric not in METRICS:
            raise ConfigError(f"metric must be one of {METRICS}, not {self.metric!r}")
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError("jobs must be at least 1")
        if self.rate is not None and self.rate < 1000:
            raise ConfigError("rate must be at least 1000 Hz")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("limit must be at least 1")
        if not self.excerpt > 0:
            raise ConfigError("excerpt must be a positive number of seconds")
        parse_systems(self.systems)


@dataclass
class Timing:
    loading: float = 0.0
    separation: float = 0.0
    scoring: float = 0.0
    writing: float = 0.0
    figures: float = 0.0
    wall: float = 0.0
    per_system: dict = field(default_factory=dict)


# -- the worker processes

_WORKER: dict = {}


def _worker_init(cfg: EvalConfig, threads: int, parent: int) -> None:
    import torch

    from .._workers import die_with_parent

    die_with_parent(parent)
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.ERROR)
    _WORKER["scorer"] = TrackScorer(cfg)


def _worker_score(name: str, todo: list[str]) -> dict:
    return _WORKER["scorer"].score(name, todo)


# -- the run

def evaluate(config: EvalConfig | None = None, **kwargs) -> dict:
    """Score systems on a dataset into ``out``; returns the summary (also in ``out/summary.json``).

    Give an :class:`EvalConfig` or its fields as keyword arguments, e.g.
    ``evaluate(data="mir1k", systems=["unet=default", "oracle", "mixture"], out="results", groups=["abjones"])``;
    the model systems' separation options as ``separation=SeparationOptions(...)`` (or a dict of its fields).
    ``summary["failures"]`` lists ``(track, system, reason)`` for every failed
    system run; the rest is done regardless.
    """
    cfg = config if config is not None else EvalConfig(**kwargs)
    start = time.perf_counter()
    timing = Timing()
    out = Path(cfg.out)
    specs = parse_systems(cfg.systems)
    rate = rate_of(cfg)
    sep = cfg.separation
    options_text = f"preset={cfg.preset};fullband={sep.fullband or 'default'};combine={sep.combine or 'preset'}"
    if sep.precision:  # no option keeps the identities (and the caches) of earlier runs
        options_text += f";precision={sep.precision}"
    options_text += f";pad={sep.pad}"  # part of every run's identity (scores stored without it are not reused)
    if sep.shifts > 1:  # one framing (the default) keeps the identities of earlier runs
        options_text += f";shifts={sep.shifts}"
    if sep.wiener is not None:
        options_text += f";wiener={sep.wiener}"
    if sep.wiener_power is not None:
        options_text += f";wiener_power={sep.wiener_power:g}"
    identities = {s.name: s.identity(options_text) for s in specs}
    setup = {"metric": cfg.metric, "variant": VARIANTS[cfg.metric], "rate": rate, "dataset": layout_of(cfg),
             "data": str(cfg.data)}  # as the user gave it: a report names its data that way
    tracks = list_tracks(cfg)
    if not tracks:
        raise ConfigError(f"{cfg.data}: no tracks to evaluate")
    _check_outputs(cfg, [s.name for s in specs], [t.name for t in tracks])
    _check_setup(out, setup, cfg.force)
    results: dict[str, dict] = {}
    todo: dict[str, list[str]] = {}
    for t in tracks:
        old = None if cfg.force else _read_track(out, t.name)
        if old is not None and old.get("setup") == setup:
            kept = {n: r for n, r in old["systems"].items() if n in identities and r.get("identity") == identities[n] and r["status"] != "failed"}
            unreadable = any(r["status"] == "failed" for r in old["systems"].values())  # its references failed: try again
            old["systems"] = kept
            if old["status"] == "excluded" and not unreadable:
                results[t.name] = old
                continue
            missing = [s.name for s in specs if s.name not in kept]
            results[t.name] = old
            if missing:
                todo[t.name] = missing
        else:
            todo[t.name] = [s.name for s in specs]
    log.info("%d tracks, %d to score (%d finished in %s)", len(tracks), len(todo), len(tracks) - len(todo), out)
    failures: list[tuple[str, str, str]] = []

    def finish(name: str, new: dict) -> None:
        said = set()
        for sname, r in new["systems"].items():
            r["identity"] = identities[sname]
            if r["status"] == "failed":
                failures.append((name, sname, r["reason"]))
                if r["reason"] not in said:  # a track that fails for every system is said once
                    said.add(r["reason"])
                    _say(f"vocalsep: error: {r['reason']}", cfg.progress)
        old = results.get(name)
        if old is not None and new["status"] != "excluded":
            new["systems"] = {**old["systems"], **new["systems"]}
        new["setup"] = setup
        for k in ("loading", "separation", "scoring"):
            setattr(timing, k, getattr(timing, k) + new["timing"][k])
        for sname, r in new["systems"].items():
            if "seconds" in r and sname in todo.get(name, ()):
                agg = timing.per_system.setdefault(sname, {"separation": 0.0, "scoring": 0.0})
                agg["separation"] += r["seconds"]["separation"]
                agg["scoring"] += r["seconds"]["scoring"]
        t0 = time.perf_counter()
        write_track(out, json_safe(new))
        timing.writing += time.perf_counter() - t0
        results[name] = new

    _run_pool(cfg, todo, finish)
    timing.wall = time.perf_counter() - start
    ordered = [results[t.name] for t in tracks]
    summary = summarise(cfg, setup, specs, ordered, failures)
    write_outputs(cfg, out, summary, ordered, timing)
    return summary


def _say(line: str, progress: bool) -> None:
    if progress:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)


def _check_models(cfg: EvalConfig) -> None:
    """Load every model system once before the worker pool starts, so that a
    model that cannot load (models that cannot run together, a broken file)
    stops the run with its own one-line error, not a crashed pool."""
    from ..separator import Separator

    for spec in parse_systems(cfg.systems):
        if spec.kind == "model":
            Separator.from_pretrained(spec.model, device=cfg.device)


def _run_pool(cfg: EvalConfig, todo: dict[str, list[str]], finish) -> None:
    from tqdm import tqdm

    if not todo:
        return
    jobs = min(cfg.jobs or os.cpu_count() or 1, len(todo))
    with tqdm(total=len(todo), unit="track", desc="evaluate", disable=not cfg.progress) as bar:
        if jobs == 1:
            scorer = TrackScorer(cfg)
            for name, systems in todo.items():
                bar.set_postfix_str(name[:30])
                finish(name, scorer.score(name, systems))
                bar.update(1)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        _check_models(cfg)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init, initargs=(cfg, threads, os.getpid())) as pool:
            futures = {pool.submit(_worker_score, name, systems): name for name, systems in todo.items()}
            for fut in as_completed(futures):
                finish(futures[fut], fut.result())
                bar.update(1)


def _check_outputs(cfg: EvalConfig, systems: list[str], tracks: list[str]) -> None:
    """What the figures and the report are asked for, and where the outputs go, checked before any scoring."""
    unknown = [n for n in cfg.mask_systems if n not in systems]
    if unknown:
        raise ConfigError(f"--mask-systems {','.join(unknown)}: not among the evaluated systems ({', '.join(systems)})")
    if cfg.figure_track and cfg.figure_track not in tracks:
        raise ConfigError(f"--figure-track {cfg.figure_track!r}: no such track among the {len(tracks)} evaluated")
    for option, folder in (("--out", Path(cfg.out)), ("--report", Path(cfg.report).parent if cfg.report else None)):
        blocking = None if folder is None else file_in_the_way(folder)
        if blocking is not None:
            raise ConfigError(f"{option} {folder}: {blocking} is a file, not a folder")


def _check_setup(out: Path, setup: dict, force: bool) -> None:
    path = out / "setup.json"
    if path.is_file() and not force:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable ({str(exc).splitlines()[0][:200]}); remove it, or use another output folder or --force") from None
        if not isinstance(old, dict):
            raise ConfigError(f"{path}: not a setup (a JSON object); remove it, or use another output folder or --force")
        if old != setup:
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in setup.items() if old.get(k) != v)
            raise ConfigError(f"{out} holds results of another setup ({diff}); use another output folder or --force")
    write_text(path, json.dumps(setup, indent=1))


def _read_track(out: Path, name: str) -> dict | None:
    path = out / "tracks" / (safe_name(name) + ".json")
    if not path.is_file():
        return None
    try:
        data = unfix(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        log.warning("%s: unreadable, scored again", path)
        return None
    return data if data.get("track") == name else None


__all__ = ["EvalConfig", "evaluate", "list_tracks", "vocal_activity"]
