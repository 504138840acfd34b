"""``vocalsep listen {prepare,serve,report}``: the command line of the listening test.

:func:`add_listen_parser` adds the ``listen`` command to the subparsers of
``vocalsep.cli.build_parser``.  Imports of Flask, waitress, pyloudnorm and
matplotlib happen inside the commands, so ``vocalsep --help`` stays instant.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from .._argtypes import count, count0, excerpt_seconds, port
from .._cli_base import EXIT_FAILED, EXIT_OK


def _share(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a share in (0, 1], e.g. 0.8")
    return v


def _system(text: str) -> tuple[str, str]:
    from ..errors import ConfigError
    from .prepare import parse_system

    try:
        return parse_system(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_listen_parser(sub, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``listen`` with its ``prepare``, ``serve`` and ``report`` steps to the subparsers ``sub``."""
    listen = sub.add_parser(
        "listen", parents=[common], help="the paper's listening test: prepare clips, serve the web app, report the ratings",
        description="A listening test like the paper's (section 4.1): listeners rate each system's separated vocals and "
        "instrumentals on a 7-step scale from Poor to Perfect, two questions per target, with hidden control questions. "
        "Steps: prepare -> serve -> report.")
    steps = listen.add_subparsers(dest="listen_command", metavar="STEP", required=True)

    p = steps.add_parser(
        "prepare", parents=[common], help="cut loudness-matched excerpts with singing and write a study folder",
        description="Pick excerpts that contain singing, cut them at the same place from the mixtures and every system's "
        "stems, normalise their loudness (ITU-R BS.1770) and write STUDY/study.json (editable: texts, labels, the "
        "acceptable answers of the control questions) and STUDY/audio/.")
    p.add_argument("--system", dest="systems", action="append", type=_system, required=True, metavar="NAME=DIR",
                   help="a system's separated outputs, DIR/TRACK/{vocals,accompaniment}.EXT (as 'vocalsep separate' writes "
                   "them); repeat for each system, e.g. --system unet=out/unet --system baseline=out/baseline")
    p.add_argument("--mixtures", required=True, metavar="DIR", help="the mixtures: DIR/TRACK.EXT (or DIR/TRACK/mixture.EXT)")
    p.add_argument("--vocals", default=None, metavar="DIR",
                   help="true vocal stems (DIR/TRACK/vocals.EXT or DIR/TRACK.EXT): find the singing with them instead of the "
                   "first system's estimate, and add a control with the true stem")
    p.add_argument("--clips", type=count, default=10, metavar="N", help="number of excerpts (default: 10)")
    p.add_argument("--duration", type=excerpt_seconds, default=10.0, metavar="S", help="seconds per excerpt (default: 10)")
    p.add_argument("-o", "--out", required=True, metavar="STUDY", help="the study folder to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the excerpt choice and the controls (default: 0)")
    p.add_argument("--min-voiced", type=_share, default=0.8, metavar="X",
                   help="smallest share of an excerpt's 20 ms frames with singing (default: 0.8)")
    p.add_argument("--loudness", type=float, default=-23.0, metavar="LUFS", help="loudness of every clip (default: -23 LUFS)")
    p.add_argument("--controls", type=count0, default=None, metavar="N",
                   help="number of hidden control questions (default: one of each kind, 4, or 5 with --vocals)")
    p.add_argument("--format", dest="fmt", choices=["wav", "flac"], default="wav", help="clip format (default: wav, 16-bit)")
    p.add_argument("--mono", action="store_true", help="mix every clip down to mono")
    p.add_argument("--title", default=None, help="the study's title, shown to participants")
    p.add_argument("-f", "--force", action="store_true", help="replace an existing study folder that has no responses yet")
    p.set_defaults(func=cmd_listen_prepare)

    p = steps.add_parser(
        "serve", parents=[common], help="run the listening test web app",
        description="Serve a study to participants (Flask app on the waitress server). Responses go to SQLite "
        "(STUDY/responses.sqlite). Prints the participant address and the admin page's address with its token.")
    p.add_argument("study", metavar="STUDY", help="the study folder made by 'vocalsep listen prepare'")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=port, default=8000, help="port (default: 8000)")
    p.add_argument("--db", default=None, metavar="FILE", help="response database (default: STUDY/responses.sqlite)")
    p.add_argument("--admin-token", default=None, metavar="TOKEN",
                   help="token of the admin page (default: one made on first start and kept in the database)")
    p.add_argument("--threads", type=count, default=8, metavar="N", help="worker threads (default: 8)")
    p.set_defaults(func=cmd_listen_serve)

    p = steps.add_parser(
        "report", parents=[common], help="statistics, paired tests, a Figure-5-like chart and the raw responses",
        description="Per system and question: n, mean, SD and 95 % confidence interval over the participants who passed "
        "every control; Wilcoxon signed-rank tests between systems; ratings.png; responses.csv with every rating.")
    p.add_argument("study", metavar="STUDY", help="the study folder")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--db", default=None, metavar="FILE", help="response database (default: STUDY/responses.sqlite)")
    p.add_argument("--include-incomplete", action="store_true",
                   help="also count participants who stopped early without failing a control (default: only those who finished)")
    p.add_argument("--error-bars", choices=["sd", "ci"], default="sd",
                   help="error bars of the chart: sd = SD of the ratings, as in the paper's Figure 5 (default); ci = 95 %% CI")
    p.set_defaults(func=cmd_listen_report)
    return listen


