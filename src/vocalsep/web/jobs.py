"""The queue and the workers of ``vocalsep web``.

An in-process queue of job ids, oldest first, at most ``max_queue`` long, and ``workers``
threads.  Each worker loads a model the first time one of its jobs asks for it (the default
model as soon as the worker starts) and keeps it for the jobs that follow; a worker keeps at most
``models_per_worker`` models.  PyTorch, the decoders and the encoders release the GIL, so the
threads separate in parallel and share one copy of the libraries.

A job is separated by :meth:`vocalsep.separator.Separator.separate_file` into its folder (16-bit
WAV stems, each written to a temporary file and renamed into place when complete); the
separator reports each finished segment, which becomes the job's progress.  Then the waveform's
peaks are written, the upload is removed, and the job is marked done: only then are its files
served.  A job deleted while it runs stops at its next segment and its folder is removed; when
the server stops, a running job goes back to the queue.  After each job, finished jobs beyond
``keep`` are deleted, oldest first.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import ConfigError, ModelError, VocalsepError
from ..stems import STEMS
from .media import job_error, write_peaks
from .store import JobStore, Recovery

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """The job was deleted while it ran."""


class Interrupted(Exception):
    """The server is stopping."""


def load_separator(spec):
    """The separator of a model: a registered name, a model file or a folder of them."""
    from ..separator import Separator

    return Separator.from_pretrained(spec)


def release_memory() -> None:
    """Hand memory freed by a finished job back to the system (glibc), so that an idle server is small."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class JobPool:
    """The queue and the worker threads (see the module documentation).

    ``models`` maps the model names a job may ask for to what ``load`` takes (by default
    :func:`load_separator`: a registered name, a file or a folder); ``default_model`` is one of them.
    """

    def __init__(self, store: JobStore, *, models: Mapping[str, object], default_model: str, workers: int = 1,
                 max_queue: int = 32, keep: int = 50, load: Callable[[object], object] | None = None,
                 max_attempts: int = 2, models_per_worker: int = 2):
        if default_model not in models:
            raise ValueError(f"the default model {default_model!r} is not among the models {sorted(models)}")
        if workers < 1 or max_queue < 1 or keep < 1:
            raise ValueError("workers, max_queue and keep must be at least 1")
        self.store = store
        self.models = dict(models)
        self.default_model = default_model
        self.workers = workers
        self.max_queue = max_queue
        self.keep = keep
        self.load = load or load_separator
        self.max_attempts = max_attempts
        self.models_per_worker = max(1, models_per_worker)
        self._queue: collections.deque[str] = collections.deque()
        self._running: dict[str, threading.Event] = {}  # job id -> set when the job is deleted
        self._lock = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self.recovery: Recovery | None = None
        self._lock_file = None

    # -- life

    def start(self) -> Recovery:
        """Take the data folder (one server at a time), recover the store after the last stop, queue its
        queued jobs and start the workers."""
        self._lock_file = _take(self.store.root / "server.lock")
        self.recovery = self.store.recover(self.max_attempts)
        for job_id in self.recovery.failed:
            log.warning("job %s: %s", job_id, (self.store.get(job_id) or {}).get("error"))
        with self._lock:
            self._queue.extend(self.store.queued())
        self.store.prune(self.keep)
        for k in range(self.workers):
            t = threading.Thread(target=self._work, name=f"vocalsep-web-worker-{k + 1}", daemon=True)
            t.start()
            self._threads.append(t)
        return self.recovery

    def stop(self, timeout: float = 60) -> None:
        """Stop the workers; a job being separated stops at its next segment and goes back to the queue."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for t in self._threads:
            t.join(timeout)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    # -- the queue

    def full(self) -> bool:
        with self._lock:
            return len(self._queue) >= self.max_queue

    def submit(self, job_id: str) -> bool:
        """Queue a job whose row is stored; False when the queue is full."""
        with self._lock:
            if len(self._queue) >= self.max_queue:
                return False
            self._queue.append(job_id)
            self._lock.notify()
            return True

    def positions(self) -> dict[str, int]:
        """Queued job id -> its place in the queue (1: the next to start)."""
        with self._lock:
            return {job_id: k + 1 for k, job_id in enumerate(self._queue)}

    def places(self) -> tuple[dict[str, int], frozenset[str]]:
        """The queue's places (as :meth:`positions`) and the jobs a worker has taken, read at one moment:
        a taken job's row may still say queued for an instant."""
        with self._lock:
            return {job_id: k + 1 for k, job_id in enumerate(self._queue)}, frozenset(self._running)

    def delete(self, job_id: str) -> dict | None:
        """Delete a job, whatever its state; returns its row, or None when there is no such job."""
        with self._lock:
            flag = self._running.get(job_id)
            if flag is not None:  # its worker removes the folder when it sees the flag
                flag.set()
                return self.store.delete(job_id, folder=False)
            try:
                self._queue.remove(job_id)
            except ValueError:
                pass
            return self.store.delete(job_id)

    def _next(self) -> str | None:
        with self._lock:
            while not self._queue and not self._stopping:
                self._lock.wait()
            if self._stopping:
                return None
            job_id = self._queue.popleft()
            self._running[job_id] = threading.Event()
            return job_id

    # -- the workers

    def _work(self) -> None:
        cache: collections.OrderedDict[str, object] = collections.OrderedDict()
        try:
            self._separator(cache, self.default_model)
        except Exception as exc:  # noqa: BLE001 - the jobs that need it fail with the reason
            log.error("cannot load the model %r: %s", self.default_model, exc)
        while True:
            job_id = self._next()
            if job_id is None:
                return
            try:
                self._run(job_id, cache)
            finally:
                with self._lock:
                    self._running.pop(job_id, None)
                if not self._stopping:
                    self.store.prune(self.keep)
                release_memory()

    def _separator(self, cache: collections.OrderedDict, name: str):
        if name in cache:
            cache.move_to_end(name)
            return cache[name]
        if name not in self.models:
            raise ModelError(f"the model {name!r} is not offered by this server (offered: {', '.join(sorted(self.models))})")
        while len(cache) >= self.models_per_worker:
            cache.popitem(last=False)
        sep = self.load(self.models[name])
        cache[name] = sep
        return sep

    def _run(self, job_id: str, cache) -> None:
        job = self.store.start(job_id)
        if job is None:  # deleted before it started
            return
        deleted = self._running[job_id]
        folder = self.store.folder(job_id)
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            if deleted.is_set():
                raise Cancelled
            if self._stopping:
                raise Interrupted
            done += n
            self.store.set_progress(job_id, min(done / max(job["frames"], 1), 0.99))

        log.info("job %s: separating %s", job_id, job["name"])
        try:
            sep = self._separator(cache, job["model"])
            sep.separate_file(folder / job["input"], folder, stems=STEMS, fmt="wav", bit_depth="16", filename="{stem}.{ext}",
                              force=True, progress=progress)
            write_peaks(folder)
            if deleted.is_set():
                raise Cancelled
            (folder / job["input"]).unlink(missing_ok=True)
            if not self.store.finish(job_id, keep=self.keep):
                raise Cancelled
            log.info("job %s: done", job_id)
        except Cancelled:
            self.store.remove_folder(job_id)
            log.info("job %s: deleted while it ran", job_id)
        except Interrupted:
            _remove_outputs(folder, keep=job["input"])
            self.store.requeue(job_id)
        except Exception as exc:  # noqa: BLE001 - every failure is the job's, and said
            if deleted.is_set():
                self.store.remove_folder(job_id)
                return
            message = job_error(job["name"], exc, folder)
            log.warning("job %s failed: %s", job_id, message, exc_info=not isinstance(exc, (OSError, VocalsepError)))
            self.store.fail(job_id, message)
            self.store.remove_folder(job_id)


def _take(path: Path):
    """An open file holding an exclusive lock on ``path`` (where the system has ``fcntl``); ConfigError
    when another process holds it.  The lock goes with the process, however it ends."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        return None
    f = open(path, "a+")  # noqa: SIM115 - kept open while the server runs
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise ConfigError(f"{path.parent} is in use by another 'vocalsep web'; stop it, or give this one another --data") from None
    return f


def _remove_outputs(folder: Path, keep: str) -> None:
    for f in folder.iterdir():
        if f.name != keep:
            f.unlink(missing_ok=True)
