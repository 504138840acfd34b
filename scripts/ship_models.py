#!/usr/bin/env python
"""Install trained checkpoints as a registered model.

    python scripts/ship_models.py runs/a-vocals/best.safetensors runs/a-accompaniment/best.safetensors \
        --name default --preset spleeter-ratio --musdb ../data/musdb/train --tracks "A,B,..."

Each checkpoint is stored in fp16 only when that changes the separation by
less than ``--max-db`` dB SDR (the mean absolute change over the items, for
each target; the largest single change is reported too), else in fp32.  The comparison runs the real separator on both versions and
scores them against the true stems: held-out MIR-1K clips (BSS Eval v3 SDR,
mono, as the paper) and, with ``--musdb``, MUSDB18 tracks (global SDR over
both channels).  ``--preset`` stores the model with another registered preset
of the same network and STFT (different separation rules); ``--dest`` writes
elsewhere than this package's model folder (e.g. the extra models' package).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from vocalsep import Separator
from vocalsep.audio import load
from vocalsep.checkpoint import load_checkpoint, save_checkpoint
from vocalsep.config import get_preset
from vocalsep.data.datasets import MUSDB
from vocalsep.evaluation.metrics import nsdr_scores
from vocalsep.models import MODELS_DIR

ROOT = Path(__file__).resolve().parent.parent


def global_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum((ref - est) ** 2), 1e-20)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--name", default="default")
    ap.add_argument("--dest", type=Path, default=MODELS_DIR, help="folder of model folders (default: this package's)")
    ap.add_argument("--preset", default=None, help="store with this registered preset (same network and STFT)")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("VOCALSEP_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--clips", default="abjones_1_01,abjones_2_05,abjones_5_03,tammy_1_03,tammy_1_07", help="held-out clips for the fp16 check")
    ap.add_argument("--musdb", type=Path, default=None, help="a MUSDB18 folder of .stem.mp4 files for the fp16 check")
    ap.add_argument("--tracks", default="", help="with --musdb: the tracks to check (comma-separated)")
    ap.add_argument("--max-db", type=float, default=0.05)
    args = ap.parse_args()
    cks = [load_checkpoint(p) for p in args.checkpoints]
    if args.preset:
        new = get_preset(args.preset)
        for ck in cks:
            old = ck.preset
            same = dataclasses.replace(new, name=old.name, combine=old.combine, combine_on=old.combine_on,
                                       fullband=old.fullband, high_band=old.high_band, precision=old.precision,
                                       segment_frames=old.segment_frames, unet=dataclasses.replace(new.unet, dropout=old.unet.dropout))
            if same != old:
                sys.exit(f"{ck.path}: preset {args.preset} has another network or STFT than the one trained ({old.name})")
            ck.preset = dataclasses.replace(new, unet=dataclasses.replace(new.unet, dropout=old.unet.dropout))
    with tempfile.TemporaryDirectory() as tmp:
        full_paths, half_paths = [], []
        for ck in cks:
            for dtype, paths, tag in ((None, full_paths, "full"), (torch.float16, half_paths, "half")):
                p = Path(tmp) / tag / f"{ck.target}.safetensors"
                save_checkpoint(p, ck.model, target=ck.target, preset=ck.preset, training=ck.training, dtype=dtype)
                paths.append(p)
        full = Separator.from_pretrained(full_paths)
        half = Separator.from_pretrained(half_paths)
        diffs: dict[str, list[float]] = {"vocals": [], "accompaniment": []}
        for clip in [c for c in args.clips.split(",") if c]:
            x, sr = load(args.data / "mir1k" / "audio" / f"{clip}.flac")
            acc, voc = x[:1], x[1:2]
            mix = acc + voc
            refs = {"vocals": voc[0], "accompaniment": acc[0]}
            a = nsdr_scores(mix[0], refs, {k: v.numpy()[0] for k, v in full.separate(mix, sr).items()})
            b = nsdr_scores(mix[0], refs, {k: v.numpy()[0] for k, v in half.separate(mix, sr).items()})
            for t in a:
                diffs[t].append(abs(a[t]["sdr"] - b[t]["sdr"]))
                print(f"{clip} {t:14s} SDR fp32 {a[t]['sdr']:6.2f}  fp16 {b[t]['sdr']:6.2f}")
        if args.musdb:
            wanted = {t for t in args.tracks.split(",") if t}
            for track in MUSDB(args.musdb).tracks:
                if wanted and track.name not in wanted:
                    continue
                d = track.load(44100)
                fa, fb = full.separate(d["mixture"], 44100), half.separate(d["mixture"], 44100)
                for t in ("vocals", "accompaniment"):
                    sa, sb = global_sdr(d[t], fa[t].numpy()), global_sdr(d[t], fb[t].numpy())
                    diffs[t].append(abs(sa - sb))
                    print(f"{track.name} {t:14s} SDR fp32 {sa:6.2f}  fp16 {sb:6.2f}")
        mean = {t: float(np.mean(v)) for t, v in diffs.items()}
        worst = float(max(max(v) for v in diffs.values()))
        use_half = max(mean.values()) < args.max_db
        print(f"SDR change with fp16 weights: mean {mean['vocals']:.4f} / {mean['accompaniment']:.4f} dB (vocals / accompaniment), "
              f"largest {worst:.4f} dB, over {len(diffs['vocals'])} items -> storing {'fp16' if use_half else 'fp32'}")
        dest = args.dest / args.name
        dest.mkdir(parents=True, exist_ok=True)
        for ck in cks:
            facts = dict(ck.training, shipped_dtype="float16" if use_half else "float32",
                         fp16_mean_sdr_change_db=round(mean[ck.target], 4), fp16_max_sdr_change_db=round(worst, 4))
            out = save_checkpoint(dest / f"{ck.target}.safetensors", ck.model, target=ck.target, preset=ck.preset, training=facts,
                                  dtype=torch.float16 if use_half else None)
            print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    sys.exit(main())
