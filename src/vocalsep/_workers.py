"""Worker processes (``separate -j``, ``evaluate -j``, ``mine -j``) that end with the process that
started them, even when it is killed with SIGKILL and can clean nothing up."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def die_with_parent(parent: int) -> None:
    """Call first in a worker process: end it as soon as ``parent`` (the pid that started it) is gone.

    On Linux the kernel kills it (``prctl(PR_SET_PDEATHSIG, SIGKILL)``); a daemon thread that
    checks the parent every second does it elsewhere, and covers the start-up race on Linux.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # gone before the request was made
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="vocalsep-parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def stop_workers(pool) -> None:
    """Stop a :class:`~concurrent.futures.ProcessPoolExecutor` at once: cancel what has not started
    and send SIGTERM to the workers (which discard what they were writing), then wait for them."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the executor's own record of its workers
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=30)
