#!/usr/bin/env python
"""BSS Eval v3 speed and agreement (not a test): mir_eval against vocalsep's cached engine.

For each MIR-1K clip (16 kHz mono, vocals and accompaniment as references),
scores four estimates (the mixture, a noisy estimate, a leaky one, another
noisy one), as ``vocalsep evaluate`` does for a track with four systems:

- ``mir_eval``: ``mir_eval.separation.bss_eval_sources`` once per estimate
  (it rebuilds the references' Gram matrix twice per source every call);
- ``cached``: one :class:`vocalsep.evaluation.metrics.SourcesV3` per clip,
  whose references' work is shared by the four estimates.

Prints the time of each and the largest difference over values below 100 dB
(above that, both report rounding noise: the mixture's SAR), and writes JSON.

    python benchmarks/bss_eval_speed.py --clips 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from vocalsep.audio import load
from vocalsep.evaluation.metrics import SourcesV3, bss_eval_v3

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("VOCALSEP_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--clips", type=int, default=5)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "out" / "bss_eval_speed.json")
    args = ap.parse_args()
    files = sorted((args.data / "mir1k" / "audio").glob("abjones_*.flac"))[: args.clips]
    if not files:
        sys.exit(f"no MIR-1K clips under {args.data}: set --data or VOCALSEP_DATA")
    rows = []
    rng = np.random.default_rng(0)
    for f in files:
        x, _ = load(f)
        refs = np.stack([x[1], x[0]]).astype(np.float64)
        mix = refs.sum(axis=0)
        ests = [np.stack([mix, mix]), refs + 0.3 * refs.std() * rng.standard_normal(refs.shape),
                0.7 * refs + 0.3 * refs[::-1], refs + 0.1 * refs.std() * rng.standard_normal(refs.shape)]
        t0 = time.perf_counter()
        want = [bss_eval_v3(refs, e, engine="mir_eval") for e in ests]
        t1 = time.perf_counter()
        scorer = SourcesV3(refs)
        got = [scorer.score(e) for e in ests]
        t2 = time.perf_counter()
        diff = max(float(np.max(np.abs(g[m] - w[m])[w[m] < 100], initial=0.0)) for g, w in zip(got, want) for m in w)
        rows.append({"clip": f.stem, "seconds": refs.shape[1] / 16000, "mir_eval_s": t1 - t0, "cached_s": t2 - t1, "max_diff_db": diff})
        print(f"{f.stem:16s} {rows[-1]['seconds']:5.1f} s audio  mir_eval {t1 - t0:6.2f} s  cached {t2 - t1:6.2f} s  "
              f"x{(t1 - t0) / (t2 - t1):4.1f}  max |diff| {diff:.1e} dB")
    total = {k: sum(r[k] for r in rows) for k in ("mir_eval_s", "cached_s")}
    print(f"total: mir_eval {total['mir_eval_s']:.1f} s, cached {total['cached_s']:.1f} s, "
          f"{total['mir_eval_s'] / total['cached_s']:.1f}x; largest difference {max(r['max_diff_db'] for r in rows):.1e} dB")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "total": total}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
