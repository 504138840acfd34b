"""``vocalsep web``: the command line of the web app.

:func:`add_web_parser` adds the ``web`` command to the subparsers of ``vocalsep.cli.build_parser``.
Flask, waitress and PyTorch are imported inside the command, so ``vocalsep --help`` stays instant.
"""

from __future__ import annotations

import argparse
import math
import sys

from .._argtypes import count, port
from .._cli_base import EXIT_OK


def _megabytes(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of megabytes")
    return v


def add_web_parser(sub, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``web`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "web", parents=[common], help="separate songs in the browser: upload, listen, sing along, download",
        description="Serve a page where songs and videos are uploaded, separated by a queue of workers, played back with "
        "a vocal-level slider (0 % = karaoke, 100 % = original) and downloaded as stems or mixes. Jobs and their files "
        "are kept under --data (SQLite and plain files) across restarts. Needs pip install 'vocalsep[web]'.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only; "
                   "any other address needs --token)")
    p.add_argument("--port", type=port, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--data", default="vocalsep-web", metavar="DIR", help="folder of the jobs and their files (default: ./vocalsep-web)")
    p.add_argument("-m", "--model", default=None, metavar="NAME|PATH",
                   help="model of the jobs that do not choose one: a registered name, spleeter:2stems, a model file or folder "
                   "(default: the installed default model); every registered model is offered too")
    p.add_argument("--workers", type=count, default=1, metavar="N",
                   help="songs separated at once, each worker with its own copy of the model (default: 1)")
    p.add_argument("--token", default=None, metavar="T",
                   help="a secret of 16 to 128 letters, digits, '-' or '_' that every visitor needs (given in the address "
                   "the command prints); required with a --host other than loopback")
    p.add_argument("--keep", type=count, default=50, metavar="N", help="finished jobs kept; older ones are deleted (default: 50)")
    p.add_argument("--max-mb", type=_megabytes, default=200.0, metavar="M", help="largest upload in megabytes (default: 200)")
    p.add_argument("--max-queue", type=count, default=32, metavar="N",
                   help="jobs that may wait; an upload beyond them is answered 429, try again later (default: 32)")
    p.set_defaults(func=cmd_web)
    return p


def cmd_web(args) -> int:
    from .._webapp import missing_modules
    from ..errors import ConfigError

    missing = missing_modules("flask", "waitress")
    if missing:
        raise ConfigError(f"'vocalsep web' needs {' and '.join(missing)}: pip install 'vocalsep[web]'")
    from .server import serve

    serve(args.data, host=args.host, port=args.port, model=args.model, workers=args.workers, max_queue=args.max_queue,
          keep=args.keep, max_mb=args.max_mb, token=args.token, announce=lambda line: print(line, file=sys.stderr, flush=True))
    return EXIT_OK
