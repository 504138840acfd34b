"""The responses of a study, in SQLite.

One file (``STUDY/responses.sqlite`` by default) in WAL mode with
``synchronous=FULL``: every answer is one ``BEGIN IMMEDIATE`` transaction
(the answer row and one rating row per clip, or nothing), so concurrent
participants are serialised by SQLite, and a server that is killed or
restarted loses no answer it has acknowledged (nor does a power cut: every
commit is synced to disk).  Each thread has its own connection, so the store
is safe to use from any number of server threads.

Tables::

    meta(key, value)                       study fingerprint, admin token, code secret, schema version
    participants(id, token_hash, external_id, seed, plan, created_at, user_agent,
                 finished_at, disqualified_at, disqualified_reason)
    answers(participant_id, item, position, answered_at, elapsed_ms)     one per participant and item
    ratings(participant_id, item, clip, slot, rating, listened)          one per clip of an answer

Only a SHA-256 hash of each participant's token is stored.  ``plan`` is the
participant's order (JSON ``[[item, [clip keys as shown]], ...]``).
Disqualification is derived from the answers to control items and the
acceptable ranges in the current study file (:meth:`Store.refresh`), so an
expert who corrects a range after the fact gets consistent results.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._webapp import Database
from ..errors import ConfigError
from .study import Study, control_failures

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    external_id TEXT,
    seed INTEGER NOT NULL,
    plan TEXT NOT NULL,
    created_at TEXT NOT NULL,
    user_agent TEXT,
    finished_at TEXT,
    disqualified_at TEXT,
    disqualified_reason TEXT
);
CREATE TABLE IF NOT EXISTS answers (
    participant_id INTEGER NOT NULL REFERENCES participants(id),
    item TEXT NOT NULL,
    position INTEGER NOT NULL,
    answered_at TEXT NOT NULL,
    elapsed_ms INTEGER,
    PRIMARY KEY (participant_id, item),
    UNIQUE (participant_id, position)
);
CREATE TABLE IF NOT EXISTS ratings (
    participant_id INTEGER NOT NULL,
    item TEXT NOT NULL,
    clip TEXT NOT NULL,
    slot TEXT NOT NULL,
    rating INTEGER NOT NULL,
    listened REAL NOT NULL,
    PRIMARY KEY (participant_id, item, clip),
    FOREIGN KEY (participant_id, item) REFERENCES answers(participant_id, item)
);
"""


class Conflict(Exception):
    """The request contradicts what is stored (an answer out of turn, or different from the stored one)."""


