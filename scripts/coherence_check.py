#!/usr/bin/env python3
"""How coherent a recipe's coherent remixes are: key agreement and beat alignment of voice and accompaniment.

    python scripts/coherence_check.py --data ../data --recipe recipes/fullband-coherent.json [--items 150] [--json out.json]

Draws remixes from the recipe as training does, three ways: its coherent remixes
(``coherent`` = 1), random remixes (``coherent`` = 0) and the real tracks of its
``true`` pool (voice over its own accompaniment, the reference), then measures
on each patch (librosa, at 22050 Hz):

- key agreement: the correlation of the voice's and the accompaniment's mean chroma;
- beat alignment: the median distance from each voice onset to the nearest
  accompaniment beat, in beat periods (0: on the beat; 0.25: what onsets at
  random places give).

Prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from vocalsep.audio import resample
from vocalsep.config import get_preset
from vocalsep.data.recipe import Recipe
from vocalsep.training.mix import MixSampler, load_recipe

RATE = 22050


def measure(sampler: MixSampler, items: int, seed: int) -> dict:
    import librosa

    rng = np.random.default_rng(seed)
    rate = sampler.preset.sample_rate
    chroma_r, beat_d = [], []
    for _ in range(items):
        voc, acc, n = sampler.item(rng)
        if n < sampler.patch_samples // 2:
            continue
        v = resample(voc[:, :n].mean(0, keepdims=True), rate, RATE)[0]
        a = resample(acc[:, :n].mean(0, keepdims=True), rate, RATE)[0]
        cv = librosa.feature.chroma_stft(y=v, sr=RATE, n_fft=4096, hop_length=2048).mean(1)
        ca = librosa.feature.chroma_stft(y=a, sr=RATE, n_fft=4096, hop_length=2048).mean(1)
        if np.std(cv) > 0 and np.std(ca) > 0:
            chroma_r.append(float(np.corrcoef(cv, ca)[0, 1]))
        _, beats = librosa.beat.beat_track(y=a, sr=RATE, units="time")
        if len(beats) < 3:
            continue
        period = float(np.median(np.diff(beats)))
        onsets = librosa.onset.onset_detect(y=v, sr=RATE, units="time")
        d = [min(float(np.min(np.abs(beats - o))) / period, 0.5) for o in onsets if beats[0] - period / 2 < o < beats[-1] + period / 2]
        if len(d) >= 3:
            beat_d.append(float(np.median(d)))
    return {
        "patches": len(chroma_r),
        "chroma_correlation_median": round(float(np.median(chroma_r)), 3),
        "chroma_correlation_mean": round(float(np.mean(chroma_r)), 3),
        "onset_to_beat_median": round(float(np.median(beat_d)), 3),
        "onset_to_beat_mean": round(float(np.mean(beat_d)), 3),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--recipe", type=Path, required=True)
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/.vocalsep-cache"))
    ap.add_argument("--preset", default="spleeter")
    ap.add_argument("--items", type=int, default=150)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    preset = get_preset(args.preset)
    base = Recipe.load(args.recipe)
    coherent = dataclasses.replace(base, true_share=0.0, coherent=1.0)
    train, _ = load_recipe(coherent, args.data, preset.sample_rate, args.cache_dir)
    kinds = {
        "coherent remixes": coherent,
        "random remixes": dataclasses.replace(base, true_share=0.0, coherent=0.0),
        "real tracks": dataclasses.replace(base, true_share=1.0, coherent=0.0),
    }
    out = {"recipe": str(args.recipe), "items": args.items, "seed": args.seed, "kinds": {}}
    print("| patches | key agreement (chroma correlation), median (mean) | onset to beat (beat periods), median (mean) |")
    print("| --- | ---: | ---: |")
    for name, recipe in kinds.items():
        sampler = MixSampler(train, recipe, preset, "accompaniment", preset.patch_frames // 2)
        m = measure(sampler, args.items, args.seed)
        out["kinds"][name] = m
        print(f"| {name} ({m['patches']}) | {m['chroma_correlation_median']:.2f} ({m['chroma_correlation_mean']:.2f}) "
              f"| {m['onset_to_beat_median']:.3f} ({m['onset_to_beat_mean']:.3f}) |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
