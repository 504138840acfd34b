"""``vocalsep mine``: catalogue -> candidates -> content pruning -> alignment -> manifest and report.

The audio work is two pure functions of file paths
(:func:`~vocalsep.mining.align.digest_file`,
:func:`~vocalsep.mining.align.align_pair`), run serially, over a process pool
(``jobs``) or on a Ray cluster (``ray``).  Each result is stored as a small
JSON file under ``OUT/.work/`` the moment it arrives (atomically: temporary
file, then rename), keyed by the files' paths, sizes and modification times
and by the thresholds; a rerun reuses them, so an interrupted run resumes
where it stopped and changing a threshold redoes only what depends on it.

Outputs in ``OUT``: ``pairs.csv`` (read directly by
:class:`vocalsep.data.PairManifest`), ``report.json`` and ``report.md``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .._atomic import file_in_the_way, write_text
from ..errors import ConfigError
from .align import AlignConfig, align_pair, digest_file
from .catalog import read_catalog
from .match import Candidate, MatchConfig, find_candidates, normalise_artist

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("original", "instrumental", "offset", "gain", "artist", "title", "group",
                    "confidence", "residual_db", "vocal_activity")


@dataclass(frozen=True)
class MineConfig:
    """One mining run: ``catalog`` (file or folder), ``out`` (folder), the
    thresholds, ``jobs`` (worker processes; None: all cores), ``ray`` (a Ray
    address such as ``auto``, ``local`` or ``ray://host:10001``; None: no Ray),
    ``force`` (ignore stored results) and ``progress`` (show progress bars)."""

    catalog: str
    out: str
    match: MatchConfig = field(default_factory=MatchConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    jobs: int | None = None
    ray: str | None = None
    force: bool = False
    progress: bool = False

    def __post_init__(self):
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError(f"jobs must be at least 1, got {self.jobs}")


# -- running a pure function over many items

def _safe(fn: Callable[..., dict], *args) -> dict:
    """``fn(*args)``, with any unexpected exception turned into a failed result (one line)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - one bad item must not stop the run
        text = (str(exc).strip().splitlines() or [""])[0][:300]
        return {"status": "failed", "reason": f"internal error: {type(exc).__name__}: {text}"}


def _serial(fn, tasks):
    for key, args in tasks:
        yield key, _safe(fn, *args)


def _pool(fn, tasks, jobs: int):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from .._workers import die_with_parent

    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_safe, fn, *args): key for key, args in tasks}
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except BrokenProcessPool:  # a worker was killed (out of memory, a signal to it alone): this item, and the rest
                result = {"status": "failed", "reason": "not done: a worker process ended without finishing (killed, or out of memory?)"}
            yield futures[fut], result


def _ray(fn, tasks, address: str, jobs: int | None):
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs the optional dependency Ray: pip install 'vocalsep[ray]'") from None
    started = not ray.is_initialized()
    if started:
        options = {"num_cpus": jobs} if address == "local" and jobs else {}
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False, **options)
    try:
        remote = ray.remote(num_cpus=1)(_safe)
        pending = {remote.remote(fn, *args): key for key, args in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)
    finally:
        if started:
            ray.shutdown()


def run_tasks(fn: Callable[..., dict], tasks: list[tuple[str, tuple]], *, jobs: int | None = None, ray: str | None = None,
              progress: bool = False, desc: str = "") -> Iterator[tuple[str, dict]]:
    """Yield ``(key, fn(*args))`` for each ``(key, args)`` task, in completion order.

    ``fn`` must be a module-level function (it travels to worker processes or
    Ray workers, which need the same vocalsep installed and the same audio
    paths readable).  ``ray``: a Ray address; else ``jobs`` processes (1:
    in this process).
    """
    from tqdm import tqdm

    if not tasks:
        return
    jobs = jobs or os.cpu_count() or 1
    if ray:
        gen = _ray(fn, tasks, ray, jobs)
    elif jobs == 1 or len(tasks) == 1:
        gen = _serial(fn, tasks)
    else:
        gen = _pool(fn, tasks, min(jobs, len(tasks)))
    with tqdm(total=len(tasks), desc=desc, unit="item", disable=not progress, leave=False) as bar:
        for item in gen:
            bar.update(1)
            yield item


