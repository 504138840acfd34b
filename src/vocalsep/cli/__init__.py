"""The ``vocalsep`` command line: a thin face over the library.

One module per command on the shared pieces of :mod:`vocalsep._cli_base` and :mod:`vocalsep.cli._common`:
:mod:`.separate`, :mod:`.models` (info, models), :mod:`.train`, :mod:`.evaluate`, :mod:`.mine`; import-spleeter,
listen and web live beside their code (:mod:`vocalsep.spleeter.cli`, :mod:`vocalsep.listen.cli`,
:mod:`vocalsep.web.cli`).  This module assembles the parser and runs a command.

Heavy imports (PyTorch, decoders) happen inside the command that needs them,
so ``vocalsep --help`` answers at once.  Exit codes: 0 all inputs done,
1 some inputs failed (each named with its reason), 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from concurrent.futures import BrokenExecutor

from .._cli_base import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from .._version import __version__
from ._common import SIGNALLED, Terminated, add_separation_options, configure_logging, terminate
from .evaluate import add_evaluate_parser
from .mine import add_mine_parser
from .models import add_models_parsers
from .separate import add_separate_parser, collect_inputs
from .train import add_train_parser

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "Terminated", "UsageError", "add_separation_options", "build_parser",
           "collect_inputs", "entry", "main"]

log = logging.getLogger("vocalsep")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vocalsep",
        description="Separate songs into singing voice and accompaniment with the U-Net of Jansson et al. (ISMIR 2017).",
    )
    parser.add_argument("--version", action="version", version=f"vocalsep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar, errors only")
    # -v/-q are accepted after the command too; SUPPRESS keeps the top-level value when absent
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more detail")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar, errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_separate_parser(sub, common)
    add_models_parsers(sub, common)  # info, models
    add_train_parser(sub, common)
    add_evaluate_parser(sub, common)
    add_mine_parser(sub, common)
    from ..spleeter.cli import add_import_parser

    add_import_parser(sub, common)
    from ..listen.cli import add_listen_parser

    add_listen_parser(sub, common)
    from ..web.cli import add_web_parser

    add_web_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for usage errors
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    args.argv = list(sys.argv[1:] if argv is None else map(str, argv))  # what was typed (train tells it from defaults)
    configure_logging(args.verbose, args.quiet)
    from ..errors import VocalsepError

    SIGNALLED["terminated"] = False
    previous = signal.signal(signal.SIGTERM, terminate) if threading.current_thread() is threading.main_thread() else None
    try:
        return args.func(args)
    except (UsageError, VocalsepError) as exc:
        print(f"vocalsep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print("vocalsep: terminated", file=sys.stderr)
        return 143
    except BrokenExecutor:  # a worker of -j was killed (out of memory, a signal to it alone)
        print("vocalsep: error: a worker process ended without finishing (killed, or out of memory?)", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("vocalsep: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (vocalsep info default | head): stop quietly
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is written to the closed pipe
        except OSError:
            pass
        return 141  # 128 + SIGPIPE, as a shell reports it
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The ``vocalsep`` command (and ``python -m vocalsep``): :func:`main`, then a quick exit.

    When :func:`main` returns, every output is written, closed and renamed into
    place; what is left is the interpreter's clean-up, which frees PyTorch's
    tensors, modules and thread pools one by one, so the process ends with
    :func:`os._exit` after flushing the streams and logging.  An interrupted run (130, 143) exits normally, so
    that multiprocessing releases what a stopped worker pool held.
    :func:`main` itself returns normally (for tests and for callers from Python).
    """
    rc = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            pass
    if rc in (130, 143):  # interrupted: a normal exit, so that multiprocessing releases what a stopped worker pool held
        sys.exit(rc)
    os._exit(rc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
