"""The jobs of ``vocalsep web``: their state in SQLite, their files in plain folders.

Layout of the data folder (``--data``)::

    DATA/jobs.sqlite                one row per job (WAL, synchronous=FULL: a commit survives a kill)
    DATA/jobs/ID/input.EXT          the upload, until it is separated
    DATA/jobs/ID/vocals.wav         the stems, 16-bit WAV, each renamed into place when complete
    DATA/jobs/ID/accompaniment.wav
    DATA/jobs/ID/peaks.json         the waveform the page draws, written atomically
    DATA/jobs/ID/vocals.flac ...    conversions, made on the first download, atomically
    DATA/tmp/                       uploads being received and answers being built; emptied at start
    DATA/server.lock                held by the running server: one server per data folder

A job's folder is made before its row and removed after it, so a folder without a row is
debris of an upload or a deletion cut short (:meth:`JobStore.recover` removes it).  A job is
``done`` only once both stems and the waveform are in place, so nothing half-written is served.

Ids are 22 characters of :func:`secrets.token_urlsafe` (128 random bits): unguessable, and the
only part of a path that comes from a request (:data:`ID_RE` is checked first).
"""

from __future__ import annotations

import datetime as _dt
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from .._webapp import Database
from ..errors import ConfigError

SCHEMA_VERSION = "1"
DB_FILE = "jobs.sqlite"
ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
STATUSES = ("queued", "running", "done", "failed")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    input TEXT NOT NULL,
    size INTEGER NOT NULL,
    sample_rate INTEGER NOT NULL,
    channels INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