# -- stored results

def file_key(path: Path) -> str:
    """Identifies a file's content cheaply: resolved path, size and modification time."""
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()


# the keys a stored result of each status must hold to be reused (digest_file's, align_pair's)
FILE_RESULT = {"ok": ("hash",), "failed": ("reason",)}
PAIR_RESULT = {"accepted": ("offset", "gain", "gain_db", "residual_db", "vocal_activity", "confidence"),
               "rejected": ("reason",), "failed": ("reason",)}


class Store:
    """JSON results under ``folder``, one file per key, written atomically.  A stored result that
    cannot be read, or is not of the ``shape`` (status -> keys it needs), is computed again."""

    def __init__(self, folder: Path, force: bool = False, shape: dict[str, tuple[str, ...]] | None = None):
        self.folder = folder
        self.force = force
        self.shape = shape
        self.reused = 0

    def get(self, key: str) -> dict | None:
        path = self.folder / f"{key}.json"
        if self.force or not path.is_file():
            return None
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not self._fits(result):
            log.warning("%s: not a stored result of this stage, computed again", path)
            return None
        self.reused += 1
        return result

    def _fits(self, result) -> bool:
        if self.shape is None:
            return True
        if not isinstance(result, dict) or not isinstance(result.get("status"), str) or result["status"] not in self.shape:
            return False
        return all(k in result for k in self.shape[result["status"]])

    def put(self, key: str, result: dict) -> None:
        write_text(self.folder / f"{key}.json", json.dumps(result, sort_keys=True))


def _compute(store: Store, fn, tasks: dict[str, tuple], cfg: MineConfig, desc: str) -> dict[str, dict]:
    """Results for every task key: the stored ones, then the missing ones computed and stored as they arrive."""
    results = {k: r for k in tasks if (r := store.get(k)) is not None}
    todo = [(k, a) for k, a in tasks.items() if k not in results]
    for key, result in run_tasks(fn, todo, jobs=cfg.jobs, ray=cfg.ray, progress=cfg.progress, desc=desc):
        if not result.get("reason", "").startswith("internal error"):
            store.put(key, result)
        results[key] = result
    return results


# -- the stages

@dataclass
class Rejection:
    """A candidate dropped at ``stage`` ("metadata", "content" or "audio") for ``reason``."""

    stage: str
    candidate: Candidate
    reason: str
    failed: bool = False  # an input could not be used (not a verdict on the pair)

    def to_dict(self) -> dict:
        c = self.candidate
        return {"stage": self.stage, "original": c.original.label(), "instrumental": c.instrumental.label(),
                "original_path": str(c.original.path), "instrumental_path": str(c.instrumental.path),
                "reason": self.reason, "failed": self.failed}


def _prune_content(candidates: list[Candidate], digests: dict[Path, dict]) -> tuple[list[Candidate], list[Rejection]]:
    """Drop pairs with an unreadable file, pairs whose instrumental decodes to the
    original's audio, and pairs duplicating another (same decoded audio on both sides)."""
    kept, rejected = [], []
    seen: dict[tuple[str, str], Candidate] = {}
    for c in sorted(candidates, key=lambda c: (c.original.index, c.instrumental.index)):
        do, di = digests[c.original.path], digests[c.instrumental.path]
        bad = next((d for d in (do, di) if d["status"] != "ok"), None)
        if bad is not None:
            rejected.append(Rejection("content", c, bad["reason"], failed=True))
            continue
        if do["hash"] == di["hash"]:
            rejected.append(Rejection("content", c, "the instrumental decodes to exactly the original's audio (same content hash)"))
            continue
        first = seen.setdefault((do["hash"], di["hash"]), c)
        if first is not c:
            rejected.append(Rejection("content", c, f"duplicate of pair {first.original.label()} / {first.instrumental.label()} (same decoded audio)"))
            continue
        kept.append(c)
    return kept, rejected


def _pair_key(c: Candidate, align: AlignConfig) -> str:
    text = f"{file_key(c.original.path)}|{file_key(c.instrumental.path)}|{json.dumps(align.to_dict(), sort_keys=True)}"
    return hashlib.sha1(text.encode()).hexdigest()


