#!/usr/bin/env python
"""Paired per-clip differences between systems scored by ``vocalsep evaluate`` (a measurement aid).

    python scripts/probes/paired.py results/round7/scores.csv --base unet
    python scripts/probes/paired.py results/pad-zero/scores.csv:unet results/pad-wrap/scores.csv:unet

With one ``scores.csv`` and ``--base NAME``, every other system of that file is
compared with NAME; with ``FILE:SYSTEM`` arguments, each is compared with the
first.  For each target it prints the mean NSDR of both, the mean paired
difference over the tracks both scored, its standard error and how many
tracks got better.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict


def read(path: str) -> dict[str, dict[tuple[str, str], float]]:
    """``{system: {(track, target): nsdr}}`` of the scored rows of a ``scores.csv``."""
    out: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["status"] == "scored" and row["nsdr"]:
                out[row["system"]][(row["track"], row["target"])] = float(row["nsdr"])
    return out


def compare(name: str, base: dict, other: dict) -> list[str]:
    lines = []
    for target in sorted({t for _, t in base}, reverse=True):
        keys = sorted(k for k in base if k[1] == target and k in other)
        if not keys:
            continue
        d = [other[k] - base[k] for k in keys]
        n = len(d)
        mean = sum(d) / n
        se = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n) if n > 1 else float("nan")
        b = sum(base[k] for k in keys) / n
        o = sum(other[k] for k in keys) / n
        lines.append(f"{name:>24} {target:>14} {b:8.3f} {o:8.3f} {mean:+8.3f} ({se:.3f}) {sum(x > 0 for x in d):4d}/{n}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="scores.csv (with --base) or FILE:SYSTEM ...")
    ap.add_argument("--base", default=None, help="the system the others are compared with (one scores.csv)")
    args = ap.parse_args()
    print(f"{'system':>24} {'target':>14} {'base':>8} {'system':>8} {'paired diff (SE)':>17} better")
    if args.base:
        if len(args.inputs) != 1:
            ap.error("--base takes one scores.csv")
        systems = read(args.inputs[0])
        if args.base not in systems:
            ap.error(f"no system {args.base!r} in {args.inputs[0]} (it has {', '.join(sorted(systems))})")
        for name in systems:
            if name not in (args.base, "mixture"):
                print("\n".join(compare(name, systems[args.base], systems[name])))
        return 0
    pairs = []
    for spec in args.inputs:
        path, _, system = spec.rpartition(":")
        if not path:
            ap.error(f"{spec!r}: expected FILE:SYSTEM")
        scores = read(path)
        if system not in scores:
            ap.error(f"no system {system!r} in {path}")
        pairs.append((spec, scores[system]))
    for spec, scores in pairs[1:]:
        print("\n".join(compare(spec[-24:], pairs[0][1], scores)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