def _need(step: str, *modules: str) -> None:
    """One clear line instead of a traceback when the ``listen`` extra is not installed."""
    from .._webapp import missing_modules

    missing = missing_modules(*modules)
    if missing:
        from ..errors import ConfigError

        raise ConfigError(f"'vocalsep listen {step}' needs {', '.join(missing)}: pip install 'vocalsep[listen]'")


def cmd_listen_prepare(args) -> int:
    import os

    _need("prepare", "pyloudnorm", "scipy")
    from .prepare import PrepareConfig, prepare

    cfg = PrepareConfig(
        systems=tuple(args.systems), mixtures=args.mixtures, out=args.out, clips=args.clips, duration=args.duration,
        vocals=args.vocals, seed=args.seed, min_voiced=args.min_voiced, loudness=args.loudness, fmt=args.fmt,
        mono=args.mono, controls=args.controls, title=args.title, force=args.force,
        progress=not args.quiet and sys.stderr.isatty() or os.environ.get("VOCALSEP_PROGRESS") == "1",
        command=_prepare_command(args),
    )
    summary = prepare(cfg)
    for problem in summary["failed"]:
        print(f"vocalsep: error: {problem}", file=sys.stderr)
    if not args.quiet:
        for s in summary["skipped"]:
            print(f"vocalsep: skipped: {s}", file=sys.stderr)
        print(f"vocalsep: {summary['excerpts']} excerpts, {summary['controls']} control questions, {summary['clips']} clips "
              f"at {summary['loudness']:.1f} LUFS -> {summary['study']} (review and edit it before serving)", file=sys.stderr)
    return EXIT_FAILED if summary["failed"] else EXIT_OK


def _prepare_command(args) -> str:
    """The command line that reproduces this study, spelled out in full."""
    parts = ["vocalsep", "listen", "prepare"]
    for name, folder in args.systems:
        parts += ["--system", f"{name}={folder}"]
    parts += ["--mixtures", args.mixtures]
    if args.vocals:
        parts += ["--vocals", args.vocals]
    parts += ["--clips", str(args.clips), "--duration", f"{args.duration:g}", "--seed", str(args.seed),
              "--min-voiced", f"{args.min_voiced:g}", "--loudness", f"{args.loudness:g}", "--format", args.fmt]
    if args.controls is not None:
        parts += ["--controls", str(args.controls)]
    if args.mono:
        parts.append("--mono")
    if args.title:
        parts += ["--title", args.title]
    return shlex.join(parts + ["-o", args.out])


def cmd_listen_serve(args) -> int:
    _need("serve", "flask", "waitress")
    from .server import serve

    serve(args.study, host=args.host, port=args.port, db=args.db, admin_token=args.admin_token, threads=args.threads,
          announce=lambda line: print(line, file=sys.stderr, flush=True))
    return EXIT_OK


def cmd_listen_report(args) -> int:
    _need("report", "scipy", "matplotlib")
    from .report import make_report

    summary = make_report(args.study, args.out, db=args.db, include_incomplete=args.include_incomplete, error_bars=args.error_bars)
    c = summary["participants"]
    if not args.quiet:
        from pathlib import Path

        print(Path(summary["files"]["summary.md"]).read_text(encoding="utf-8"))
        print(f"vocalsep: {c['included']} participants counted ({c['started']} started, {c['disqualified']} disqualified, "
              f"{c['incomplete']} incomplete) -> {args.out}", file=sys.stderr)
    if c["included"] == 0:
        print("vocalsep: error: no participant counts yet (none finished without failing a control)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