def _relative(path: Path, base: Path) -> str:
    return os.path.relpath(path, base) if os.path.splitdrive(str(path))[0] == os.path.splitdrive(str(base))[0] else str(path)


def manifest_rows(accepted: list[tuple[Candidate, dict]], out: Path) -> list[dict]:
    """Rows of ``pairs.csv``: paths relative to ``out``, ``offset`` in seconds the
    instrumental lags the original (exact to the sample at the original's rate),
    ``gain`` (instrumental x gain matches the original), group = normalised artist."""
    rows = []
    for c, r in accepted:
        rows.append({"original": _relative(c.original.path, out), "instrumental": _relative(c.instrumental.path, out),
                     "offset": repr(r["offset"]), "gain": f"{r['gain']:.6g}", "artist": c.original.artist, "title": c.original.title,
                     "group": normalise_artist(c.original.artist) or c.original.artist, "confidence": f"{r['confidence']:.3f}",
                     "residual_db": f"{r['residual_db']:.1f}", "vocal_activity": f"{r['vocal_activity']:.3f}"})
    return rows


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def mine(cfg: MineConfig) -> dict:
    """Run the whole pipeline and write ``pairs.csv``, ``report.json`` and ``report.md`` in ``cfg.out``.

    Returns the report (a dict: ``counts`` per stage, ``pairs``,
    ``rejected``, ``problems``, ``failed``).  Raises ConfigError for an
    unusable catalogue; bad rows and unreadable files are reported, not raised.
    """
    out = Path(cfg.out)
    blocking = file_in_the_way(out)
    if blocking is not None:
        raise ConfigError(f"--out {out}: {blocking} is a file, not a folder")
    if cfg.ray:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ConfigError("--ray needs the optional dependency Ray: pip install 'vocalsep[ray]'")
    entries, problems = read_catalog(cfg.catalog)  # an unusable catalogue is refused before OUT is made
    out.mkdir(parents=True, exist_ok=True)
    matched = find_candidates(entries, cfg.match)
    rejected = [Rejection("metadata", c, reason) for c, reason in matched.rejected]

    files = {p: (p,) for p in dict.fromkeys(e.path for c in matched.candidates for e in (c.original, c.instrumental))}
    file_store = Store(out / ".work" / "files", cfg.force, FILE_RESULT)
    by_key = _compute(file_store, digest_file, {file_key(p): (str(p),) for p in files}, cfg, "decoding")
    digests = {p: by_key[file_key(p)] for p in files}
    survivors, pruned = _prune_content(matched.candidates, digests)
    rejected += pruned

    pair_store = Store(out / ".work" / "pairs", cfg.force, PAIR_RESULT)
    keys = {_pair_key(c, cfg.align): c for c in survivors}
    aligned = _compute(pair_store, align_pair, {k: (str(c.original.path), str(c.instrumental.path), cfg.align.to_dict()) for k, c in keys.items()},
                       cfg, "aligning")
    accepted = []
    for key, c in keys.items():
        r = aligned[key]
        if r["status"] == "accepted":
            accepted.append((c, r))
        else:
            rejected.append(Rejection("audio", c, r["reason"], failed=r["status"] == "failed"))
    accepted.sort(key=lambda cr: (cr[0].original.index, cr[0].instrumental.index))

    write_text(out / "pairs.csv", _csv_text(manifest_rows(accepted, out)))
    report = _report(cfg, entries, problems, matched, digests, survivors, accepted, rejected, file_store.reused + pair_store.reused)
    write_text(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False, default=_jsonable))
    write_text(out / "report.md", report_markdown(report))
    return report


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def _report(cfg, entries, problems, matched, digests, survivors, accepted, rejected, reused) -> dict:
    stage_counts = Counter(r.stage for r in rejected)
    failed_files = sorted({d["reason"] for d in digests.values() if d["status"] != "ok"})
    failed = len(problems) + len(failed_files) + sum(1 for r in rejected if r.failed and r.stage == "audio")
    counts = {
        "catalogue_entries": len(entries), "catalogue_unusable": len(problems),
        "originals": matched.originals, "instrumentals": matched.instrumentals,
        "metadata_candidates": len(matched.candidates), "metadata_rejected": stage_counts["metadata"],
        "instrumentals_without_original": len(matched.unmatched),
        "files_decoded": sum(1 for d in digests.values() if d["status"] == "ok"), "files_failed": len(failed_files),
        "content_pruned": stage_counts["content"], "aligned": len(survivors),
        "audio_rejected": stage_counts["audio"], "accepted": len(accepted), "results_reused": reused,
    }
    measures = ("offset", "offset_samples", "rate", "gain", "gain_db", "residual_db", "floor_db", "vocal_activity", "peak_ratio",
                "confidence", "confidences", "overlap_seconds")
    return {
        "catalog": str(cfg.catalog), "out": str(cfg.out), "match": cfg.match.to_dict(), "align": cfg.align.to_dict(),
        "counts": counts, "failed": failed, "problems": problems + [f"{r}" for r in failed_files],
        "pairs": [{"original": c.original.label(), "instrumental": c.instrumental.label(), "original_path": str(c.original.path),
                   "instrumental_path": str(c.instrumental.path), "title_score": c.title_score,
                   **{k: r.get(k) for k in measures}} for c, r in accepted],
        "rejected": [r.to_dict() for r in rejected],
        "unmatched_instrumentals": [e.label() for e in matched.unmatched],
    }