class StudyFull(Exception):
    """``max_participants`` have started."""


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Store(Database):
    """The response database of one study (see the module documentation)."""

    def __init__(self, path: str | Path, *, create: bool = True):
        super().__init__(path)
        self._code_secret: str | None = None
        if not create and not self.path.is_file():
            raise ConfigError(f"{self.path}: no responses yet (the server writes this file when it starts)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.create(_SCHEMA, SCHEMA_VERSION, "response database")

    # -- setup

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self.transaction(write=False) as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def _meta_default(self, key: str, make) -> str:
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return row[0]
            value = make()
            db.execute("INSERT INTO meta VALUES (?, ?)", (key, value))
            return value

    def bind(self, study: Study) -> None:
        """Tie the database to ``study``: refuse a study whose items or clips changed after participants
        started; then recompute every participant's disqualification from the current control ranges."""
        fp = study.fingerprint()
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
            started = db.execute("SELECT COUNT(*) FROM participants").fetchone()[0]
            if row is not None and row[0] != fp and started:
                raise ConfigError(
                    f"{study.path}: its questions, clips or scale length changed after {started} participant(s) started "
                    f"(texts, labels and acceptable ranges may change; these may not). Restore the study, or collect "
                    f"responses for the changed study in a new database (--db)")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('fingerprint', ?)", (fp,))
        self.refresh(study)

    def admin_token(self) -> str:
        """The admin token stored in the database (made on first use)."""
        return self._meta_default("admin_token", lambda: secrets.token_urlsafe(24))

    def completion_code(self, participant_id: int) -> str:
        if self._code_secret is None:
            self._code_secret = self._meta_default("code_secret", lambda: secrets.token_hex(32))
        return hmac.new(self._code_secret.encode(), str(participant_id).encode(), hashlib.sha256).hexdigest()[:10].upper()

    # -- participants

    def create_participant(self, plan: Sequence, seed: int, *, external_id: str | None = None, user_agent: str | None = None,
                           max_participants: int | None = None) -> tuple[int, str]:
        """A new participant with ``plan``; returns (id, token).  StudyFull when ``max_participants`` have started."""
        token = secrets.token_urlsafe(24)
        with self.transaction() as db:
            if max_participants is not None:
                n = db.execute("SELECT COUNT(*) FROM participants").fetchone()[0]
                if n >= max_participants:
                    raise StudyFull(f"the study is full ({n} participants)")
            cur = db.execute(
                "INSERT INTO participants (token_hash, external_id, seed, plan, created_at, user_agent) VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash(token), external_id, int(seed), json.dumps([[i, list(k)] for i, k in plan]), now(),
                 (user_agent or "")[:300] or None))
            return int(cur.lastrowid), token

    def participant(self, token: str) -> dict | None:
        """The participant with ``token`` (plan parsed, ``answered``: the number of answers), or None."""
        with self.transaction(write=False) as db:
            row = db.execute("SELECT * FROM participants WHERE token_hash = ?", (token_hash(token),)).fetchone()
            if row is None:
                return None
            answered = db.execute("SELECT COUNT(*) FROM answers WHERE participant_id = ?", (row["id"],)).fetchone()[0]
        p = dict(row)
        p["plan"] = [(i, tuple(k)) for i, k in json.loads(p["plan"])]
        p["answered"] = answered
        return p

    def record_answer(self, participant_id: int, position: int, item: str, ratings: Sequence[tuple[str, str, int, float]],
                      *, elapsed_ms: int | None, failures: Sequence[str], total: int) -> bool:
        """Store one answer atomically: ``ratings`` is ``[(clip key, slot, rating, seconds listened), ...]``.

        Returns True when stored, False when the same answer was already stored
        (a resubmission: nothing changes).  Raises :class:`Conflict` when the
        position is not the participant's next one, or when an answer with
        other ratings exists.  A non-empty ``failures`` (a failed control)
        disqualifies the participant; answering the last item finishes them."""
        with self.transaction() as db:
            row = db.execute("SELECT item, position FROM answers WHERE participant_id = ? AND (item = ? OR position = ?)",
                             (participant_id, item, position)).fetchone()
            if row is not None:
                if row["item"] != item or row["position"] != position:
                    raise Conflict("this answer does not match the stored one")
                stored = {(r["clip"], r["rating"]) for r in db.execute(
                    "SELECT clip, rating FROM ratings WHERE participant_id = ? AND item = ?", (participant_id, item))}
                if stored != {(c, r) for c, _, r, _ in ratings}:
                    raise Conflict("this question was already answered with other ratings; the first answer stands")
                return False
            answered = db.execute("SELECT COUNT(*) FROM answers WHERE participant_id = ?", (participant_id,)).fetchone()[0]
            if position != answered:
                raise Conflict(f"question {answered + 1} is the next one to answer, not {position + 1}")
            t = now()
            db.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?)", (participant_id, item, position, t, elapsed_ms))
            db.executemany("INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?)",
                           [(participant_id, item, c, s, int(r), float(sec)) for c, s, r, sec in ratings])
            if failures:
                db.execute("UPDATE participants SET disqualified_at = ?, disqualified_reason = ? "
                           "WHERE id = ? AND disqualified_at IS NULL", (t, failures[0], participant_id))
            if answered + 1 == total:
                db.execute("UPDATE participants SET finished_at = ? WHERE id = ?", (t, participant_id))
            return True

    def refresh(self, study: Study) -> None:
        """Recompute every participant's disqualification from their control answers and the study's ranges."""
        with self.transaction() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM participants")]
            verdict = judge(study, _control_rows(db, study))
            for pid in ids:
                v = verdict.get(pid)
                db.execute("UPDATE participants SET disqualified_at = ?, disqualified_reason = ? WHERE id = ?",
                           (None, None, pid) if v is None else (v[0], v[1], pid))

    # -- reading everything

    def participants(self) -> list[dict]:
        """Every participant with ``answered`` (count) and ``last_answer_at``, by id."""
        with self.transaction(write=False) as db:
            rows = db.execute(
                "SELECT p.*, COUNT(a.item) AS answered, MAX(a.answered_at) AS last_answer_at FROM participants p "
                "LEFT JOIN answers a ON a.participant_id = p.id GROUP BY p.id ORDER BY p.id").fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d.pop("token_hash")
            d["plan"] = [(i, tuple(k)) for i, k in json.loads(d["plan"])]
            out.append(d)
        return out

    def ratings(self) -> list[dict]:
        """Every rating joined with its answer, by participant and position, then slot."""
        with self.transaction(write=False) as db:
            rows = db.execute(
                "SELECT a.participant_id, a.item, a.position, a.answered_at, a.elapsed_ms, r.clip, r.slot, r.rating, r.listened "
                "FROM answers a JOIN ratings r ON r.participant_id = a.participant_id AND r.item = a.item "
                "ORDER BY a.participant_id, a.position, r.slot").fetchall()
        return [dict(r) for r in rows]

    def answer_counts(self) -> dict[str, int]:
        with self.transaction(write=False) as db:
            return {r[0]: r[1] for r in db.execute("SELECT item, COUNT(*) FROM answers GROUP BY item")}


def _control_rows(db: sqlite3.Connection, study: Study) -> list[dict]:
    controls = [i.id for i in study.control_items]
    if not controls:
        return []
    marks = ",".join("?" * len(controls))
    return [dict(r) for r in db.execute(
        f"SELECT a.participant_id, a.item, a.position, a.answered_at, r.clip, r.rating FROM answers a "
        f"JOIN ratings r ON r.participant_id = a.participant_id AND r.item = a.item WHERE a.item IN ({marks})", controls)]


def judge(study: Study, rows: Sequence[Mapping]) -> dict[int, tuple[str, str]]:
    """Participant id -> (time, reason) of their first failed control (by position), for those who failed one.

    ``rows``: ratings joined with their answers (``participant_id``, ``item``,
    ``position``, ``answered_at``, ``clip``, ``rating``); rows of other items are ignored."""
    index = study.item_index
    answers: dict[tuple[int, str], dict] = {}
    for r in rows:
        item = index.get(r["item"])
        if item is None or not item.control:
            continue
        a = answers.setdefault((r["participant_id"], r["item"]), {"at": r["answered_at"], "position": r["position"], "ratings": {}})
        a["ratings"][r["clip"]] = r["rating"]
    verdict: dict[int, tuple[str, str]] = {}
    for (pid, item), a in sorted(answers.items(), key=lambda kv: (kv[0][0], kv[1]["position"])):
        failures = control_failures(index[item], a["ratings"])
        if failures and pid not in verdict:
            verdict[pid] = (a["at"], failures[0])
    return verdict
