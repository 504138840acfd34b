"""``vocalsep evaluate``: score separation systems against references (BSS Eval, NSDR, the paper's tables and figures)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .._argtypes import count, names, positive_seconds, rate
from .._cli_base import EXIT_FAILED, EXIT_OK, UsageError, need_extra
from ._common import add_separation_options, command_line, separation_options


def add_evaluate_parser(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("evaluate", parents=[common], help="score systems against references: BSS Eval, NSDR, the paper's tables and figures",
                       description="Score separation systems on a dataset with references: SDR, SIR, SAR (and ISR), NSDR per track, "
                       "the paper's tables, box plots and mask images. A rerun with the same --out skips finished tracks.")
    p.add_argument("--data", required=True, metavar="PATH", help="dataset folder or .stem.mp4 file with references")
    p.add_argument("--dataset", choices=["mir1k", "stems", "musdb"], default=None, help="dataset layout (default: guessed from PATH)")
    p.add_argument("--system", dest="systems", action="append", required=True, metavar="SPEC",
                   help="NAME=MODEL (name, .safetensors file or folder), NAME=ESTIMATES_DIR (TRACK/{vocals,accompaniment}.wav), "
                   "'mixture' or 'oracle'; repeat for each system")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: tracks/, scores.csv, summary.md, summary.json, figures/")
    p.add_argument("--metric", choices=["v3", "museval"], default="v3",
                   help="v3: BSS Eval v3 sources on the mono mixture, whole track, means (the paper's; default); "
                   "museval: BSS Eval v4 images, 1 s windows, medians (SiSEC's)")
    p.add_argument("--singers", type=names, default=(), metavar="A,B", help="only these groups: MIR-1K singers (for other layouts the group is the track)")
    p.add_argument("--tracks", type=names, default=(), metavar="A,B", help="only these tracks (MIR-1K: clip names such as abjones_1_01)")
    p.add_argument("--limit", type=count, default=None, metavar="N", help="at most N tracks (after the filters)")
    p.add_argument("--rate", type=rate, default=None, metavar="HZ", help="rate the references and estimates are compared at (default: 16000 for MIR-1K, else 44100)")
    p.add_argument("--preset", default="jansson2017", help="preset of the oracle's ideal masks and of the mask images, a registered one such as jansson2017, jansson2017-hop384 or spleeter-ratio (default: jansson2017)")
    add_separation_options(p, systems=True)
    p.add_argument("-j", "--jobs", type=count, default=None, metavar="N", help="tracks scored in parallel processes (default: all cores)")
    p.add_argument("--mask-systems", type=names, default=(), metavar="A,B", help="the systems whose masks the mask image shows (default: the first two that are not 'mixture')")
    p.add_argument("--figure-track", default=None, metavar="TRACK", help="the track of the mask image (default: the first scored one)")
    p.add_argument("--excerpt", type=positive_seconds, default=10.0, metavar="S", help="seconds of the mask image (default: 10)")
    p.add_argument("--report", default=None, metavar="FILE.md", help="also write a report with the tables and figures (copied into a folder beside it), e.g. docs/results.md")
    p.add_argument("-f", "--force", action="store_true", help="score everything again, ignoring finished tracks in --out")
    p.set_defaults(func=cmd_evaluate, parser=p)


def cmd_evaluate(args) -> int:
    need_extra("evaluate", "eval")
    from ..errors import ModelError
    from ..evaluation.report import tables_markdown
    from ..evaluation.run import EvalConfig, evaluate

    show = not args.quiet and sys.stderr.isatty() or os.environ.get("VOCALSEP_PROGRESS") == "1"
    cfg = EvalConfig(
        data=args.data, systems=tuple(args.systems), out=args.out, dataset=args.dataset, metric=args.metric,
        groups=args.singers, tracks=args.tracks, limit=args.limit, rate=args.rate, preset=args.preset,
        separation=separation_options(args), jobs=args.jobs, device=args.device, force=args.force, progress=show,
        report=args.report, mask_systems=args.mask_systems, figure_track=args.figure_track, excerpt=args.excerpt,
        command=command_line(args, "evaluate", skip=("jobs", "device", "force", "quiet", "verbose")),
    )
    try:
        summary = evaluate(cfg)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    if not args.quiet:
        print(tables_markdown(summary))
        t, tr = summary["timing"], summary["tracks"]
        print(f"vocalsep: {tr['scored']} tracks scored, {len(tr['excluded'])} excluded, {len(summary['failures'])} failed system runs "
              f"in {t['wall']:.1f} s (separation {t['separation']:.1f} s, scoring {t['scoring']:.1f} s, writing {t['writing']:.1f} s, "
              f"figures {t['figures']:.1f} s) -> {Path(args.out) / 'summary.md'}", file=sys.stderr)
    return EXIT_FAILED if summary["failures"] else EXIT_OK
