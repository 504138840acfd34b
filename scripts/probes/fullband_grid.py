#!/usr/bin/env python
"""The ``interpolate`` full-band rule's STFT grid, measured with trained models (a probe, not a test).

The masks of the 8192 Hz models are interpolated onto an STFT of the input
at its own rate (``SeparationOptions.fullband_n_fft`` / ``fullband_hop``,
default 2048/1024; Python only).  This scores a model system and the ideal
mask through ``vocalsep.evaluation.evaluate`` for several grids on the same
clips, and prints mean NSDR plus the paired difference against the default
grid (mean, standard error, clips better).

Usage (the figures in docs/training.md, "The interpolation grid")::

    python scripts/probes/fullband_grid.py --data ../shared/data/mir1k --singers abjones,tammy \\
        --system unet=default --out results/fullband-grid
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import statistics
from pathlib import Path

import vocalsep.separator as S
from vocalsep.evaluation.run import evaluate

GRIDS = [(2048, 1024), (2048, 512), (3072, 1024), (4096, 1024), (4096, 2048), (1024, 512)]


def _scores(path: Path, system: str) -> dict[tuple[str, str], float]:
    return {(r["target"], r["track"]): float(r["nsdr"]) for r in csv.DictReader(open(path)) if r["system"] == system}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--dataset", default="mir1k")
    ap.add_argument("--singers", default="abjones,tammy")
    ap.add_argument("--system", default="unet=default")
    ap.add_argument("--out", type=Path, default=Path("results/fullband-grid"))
    args = ap.parse_args()
    name = args.system.split("=", 1)[0]
    original = S.SeparationOptions
    frozen = original.__dataclass_params__.frozen
    try:
        for n_fft, hop in GRIDS:  # the evaluation builds its options from this class: give it other defaults
            S.SeparationOptions = dataclasses.make_dataclass(
                "SeparationOptions", [("fullband_n_fft", int, dataclasses.field(default=n_fft)),
                                      ("fullband_hop", int, dataclasses.field(default=hop))], bases=(original,), frozen=frozen)
            evaluate(data=args.data, dataset=args.dataset, systems=(args.system, "oracle"), groups=tuple(args.singers.split(",")),
                     out=str(args.out / f"{n_fft}-{hop}"), jobs=1)
    finally:
        S.SeparationOptions = original
    base = {s: _scores(args.out / "{}-{}".format(*GRIDS[0]) / "scores.csv", s) for s in (name, "oracle")}
    print(f"{'grid':>10} {'target':>14} {name + ' NSDR':>12} {'ideal mask':>11} {'paired diff (SE)':>18} {'clips better':>13}")
    for n_fft, hop in GRIDS:
        got = {s: _scores(args.out / f"{n_fft}-{hop}" / "scores.csv", s) for s in (name, "oracle")}
        for target in ("vocals", "accompaniment"):
            keys = [k for k in base[name] if k[0] == target]
            diffs = [got[name][k] - base[name][k] for k in keys]
            mean = statistics.mean(got[name][k] for k in keys)
            ideal = statistics.mean(got["oracle"][k] for k in keys)
            se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
            print(f"{n_fft}/{hop:<5} {target:>14} {mean:12.2f} {ideal:11.2f} {statistics.mean(diffs):+10.3f} ({se:.3f}) "
                  f"{sum(d > 0 for d in diffs):>7}/{len(diffs)}")


if __name__ == "__main__":
    main()
