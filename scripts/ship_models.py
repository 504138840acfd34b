#!/usr/bin/env python
"""Install trained checkpoints as a registered model inside the package.

    python scripts/ship_models.py runs/mir1k-vocals/best.safetensors runs/mir1k-accompaniment/best.safetensors --name default

Each checkpoint is stored in fp16 only when that changes the separation of
held-out MIR-1K clips by less than ``--max-db`` dB SDR (mean absolute change
per clip and target), else in fp32.  The comparison runs the real separator
on both versions and scores them with BSS Eval v3 against the true stems.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from vocalsep import Separator
from vocalsep.audio import load
from vocalsep.checkpoint import load_checkpoint, save_checkpoint
from vocalsep.evaluation.metrics import nsdr_scores
from vocalsep.models import MODELS_DIR

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--name", default="default")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("VOCALSEP_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--clips", default="abjones_1_01,abjones_2_05,abjones_5_03,tammy_1_03,tammy_1_07", help="held-out clips for the fp16 check")
    ap.add_argument("--max-db", type=float, default=0.05)
    args = ap.parse_args()
    cks = [load_checkpoint(p) for p in args.checkpoints]
    with tempfile.TemporaryDirectory() as tmp:
        half_paths = []
        for ck, p in zip(cks, args.checkpoints):
            hp = Path(tmp) / f"{ck.target}.safetensors"
            save_checkpoint(hp, ck.model, target=ck.target, preset=ck.preset, training=ck.training, dtype=torch.float16)
            half_paths.append(hp)
        full = Separator.from_pretrained(list(args.checkpoints))
        half = Separator.from_pretrained(half_paths)
        diffs = []
        for clip in args.clips.split(","):
            x, sr = load(args.data / "mir1k" / "audio" / f"{clip}.flac")
            acc, voc = x[:1], x[1:2]
            mix = acc + voc
            refs = {"vocals": voc[0], "accompaniment": acc[0]}
            a = nsdr_scores(mix[0], refs, {k: v.numpy()[0] for k, v in full.separate(mix, sr).items()})
            b = nsdr_scores(mix[0], refs, {k: v.numpy()[0] for k, v in half.separate(mix, sr).items()})
            for t in a:
                diffs.append(abs(a[t]["sdr"] - b[t]["sdr"]))
                print(f"{clip} {t:14s} SDR fp32 {a[t]['sdr']:6.2f}  fp16 {b[t]['sdr']:6.2f}")
        worst = float(np.max(diffs))
        use_half = worst < args.max_db
        print(f"largest SDR change with fp16 weights: {worst:.4f} dB -> storing {'fp16' if use_half else 'fp32'}")
        dest = MODELS_DIR / args.name
        dest.mkdir(parents=True, exist_ok=True)
        for ck in cks:
            facts = dict(ck.training, shipped_dtype="float16" if use_half else "float32", fp16_max_sdr_change_db=round(worst, 4))
            out = save_checkpoint(dest / f"{ck.target}.safetensors", ck.model, target=ck.target, preset=ck.preset, training=facts,
                                  dtype=torch.float16 if use_half else None)
            print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    sys.exit(main())
