#!/usr/bin/env python
"""The price of weak labels (issue 5): a vocal U-Net trained on mined pairs against one trained on the true stems.

Takes the folder written by ``benchmarks/mine_synthetic.py --out DIR``
(``DIR/catalogue/truth.json``, ``DIR/mined/pairs.csv``) and:

1. writes the true stems of exactly the songs that have a mined pair, as the
   ``stems`` layout (``STEMS/SONG/{vocals,accompaniment}.flac``, 16 kHz mono,
   24-bit): the same cut and the same scale as the catalogue's original, so
   the mixtures the two runs see are the same audio up to FLAC rounding;
2. holds out the same songs in both runs: the pair run's seeded split by
   group (``--valid-fraction``, the normalised artist = the singer) is
   computed here and given to the stems run as ``--valid-groups`` (its groups
   are the song folders);
3. trains the two vocal U-Nets, one after the other, with one recipe (the
   stems run without remixing by default, since a pair cannot be remixed;
   ``--stems-remix 0.5`` adds a third run with the shipped remixing);
4. scores both ``last.safetensors`` on the held-out MIR-1K singers with
   ``vocalsep evaluate`` (BSS Eval v3 per clip) and writes a summary JSON.

    python benchmarks/mine_synthetic.py --songs 0 --exclude-singers abjones,tammy --seconds 1000 --jobs 1 --forms basic \\
        --out /work/exp/mine-all --json benchmarks/results/mine_synthetic_all.json
    OMP_NUM_THREADS=1 python benchmarks/weak_labels.py /work/exp/mine-all --work /work/exp --stems-remix 0.5 \\
        --json benchmarks/results/weak_labels.json

Also evaluates the three models on the pair run's held-out catalogue songs
(true stems as references), and reports per-clip paired differences.

A finished step is skipped on a rerun (stems written, a run with
``summary.json``, an evaluation with ``summary.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RATE = 16000


def mined_songs(mined_dir: Path) -> tuple[list[dict], dict]:
    """The mined pairs, each with the song its original belongs to (from the catalogue's truth)."""
    truth = json.loads((mined_dir / "catalogue" / "truth.json").read_text(encoding="utf-8"))
    by_path = {(mined_dir / "catalogue" / e["path"]).resolve(): e for e in truth["entries"]}
    pairs_csv = mined_dir / "mined" / "pairs.csv"
    rows = []
    with open(pairs_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            e = by_path[(pairs_csv.parent / row["original"]).resolve()]
            rows.append({**row, "song": e["song"]})
    return rows, truth


def write_true_stems(rows: list[dict], truth: dict, data: Path, seconds: float, out: Path) -> list[str]:
    """``out/SONG/{vocals,accompaniment}.flac`` for each mined song, cut and scaled as in the catalogue."""
    from vocalsep.audio import load, save
    from vocalsep.data import MIR1K

    songs = sorted({r["song"] for r in rows})
    if len(songs) != len(rows):
        raise SystemExit(f"{len(rows)} mined pairs but {len(songs)} songs: a song with two pairs")
    tracks = {t.name: t for t in MIR1K(data).tracks}
    for name in songs:
        d = out / name
        if (d / "vocals.flac").is_file() and (d / "accompaniment.flac").is_file():
            continue
        x = tracks[name].load(RATE)
        n = int(seconds * RATE)
        info = truth["pairs"][name]
        scale = info["accompaniment_scale"]
        voice, acc = x["vocals"][:, :n] * scale, x["accompaniment"][:, :n] * scale
        ref, _ = load(info["voice"])  # the catalogue's own voice (float WAV): same cut and scale?
        if ref.shape != voice.shape or np.abs(ref - voice).max() > 1e-6:
            raise SystemExit(f"{name}: the rebuilt voice differs from the catalogue's ({ref.shape} vs {voice.shape}); wrong --seconds?")
        d.mkdir(parents=True, exist_ok=True)
        save(d / "vocals.flac", voice, RATE, bit_depth="24")
        save(d / "accompaniment.flac", acc, RATE, bit_depth="24")
    return songs


def pair_split(pairs_csv: Path, rows: list[dict], fraction: float, seed: int) -> list[str]:
    """The songs the pair run holds out (the trainer's own seeded split by group)."""
    from vocalsep.data import PairManifest
    from vocalsep.data.datasets import split_tracks

    tracks = PairManifest(pairs_csv).tracks
    _, valid = split_tracks(tracks, None, fraction, seed)
    held = {t.name for t in valid}
    return sorted(r["song"] for i, r in enumerate(rows) if tracks[i].name in held)


def paired(scores_csv: Path, runs) -> dict:
    """Per-clip vocal NSDR of each run minus the pair run's: mean, sd, paired t, clips better."""
    per: dict[str, dict[str, float]] = {}
    with open(scores_csv, newline="") as f:
        for r in csv.DictReader(f):
            if r["target"] == "vocals" and r["status"] == "scored":
                per.setdefault(r["system"], {})[r["track"]] = float(r["nsdr"])
    out = {}
    for n in runs:
        if n == "pairs":
            continue
        d = [per[n][t] - per["pairs"][t] for t in sorted(per["pairs"]) if t in per[n]]
        sd = statistics.stdev(d) if len(d) > 1 else float("nan")
        out[f"{n}_minus_pairs"] = {"clips": len(d), "mean": statistics.fmean(d), "sd": sd, "t": statistics.fmean(d) / (sd / len(d) ** 0.5),
                                   "clips_better": sum(x > 0 for x in d)}
    return out


def run(cmd: list[str], log: Path) -> float:
    print("$ " + " ".join(cmd), flush=True)
    t = time.perf_counter()
    with open(log, "w") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mined", help="folder of benchmarks/mine_synthetic.py --out (catalogue/ and mined/)")
    ap.add_argument("--work", required=True, help="true-stems/, runs/, cache/ and eval/ go here (outside the repository)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mir1k"), help="MIR-1K folder")
    ap.add_argument("--seconds", type=float, default=1000.0, help="the --seconds the catalogue was built with")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--valid-fraction", type=float, default=0.1)
    ap.add_argument("--remix", type=float, default=0.0, help="remix probability of the stems run (pairs cannot remix)")
    ap.add_argument("--stems-remix", type=float, default=None, metavar="P",
                    help="also train a third run, stems-remix: the stems with remix probability P (the shipped recipe: 0.5)")
    ap.add_argument("--eval-singers", default="abjones,tammy")
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "out" / "weak_labels.json"))
    args = ap.parse_args(argv)
    mined, work = Path(args.mined), Path(args.work)
    vocalsep = str(Path(sys.executable).with_name("vocalsep"))
    rows, truth = mined_songs(mined)
    stems_dir = work / "true-stems"
    t = time.perf_counter()
    songs = write_true_stems(rows, truth, Path(args.data), args.seconds, stems_dir)
    stems_seconds = time.perf_counter() - t
    held = pair_split(mined / "mined" / "pairs.csv", rows, args.valid_fraction, 0)
    print(f"{len(songs)} songs with a mined pair; held out in both runs: {', '.join(held)}", flush=True)
    recipe = ["--target", "vocals", "--steps", str(args.steps), "--steps-per-epoch", "500", "--batch-size", "8", "--lr", "1e-3",
              "--precision", "bf16", "--threads", "1", "--seed", "0",
              "--cache-dir", str(work / "cache"), "-q"]
    runs = {
        "pairs": ["--dataset", "pairs", "--data", str(mined / "mined" / "pairs.csv"), "--valid-fraction", str(args.valid_fraction), "--remix", "0"],
        "stems": ["--dataset", "stems", "--data", str(stems_dir), "--valid-groups", ",".join(held), "--remix", str(args.remix)],
    }
    if args.stems_remix is not None:
        runs["stems-remix"] = runs["stems"][:-1] + [str(args.stems_remix)]
    result = {"songs": len(songs), "held_out_songs": held, "stems_write_seconds": round(stems_seconds, 1), "runs": {}, "commands": {}}
    for name, extra in runs.items():
        out = work / "runs" / f"{name}-vocals"
        cmd = [vocalsep, "train", *extra, "--out", str(out), *recipe]
        result["commands"][name] = " ".join(cmd)
        if not (out / "summary.json").is_file():
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            run(cmd, work / "runs" / f"{name}-vocals.log")
        summary = json.loads((out / "summary.json").read_text())
        split = json.loads((out / "split.json").read_text())
        result["runs"][name] = {"summary": summary, "split": split}
    ev = work / "eval-weak-labels"
    cmd = [vocalsep, "evaluate", "--data", args.data, "--dataset", "mir1k", "--singers", args.eval_singers,
           *[a for n in runs for a in ("--system", f"{n}={work / 'runs' / f'{n}-vocals' / 'last.safetensors'}")], "--out", str(ev), "-j", "1", "-q"]
    result["commands"]["evaluate"] = " ".join(cmd)
    if not (ev / "summary.json").is_file() or set(runs) - set(json.loads((ev / "summary.json").read_text())["stats"]):
        result["evaluate_seconds"] = round(run(cmd, work / "eval-weak-labels.log"), 1)
    stats = json.loads((ev / "summary.json").read_text())["stats"]
    result["heldout"] = {n: {m: stats[n]["vocals"][m] for m in ("nsdr", "sdr", "sir", "sar") if m in stats[n]["vocals"]} for n in runs}
    result["heldout_paired"] = paired(ev / "scores.csv", runs)
    # a second, small test: the catalogue's own held-out songs (the same 6 songs in every run), true stems as references
    ev2 = work / "eval-weak-labels-catalogue"
    cmd = [vocalsep, "evaluate", "--data", str(stems_dir), "--dataset", "stems", "--tracks", ",".join(held), "--rate", str(RATE),
           *[a for n in runs for a in ("--system", f"{n}={work / 'runs' / f'{n}-vocals' / 'last.safetensors'}")], "--out", str(ev2), "-j", "1", "-q"]
    result["commands"]["evaluate_catalogue"] = " ".join(cmd)
    if not (ev2 / "summary.json").is_file() or set(runs) - set(json.loads((ev2 / "summary.json").read_text())["stats"]):
        run(cmd, work / "eval-weak-labels-catalogue.log")
    stats2 = json.loads((ev2 / "summary.json").read_text())["stats"]
    result["catalogue_heldout"] = {n: {m: stats2[n]["vocals"][m] for m in ("nsdr", "sdr", "sir", "sar") if m in stats2[n]["vocals"]} for n in runs}
    print(f"\n{'system':<11} {'NSDR mean':>9} {'median':>7} {'SIR':>6} {'SAR':>6}  train s  patches/s")
    for n in runs:
        h, s = result["heldout"][n], result["runs"][n]["summary"]
        print(f"{n:<11} {h['nsdr']['mean']:9.2f} {h['nsdr'].get('median', float('nan')):7.2f} {h['sir']['mean']:6.2f} {h['sar']['mean']:6.2f}"
              f"  {s['train_seconds']:7.0f}  {s['patches_per_s']:9.2f}")
    for n in runs:
        if n != "pairs":
            result[f"gap_{n}_minus_pairs_nsdr_mean"] = result["heldout"][n]["nsdr"]["mean"] - result["heldout"]["pairs"]["nsdr"]["mean"]
    for k, v in result["heldout_paired"].items():
        print(f"per clip, {k}: {v['mean']:+.2f} dB (sd {v['sd']:.2f}, t {v['t']:.1f}, better on {v['clips_better']} of {v['clips']} clips)")
    for n in runs:
        c = result["catalogue_heldout"][n]
        print(f"catalogue's held-out songs, {n}: NSDR {c['nsdr']['mean']:.2f}, SIR {c['sir']['mean']:.2f}, SAR {c['sar']['mean']:.2f}")
    gap = result["heldout"]["stems"]["nsdr"]["mean"] - result["heldout"]["pairs"]["nsdr"]["mean"]
    dest = Path(args.json)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(result, indent=1))
    print(f"gap (stems - pairs), mean NSDR: {gap:+.2f} dB\nwritten {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