"""


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def new_id() -> str:
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Recovery:
    """What :meth:`JobStore.recover` found after a stop."""

    resumed: tuple[str, ...]  # jobs that were running and are queued again
    failed: tuple[str, ...]  # jobs that were running too often, or whose files are gone
    removed: int  # folders and temporary files without a job


class JobStore:
    """The rows and folders of every job under ``root`` (see the module documentation)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        self.tmp_dir = self.root / "tmp"
        try:
            for d in (self.root, self.jobs_dir, self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{self.root}: cannot keep the web app's jobs there ({exc.strerror or exc}): "
                              "give --data a folder, new or the app's own") from None
        self.db = Database(self.root / DB_FILE)
        self.db.create(_SCHEMA, SCHEMA_VERSION, "job database")

    def folder(self, job_id: str) -> Path:
        if not ID_RE.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.jobs_dir / job_id

    # -- rows

    def add(self, job_id: str, *, name: str, model: str, input: str, size: int, sample_rate: int, channels: int,
            frames: int) -> None:
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, name, model, status, input, size, sample_rate, channels, frames, created_at) "
                "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                (job_id, name, model, input, int(size), int(sample_rate), int(channels), int(frames), now()))

    def get(self, job_id: str) -> dict | None:
        with self.db.transaction(write=False) as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else dict(row)

    def all(self) -> list[dict]:
        """Every job, newest first."""
        with self.db.transaction(write=False) as db:
            return [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY seq DESC")]

    def queued(self) -> list[str]:
        """The ids of the queued jobs, oldest first."""
        with self.db.transaction(write=False) as db:
            return [r[0] for r in db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq")]

    def start(self, job_id: str) -> dict | None:
        """Mark a queued job running (one more attempt); None when it is no longer queued."""
        with self.db.transaction() as db:
            cur = db.execute("UPDATE jobs SET status = 'running', progress = 0, attempts = attempts + 1, started_at = ? "
                             "WHERE id = ? AND status = 'queued'", (now(), job_id))
            if cur.rowcount == 0:
                return None
            return dict(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def set_progress(self, job_id: str, progress: float) -> None:
        with self.db.transaction() as db:
            db.execute("UPDATE jobs SET progress = ? WHERE id = ? AND status = 'running'", (float(progress), job_id))

    def finish(self, job_id: str, keep: int | None = None) -> bool:
        """Mark a running job done, and in the same transaction delete the finished jobs beyond the
        ``keep`` newest (their folders go after); False when it was deleted meanwhile."""
        with self.db.transaction() as db:
            done = db.execute("UPDATE jobs SET status = 'done', progress = 1, error = NULL, finished_at = ? "
                              "WHERE id = ? AND status = 'running'", (now(), job_id)).rowcount == 1
            old = self._prune(db, keep) if done and keep is not None else []
        for i in old:
            self.remove_folder(i)
        return done

    def fail(self, job_id: str, error: str, *, even_done: bool = False) -> bool:
        """Mark a job failed with ``error`` (a done one only if ``even_done``); False when it was deleted meanwhile."""
        with self.db.transaction() as db:
            return db.execute("UPDATE jobs SET status = 'failed', error = ?, finished_at = ? WHERE id = ? AND (status != 'done' OR ?)",
                              (error, now(), job_id, even_done)).rowcount == 1

    def requeue(self, job_id: str) -> None:
        """Put a running job back in the queue without counting the attempt (the server is stopping)."""
        with self.db.transaction() as db:
            db.execute("UPDATE jobs SET status = 'queued', progress = 0, attempts = MAX(attempts - 1, 0), started_at = NULL "
                       "WHERE id = ? AND status = 'running'", (job_id,))

    def delete(self, job_id: str, *, folder: bool = True) -> dict | None:
        """Remove a job's row, then its folder (unless ``folder`` is False: a worker still writes
        there and removes it); returns the row, or None when there was none."""
        with self.db.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        if folder:
            self.remove_folder(job_id)
        return dict(row)

    def remove_folder(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def prune(self, keep: int) -> list[str]:
        """Delete the finished (done or failed) jobs beyond the ``keep`` that finished last; returns their ids."""
        with self.db.transaction() as db:
            old = self._prune(db, keep)
        for job_id in old:
            self.remove_folder(job_id)
        return old

    @staticmethod
    def _prune(db, keep: int) -> list[str]:
        old = [r[0] for r in db.execute(
            "SELECT id FROM jobs WHERE status IN ('done', 'failed') ORDER BY finished_at DESC, seq DESC LIMIT -1 OFFSET ?",
            (max(0, int(keep)),))]
        db.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in old])
        return old

    # -- after a stop

    def recover(self, max_attempts: int) -> Recovery:
        """Make the store consistent after the server stopped, however it stopped.

        Jobs that were running go back to the queue with their outputs removed, unless they have
        been started ``max_attempts`` times already (the file itself may stop the server): those
        fail, saying so.  A job whose files are gone fails, saying so.  Folders without a job,
        temporary files and the contents of ``DATA/tmp`` are removed."""
        removed = 0
        for p in self.tmp_dir.iterdir():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
            removed += 1
        resumed, failed = [], []
        rows = {r["id"]: r for r in self.all()}
        for d in self.jobs_dir.iterdir():
            if d.name not in rows:
                shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
                removed += 1
                continue
            for part in d.glob(".*.part"):  # an output or conversion cut short
                part.unlink(missing_ok=True)
                removed += 1
        for job_id, row in rows.items():
            folder = self.jobs_dir / job_id
            if row["status"] == "running":
                if row["attempts"] >= max_attempts:
                    self.fail(job_id, f"the server stopped {row['attempts']} times while separating {row['name']}; "
                                      "it was not tried again: upload it again to retry")
                    failed.append(job_id)
                    self.remove_folder(job_id)
                    continue
                for out in folder.glob("*"):
                    if out.name != row["input"]:
                        out.unlink(missing_ok=True)
                with self.db.transaction() as db:
                    db.execute("UPDATE jobs SET status = 'queued', progress = 0, started_at = NULL WHERE id = ?", (job_id,))
                resumed.append(job_id)
                row = {**row, "status": "queued"}
            if row["status"] == "queued" and not (folder / row["input"]).is_file():
                self.fail(job_id, f"the upload of {row['name']} is missing from the data folder; upload it again")
                failed.append(job_id)
                self.remove_folder(job_id)
            elif row["status"] == "done" and not all((folder / f).is_file() for f in ("vocals.wav", "accompaniment.wav", "peaks.json")):
                self.fail(job_id, f"the separated files of {row['name']} are missing from the data folder; upload it again", even_done=True)
                failed.append(job_id)
                self.remove_folder(job_id)
        return Recovery(tuple(resumed), tuple(failed), removed)