STAGE_LABELS = (
    ("catalogue_entries", "catalogue entries read"), ("catalogue_unusable", "catalogue rows or files unusable"),
    ("originals", "originals (no instrumental marker)"), ("instrumentals", "instrumentals (marker in the title)"),
    ("metadata_candidates", "candidate pairs by metadata"), ("metadata_rejected", "near misses rejected by metadata"),
    ("instrumentals_without_original", "instrumentals without any candidate original"),
    ("files_decoded", "files decoded and hashed"), ("files_failed", "files that could not be decoded"),
    ("content_pruned", "pairs pruned by content (identical, duplicate, unreadable)"), ("aligned", "pairs aligned"),
    ("audio_rejected", "pairs rejected by the audio check"), ("accepted", "pairs accepted (in pairs.csv)"),
    ("results_reused", "results reused from a previous run"),
)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def report_markdown(report: dict) -> str:
    """The report as Markdown: counts per stage, accepted pairs with their measures, every rejection with its reason."""
    lines = ["# vocalsep mine: report", "", f"Catalogue: `{report['catalog']}`", "", "| stage | count |", "| --- | ---: |"]
    lines += [f"| {label} | {report['counts'][key]} |" for key, label in STAGE_LABELS]
    lines += ["", "## Accepted pairs", "", "| original | instrumental | offset (ms) | gain (dB) | residual (dB) | vocal activity | confidence |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {_cell(p['original'])} | {_cell(p['instrumental'])} | {1000 * p['offset']:.2f} | {p['gain_db']:+.2f} | "
              f"{p['residual_db']:.1f} | {p['vocal_activity']:.0%} | {p['confidence']:.3f} |" for p in report["pairs"]]
    lines += ["", "## Rejected candidates", "", "| stage | original | instrumental | reason |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['stage']} | {_cell(r['original'])} | {_cell(r['instrumental'])} | {_cell(r['reason'])} |" for r in report["rejected"]]
    if report["unmatched_instrumentals"]:
        lines += ["", "## Instrumentals without a candidate original", ""] + [f"- {_cell(x)}" for x in report["unmatched_instrumentals"]]
    if report["problems"]:
        lines += ["", "## Problems", ""] + [f"- {_cell(x)}" for x in report["problems"]]
    return "\n".join(lines) + "\n"


def print_summary(report: dict, stream=None) -> None:
    """One line per stage count, for the command line."""
    stream = stream or sys.stderr
    c = report["counts"]
    print(f"vocalsep: {c['catalogue_entries']} entries, {c['metadata_candidates']} candidate pairs, {c['content_pruned']} pruned by content, "
          f"{c['aligned']} aligned, {c['accepted']} accepted, {c['audio_rejected']} rejected by audio; "
          f"{report['failed']} failed -> {Path(report['out']) / 'pairs.csv'}", file=stream)

