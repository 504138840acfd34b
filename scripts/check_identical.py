"""Check that the installed models separate bit-identically to a reference run.

    python scripts/check_identical.py --write /tmp/vocalsep-ref     # with the code to compare against
    python scripts/check_identical.py --compare /tmp/vocalsep-ref   # with the changed code

Each installed model (``vocalsep models``; those named with ``--model``) separates
each input file through ``Separator.separate_file``, with its default options and
with each other full-band and high-band rule (:data:`VARIANTS`)
(32-bit float WAV, one torch thread), and the stems are stored as ``.npy`` arrays
(``--write``) or compared with the stored ones (``--compare``): every array must
be exactly equal.  Exit code 0 when all are equal, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import os

import numpy as np

DATA = Path(os.environ.get("VOCALSEP_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
INPUTS = (
    str(DATA / "musdb-sample" / "Music Delta - 80s Rock" / "mixture.flac"),
    str(DATA / "mir1k" / "audio" / "abjones_1_01.flac"),
)
MODELS = ("default", "mir1k", "fine")
# the separation options of each run: the models' defaults, and the other full-band and high-band rules
VARIANTS = {"defaults": {}, "bandlimited-zero": {"fullband": "bandlimited", "high_band": "zero"},
            "interpolate-edge": {"fullband": "interpolate", "high_band": "edge"}}


def separate_all(models: list[str], inputs: list[str]) -> dict[str, np.ndarray]:
    import soundfile as sf
    import torch

    from vocalsep.models import available_models
    from vocalsep.separator import SeparationOptions, Separator

    torch.set_num_threads(1)
    installed = available_models()
    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            if name not in installed:
                raise SystemExit(f"model {name!r} is not installed (installed: {', '.join(installed)})")
            for variant, options in VARIANTS.items():
                sep = Separator.from_pretrained(name, SeparationOptions(**options))
                for i, path in enumerate(inputs):
                    written = sep.separate_file(path, Path(tmp) / name / variant / str(i), fmt="wav", bit_depth="float", force=True)
                    for stem, file in written.items():
                        y, _ = sf.read(file, dtype="float32", always_2d=True)
                        out[f"{name}__{variant}__{i}__{Path(path).stem}__{stem}"] = y
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="DIR", help="store the stems as reference .npy files in DIR")
    group.add_argument("--compare", metavar="DIR", help="compare the stems with the reference .npy files in DIR")
    ap.add_argument("--model", action="append", default=None, help=f"a model to check; repeatable (default: {', '.join(MODELS)})")
    ap.add_argument("--input", action="append", default=None, help="an audio file to separate; repeatable (default: a MUSDB18 and a MIR-1K file)")
    args = ap.parse_args(argv)
    stems = separate_all(args.model or list(MODELS), args.input or list(INPUTS))
    if args.write:
        folder = Path(args.write)
        folder.mkdir(parents=True, exist_ok=True)
        for key, y in stems.items():
            np.save(folder / f"{key}.npy", y)
        print(f"wrote {len(stems)} reference stems to {folder}")
        return 0
    folder = Path(args.compare)
    bad = 0
    for key, y in stems.items():
        ref_path = folder / f"{key}.npy"
        if not ref_path.is_file():
            print(f"MISSING  {key}: no reference {ref_path}")
            bad += 1
            continue
        ref = np.load(ref_path)
        if ref.shape == y.shape and ref.dtype == y.dtype and np.array_equal(ref, y):
            print(f"EQUAL    {key} {y.shape} {y.dtype}")
        else:
            diff = float(np.max(np.abs(ref.astype(np.float64) - y))) if ref.shape == y.shape else float("nan")
            print(f"DIFFERS  {key}: shape {ref.shape} -> {y.shape}, max |difference| {diff:.3g}")
            bad += 1
    print(f"{len(stems) - bad} of {len(stems)} stems bit-identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
