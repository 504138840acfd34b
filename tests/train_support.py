"""``vocalsep train`` in a child process, optionally killed outright (``os._exit(137)``, no clean-up)
right after a given training step, through :func:`vocalsep.training.loop.fit`'s ``on_step``."""

from __future__ import annotations

import os
import subprocess
import sys

KILLED = """
import os, sys
from vocalsep.training import loop
kill_at = int(sys.argv[1])
real_fit = loop.fit
loop.fit = lambda cfg: real_fit(cfg, on_step=lambda step: os._exit(137) if step == kill_at else None)
from vocalsep.cli import main
sys.exit(main(["train", *sys.argv[2:]]))
"""


def train_cli(*args, env=None, kill_at: int | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, **(env or {}))
    head = [sys.executable, "-m", "vocalsep", "train"] if kill_at is None else [sys.executable, "-c", KILLED, str(kill_at)]
    return subprocess.run([*head, *map(str, args)], capture_output=True, text=True, env=e, timeout=600)
