"""``vocalsep mine``: (original, instrumental) training pairs found in a catalogue."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .._argtypes import count, names, nonneg_seconds, positive_seconds, score100
from .._cli_base import EXIT_FAILED, EXIT_OK, UsageError, need_extra


def add_mine_parser(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("mine", parents=[common], help="find (original, instrumental) training pairs in a catalogue",
                       description="Find (original, instrumental) pairs of the same recording in a catalogue, as in the paper: candidates by "
                       "metadata (artist, fuzzy title with an instrumental marker, duration), exact duplicates pruned by a decoded-content "
                       "hash, then each pair aligned (offset to the sample, gain) and verified from the audio. Writes OUT/pairs.csv "
                       "(for 'vocalsep train --dataset pairs'), OUT/report.md and OUT/report.json. A rerun with the same --out reuses "
                       "finished results.")
    p.add_argument("catalog", metavar="CATALOG", help="a CSV or JSON lines file (artist, title, path, optional duration, album, isrc), or a folder of tagged audio files")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: pairs.csv, report.md, report.json, .work/ (stored results)")
    p.add_argument("--duration-tolerance", type=nonneg_seconds, default=2.0, metavar="S", help="largest duration difference of a pair (default: 2 s)")
    p.add_argument("--title-threshold", type=score100, default=90.0, metavar="N", help="smallest fuzzy title similarity, 0-100 (default: 90)")
    p.add_argument("--marker", action="append", default=[], metavar="TEXT", help="another instrumental marker, e.g. 'backing version'; in parentheses, '(MR)', only a whole qualifier; repeatable")
    p.add_argument("--only-markers", action="store_true", help="use only the --marker phrases, not the built-in ones")
    p.add_argument("--allow", type=names, default=(), metavar="TAGS",
                   help="look-alike tags that do not prevent a pair: live, remix, acoustic, acappella, edit, demo, remaster")
    p.add_argument("--max-offset", type=positive_seconds, default=10.0, metavar="S", help="largest offset searched between the two files (default: 10 s)")
    p.add_argument("--max-residual-db", type=float, default=-15.0, metavar="DB",
                   help="highest residual (original - gain x instrumental) outside vocal regions, relative to the original, in dB (default: %(default)s)")
    p.add_argument("--min-vocal-activity", type=float, default=0.03, metavar="X", help="smallest share of frames with voice (default: 0.03)")
    p.add_argument("--min-confidence", type=float, default=0.5, metavar="X", help="pairs below this confidence are rejected (default: 0.5)")
    p.add_argument("-j", "--jobs", type=count, default=None, metavar="N", help="worker processes (default: all cores)")
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="run the audio work on a Ray cluster: 'auto', 'local' or ray://HOST:PORT (needs vocalsep[ray])")
    p.add_argument("-f", "--force", action="store_true", help="recompute everything, ignoring stored results in --out")
    p.set_defaults(func=cmd_mine)


def cmd_mine(args) -> int:
    need_extra("mine", "mine")
    from ..errors import ConfigError
    from ..mining import AlignConfig, MatchConfig, MineConfig, mine
    from ..mining.match import parse_markers
    from ..mining.run import print_summary

    if not Path(args.catalog).exists():
        raise UsageError(f"{args.catalog}: no such catalogue (a CSV or JSON lines file, or a folder of audio files)")
    if args.only_markers and not args.marker:
        raise UsageError("--only-markers needs at least one --marker")
    try:
        cfg = MineConfig(
            catalog=args.catalog, out=args.out,
            match=MatchConfig(markers=parse_markers(args.marker, args.only_markers), allow=frozenset(args.allow),
                              duration_tolerance=args.duration_tolerance, title_threshold=args.title_threshold),
            align=AlignConfig(max_offset=args.max_offset, max_residual_db=args.max_residual_db,
                              min_vocal_activity=args.min_vocal_activity, min_confidence=args.min_confidence),
            jobs=args.jobs, ray=args.ray, force=args.force,
            progress=not args.quiet and sys.stderr.isatty() or os.environ.get("VOCALSEP_PROGRESS") == "1",
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    report = mine(cfg)
    for problem in report["problems"]:
        print(f"vocalsep: error: {problem}", file=sys.stderr)
    for r in report["rejected"]:
        if r["failed"] and r["stage"] == "audio":
            print(f"vocalsep: error: {r['reason']}", file=sys.stderr)
    if not args.quiet:
        print_summary(report)
    return EXIT_FAILED if report["failed"] else EXIT_OK
