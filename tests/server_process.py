"""A server in a process of its own (so that a test can kill it), found by what it prints."""

from __future__ import annotations

import queue
import subprocess
import threading
import time


def start_server(cmd: list[str], marker: str, env: dict | None = None, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """Run ``cmd`` and wait for the line of its output (stdout and stderr) that contains ``marker``;
    returns the process and what follows the marker on that line (stripped)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if marker in line:
            return proc, line.split(marker, 1)[1].strip()
    proc.kill()
    raise AssertionError("the server did not start: " + "".join(seen))
