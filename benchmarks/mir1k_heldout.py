#!/usr/bin/env python
"""Quality on held-out MIR-1K singers (not a test): NSDR, SIR, SAR per clip.

Scores each clip of the chosen singers (the paper evaluates clips; the mixture
is the mono sum of the accompaniment and voice channels, at the clip's 16 kHz)
with BSS Eval v3 sources (``mir_eval.separation.bss_eval_sources``, whole
clip, no permutation) for:

- each ``--model`` (a model folder/file or registered name) through the real
  :class:`~vocalsep.Separator`, once per ``--fullband`` rule;
- ``oracle``: the ideal ratio mask ``clip(|Y| / |X|, 0, 1)`` at the preset's
  resolution (8192 Hz, STFT 1024/768, 512 bins), through the same full-band
  rule: the ceiling of the method.

Only clips whose vocal-nonvocal (or pitch) labels mark some voice count.
Prints mean and median per system and target and writes per-clip JSON.
``vocalsep evaluate`` does the same with tables, figures and resumable
per-track files (docs/evaluation.md); this script stays for quick comparisons
of full-band rules.

    python benchmarks/mir1k_heldout.py --model src/vocalsep/models/default --singers abjones,tammy
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vocalsep import SeparationOptions, Separator
from vocalsep.audio import load
from vocalsep.config import get_preset
from vocalsep.evaluation.metrics import nsdr_scores
from vocalsep.evaluation.systems import ratio_masks
from vocalsep.separator import SpectralFrontEnd

ROOT = Path(__file__).resolve().parent.parent


def default_data() -> Path:
    env = os.environ.get("VOCALSEP_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def clips(data: Path, singers: list[str], limit: int | None) -> list[Path]:
    audio = data / "mir1k" / "audio"
    if not audio.is_dir():
        sys.exit(f"no MIR-1K audio at {audio}: set --data or VOCALSEP_DATA")
    found = []
    for f in sorted(audio.glob("*.flac")):
        if f.stem.split("_")[0] not in singers:
            continue
        label = data / "mir1k" / "vocal-nonvocal" / f"{f.stem}.vocal"
        if label.is_file() and not np.any(np.loadtxt(label, ndmin=1) > 0):
            continue  # no voice in this clip: BSS Eval of the voice is undefined
        found.append(f)
    return found[:limit] if limit else found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="model folder/file/name (repeatable)")
    ap.add_argument("--name", action="append", default=[], help="display name per --model")
    ap.add_argument("--singers", default="abjones,tammy")
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--fullband", default="bandlimited", help="comma-separated rules to compare")
    ap.add_argument("--limit", type=int, default=None, help="at most this many clips")
    ap.add_argument("--no-oracle", action="store_true")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "out" / "mir1k_heldout.json")
    args = ap.parse_args()
    files = clips(args.data, args.singers.split(","), args.limit)
    if not files:
        sys.exit("no clips with voice for these singers")
    rules = args.fullband.split(",")
    systems: dict[str, Separator | None] = {}
    for i, m in enumerate(args.model):
        base = Separator.from_pretrained(m)
        name = args.name[i] if i < len(args.name) else base.name
        for rule in rules:
            label = f"{name} [{rule}]" if len(rules) > 1 else name
            systems[label] = base.with_options(fullband=rule)
    if not args.no_oracle:
        for rule in rules:
            systems[f"oracle [{rule}]" if len(rules) > 1 else "oracle"] = None
    preset = get_preset("jansson2017")
    results: dict[str, list[dict]] = {k: [] for k in systems}
    t0 = time.perf_counter()
    for f in files:
        x, sr = load(f)
        acc, voc = x[:1], x[1:2]
        mix = acc + voc
        refs = {"vocals": voc[0], "accompaniment": acc[0]}
        for name, sep in systems.items():
            if sep is None:
                rule = name[len("oracle [") : -1] if "[" in name else rules[0]
                front = SpectralFrontEnd(preset, SeparationOptions(fullband=rule), torch.device("cpu"))
                low, spec = front.analyse(mix, sr)
                est = front.synthesise(mix, sr, low, spec, ratio_masks(front, spec, {"vocals": voc, "accompaniment": acc}, sr))
            else:
                est = {k: v.numpy() for k, v in sep.separate(mix, sr).items()}
            scores = nsdr_scores(mix[0], refs, {k: v[0] for k, v in est.items()})
            results[name].append({"clip": f.stem, "seconds": mix.shape[1] / sr, **{f"{t}_{m}": v for t, d in scores.items() for m, v in d.items()}})
    elapsed = time.perf_counter() - t0
    print(f"{len(files)} clips of {args.singers} ({sum(r['seconds'] for r in next(iter(results.values()))):.0f} s), {elapsed:.0f} s")
    print(f"{'system':34s} {'target':14s} {'NSDR mean':>9s} {'median':>7s} {'SDR':>6s} {'SIR':>6s} {'SAR':>6s} {'GNSDR':>6s}")
    summary = {}
    for name, rows in results.items():
        for t in ("vocals", "accompaniment"):
            col = lambda m: [r[f"{t}_{m}"] for r in rows]  # noqa: E731
            w = np.array([r["seconds"] for r in rows])
            s = {
                "nsdr_mean": statistics.fmean(col("nsdr")), "nsdr_median": statistics.median(col("nsdr")),
                "sdr_mean": statistics.fmean(col("sdr")), "sir_mean": statistics.fmean(col("sir")), "sar_mean": statistics.fmean(col("sar")),
                "sir_median": statistics.median(col("sir")), "sar_median": statistics.median(col("sar")),
                "gnsdr": float(np.sum(np.array(col("nsdr")) * w) / w.sum()), "clips": len(rows),
            }
            summary[f"{name}|{t}"] = s
            print(f"{name:34s} {t:14s} {s['nsdr_mean']:9.2f} {s['nsdr_median']:7.2f} {s['sdr_mean']:6.2f} {s['sir_mean']:6.2f} {s['sar_mean']:6.2f} {s['gnsdr']:6.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"singers": args.singers, "clips": [f.stem for f in files], "summary": summary, "per_clip": results,
                                     "metric": "BSS Eval v3 sources (mir_eval.separation.bss_eval_sources), mono, whole clip; NSDR = SDR(est) - SDR(mixture)"}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
