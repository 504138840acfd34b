"""What the two web apps (``vocalsep listen serve`` and ``vocalsep web``) share: a SQLite file used
from many threads, the waitress server in a background thread, and the HTTP headers every answer gets.

Nothing here imports Flask or waitress at module level, so that the command line stays instant.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from . import _cli_base
from .errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ApiError(Exception):
    """An API request is refused: the app answers ``{"error": message}`` with ``status`` (and ``headers``)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def url_host(host: str) -> str:
    """``host`` as it stands in a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host


missing_modules = _cli_base.missing_modules  # the commands look it up here (tests replace it)


def security_headers(resp, csp: str):
    """The headers every answer of the apps carries: a strict Content-Security-Policy, no sniffing,
    no referrer, no framing."""
    resp.headers["Content-Security-Policy"] = csp
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    return resp


class Database:
    """One SQLite file in WAL mode with ``synchronous=FULL`` (a commit is on disk when it returns, so
    a killed server loses nothing it acknowledged), a connection per thread, and transactions."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()

    def create(self, schema: str, version: str, what: str) -> None:
        """Create the tables of ``schema`` (statements separated by ';') where missing and check that the
        stored schema version is ``version``; ``what`` names the file in errors."""
        try:
            with self.transaction() as db:
                for statement in schema.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (version,))
                stored = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ConfigError(f"{self.path}: not a usable {what}: {exc}") from None
        if stored != version:
            raise ConfigError(f"{self.path}: {what} version {stored}; this vocalsep reads {version}")

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (made on first use and kept: closing the last connection to a WAL
        database checkpoints it, which would cost a few fsyncs per write)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 60000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            self._local.db = db
        return db

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """This thread's connection inside one transaction: committed when the block ends, rolled back on an exception."""
        db = self._connect()
        if db.in_transaction:
            raise RuntimeError("transactions do not nest")
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class BackgroundServer:
    """A WSGI app served by waitress in a background thread (tests, notebooks): ``url``, ``stop()``.

    ``options`` go to waitress's ``create_server`` (e.g. ``max_request_body_size``)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 8, **options):
        from waitress.server import create_server

        settings = {"ident": "vocalsep", "asyncore_loop_timeout": 0.2, "connection_limit": 1000, "channel_timeout": 30, **options}
        self.server = create_server(app, host=host, port=port, threads=threads, **settings)
        self.url = f"http://{url_host(self.server.effective_host)}:{self.server.effective_port}/"
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="vocalsep-http", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):
            if not self._stopping:
                raise

    def stop(self) -> None:
        """Finish the requests being served, then close every connection and the listening socket."""
        self._stopping = True
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=10)
        for channel in list(self.server._map.values()):
            if channel is not self.server and channel is not self.server.trigger:
                channel.handle_close()
        self.server.close()
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
