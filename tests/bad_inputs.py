#!/usr/bin/env python
"""A corpus of bad inputs, kills and hostile requests for every ``vocalsep`` command, and a runner
that checks the README's promises on each:

- a bad input is named on ONE error line with the reason (``vocalsep: error: FILE: reason``);
- exit code 0 when all went well, 1 when some inputs failed (and the rest was done), 2 for a
  usage error;
- the rest of a batch is done: its outputs exist;
- nothing half-written is left behind: no ``.part`` file, no empty folder, no output of a
  refused or failed input;
- no traceback, ever.

The corpus is built from synthetic audio, tiny random models and hand-made damaged files in a
folder of its own (nothing is read from or written to the current directory, no network).

    python tests/bad_inputs.py                      # every case, each in its own vocalsep process
    python tests/bad_inputs.py --in-process         # faster: vocalsep.cli.main in this process
    python tests/bad_inputs.py --group separate --json out.json --keep /tmp/corpus

prints one row per case and writes the results as JSON.  ``tests/test_bad_inputs.py`` runs the
fast cases in process with pytest; the cases marked slow (kills, signals) run here and under
``pytest -m slow``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script: the tests' helpers are beside it
    sys.path.insert(0, str(HERE))

GROUPS = ("separate", "info", "train", "evaluate", "mine", "import-spleeter", "listen", "signals")
RATE = 8000


@dataclass
class Case:
    """One run of the command line and what must hold afterwards.

    ``errors``: for each bad input, the words of its one error line (its file name and the
    reason); ``exist``: outputs that must be there (the rest of the batch); ``absent``: what must
    not be (outputs of refused inputs, folders of failed runs); ``clean``: folders that must hold
    no ``.part`` file and no empty folder.  ``check`` replaces the command for cases that are not
    one command (HTTP requests, signals): it returns the problems found.
    """

    name: str
    group: str
    argv: list[str] = field(default_factory=list)
    code: int = 0
    errors: list[tuple[str, ...]] = field(default_factory=list)
    exist: list[Path] = field(default_factory=list)
    absent: list[Path] = field(default_factory=list)
    clean: list[Path] = field(default_factory=list)
    cwd: Path | None = None
    before: Callable[[], None] | None = None
    after: Callable[[], list[str]] | None = None
    check: Callable[[], list[str]] | None = None
    slow: bool = False

    @property
    def inputs(self) -> int:
        """How many bad inputs the case holds (at least one: the case itself)."""
        return max(1, len(self.errors))


# -- material

def tone_song(seconds: float = 1.0, rate: int = RATE, channels: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(voice, accompaniment) float32 ``(channels, n)``: a vibrato tone in phrases over noise and a chord."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(220 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))) / rate
    voice = 0.3 * np.sin(phase) * (np.sin(2 * np.pi * 0.7 * t) > -0.3)
    acc = 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (130.8, 164.8, 196.0)) + 0.05 * rng.standard_normal(t.size)
    stack = lambda x: np.stack([x * (1 - 0.1 * c) for c in range(channels)]).astype(np.float32)  # noqa: E731
    return stack(voice), stack(acc)


def write_wav(path: Path, audio: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(audio).T, rate, subtype=subtype, format="WAV")
    return path


def tiny_models(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny vocal and accompaniment model (the plumbing, not the quality)."""
    import torch

    from vocalsep.checkpoint import save_checkpoint
    from vocalsep.config import Preset, UNetConfig
    from vocalsep.model import UNet

    preset = Preset(name="tiny-test", unet=UNetConfig(channels=(4, 8, 16)))
    torch.manual_seed(seed)
    for target in ("vocals", "accompaniment"):
        save_checkpoint(folder / f"{target}.safetensors", UNet(preset.unet).eval(), target=target, preset=preset, training={"note": "corpus"})
    return folder


def _retensor(src: Path, dst: Path, change) -> Path:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: change(v) for k, v in load_file(str(src)).items()}, str(dst), metadata=meta)
    return dst


def damaged_models(root: Path, good: Path) -> dict[str, Path]:
    """Model folders that must be refused: integer weights, NaN weights, not safetensors, truncated, empty folder."""
    import torch

    out = {}
    for name, change in (("int-weights", lambda v: v.to(torch.int32) if v.is_floating_point() else v),
                         ("nan-weights", lambda v: v * float("nan") if v.is_floating_point() else v)):
        for t in ("vocals", "accompaniment"):
            _retensor(good / f"{t}.safetensors", root / name / f"{t}.safetensors", change)
        out[name] = root / name
    (root / "garbage").mkdir(parents=True)
    (root / "garbage" / "vocals.safetensors").write_bytes(b"\x00" * 64)
    out["garbage"] = root / "garbage"
    data = (good / "vocals.safetensors").read_bytes()
    (root / "truncated").mkdir()
    (root / "truncated" / "vocals.safetensors").write_bytes(data[: len(data) // 2])
    out["truncated"] = root / "truncated"
    (root / "empty-folder").mkdir()
    out["empty-folder"] = root / "empty-folder"
    return out


# -- the cases, command by command

def separate_cases(root: Path) -> list[Case]:
    models = tiny_models(root / "model")
    bad_models = damaged_models(root / "models", models)
    ins = root / "inputs"
    voice, acc = tone_song()
    mix = voice + acc
    write_wav(ins / "good.wav", mix)
    write_wav(ins / "sub" / "good2.wav", mix[:1])
    (ins / "empty.wav").write_bytes(b"")
    (ins / "garbage.mp3").write_bytes(b"\x00garbage" * 200)
    (ins / "text.wav").write_text("this is not audio\n" * 20)
    write_wav(ins / "zero.wav", np.zeros((2, 0), np.float32))
    nan = mix.copy()
    nan[:, RATE // 2] = np.nan
    write_wav(ins / "nan.wav", nan, subtype="FLOAT")
    inf = mix.copy()
    inf[0, 10] = np.inf
    write_wav(ins / "inf.wav", inf, subtype="FLOAT")
    write_wav(ins / "huge.wav", np.full((1, RATE), 1e37, np.float32), subtype="FLOAT")
    write_wav(ins / "silent.wav", np.zeros((2, RATE), np.float32))
    write_wav(ins / "one-sample.wav", np.full((2, 1), 0.1, np.float32), rate=44100)
    write_wav(ins / "two-samples.wav", np.full((2, 2), 0.1, np.float32), rate=44100)
    wav = (ins / "good.wav").read_bytes()
    (ins / "truncated-header.wav").write_bytes(wav[:30])
    (ins / "cut-short.wav").write_bytes(wav[: len(wav) // 2])  # a download cut short: the header declares twice the audio
    (ins / "folder.wav").mkdir()  # a folder with an audio extension, holding nothing
    write_wav(ins / "...wav", mix)  # its track name is '..': outside OUTDIR
    (root / "notes.xyz").write_text("named on the command line")
    write_wav(ins / "linked.wav", mix)
    out = root / "out"
    (out / "linked").mkdir(parents=True)
    (out / "linked" / "vocals.wav").symlink_to(root / "elsewhere.wav")
    m = ["-m", str(models)]
    batch = Case(
        "separate: a batch of bad inputs with two good ones", "separate",
        ["separate", str(ins), str(ins / "...wav"), str(ins / "folder.wav"), str(root / "missing.wav"), str(root / "notes.xyz"), "-o", str(out), *m], 1,
        errors=[("empty.wav", "empty"), ("garbage.mp3", "cannot decode"), ("text.wav", "cannot decode"), ("zero.wav", "no audio samples"),
                ("nan.wav", "NaN"), ("inf.wav", "NaN or infinite"), ("huge.wav", "NaN or infinite"), ("silent.wav", "digital silence"),
                ("one-sample.wav", "too short"), ("two-samples.wav", "too short"), ("truncated-header.wav", "cannot decode"),
                ("cut-short.wav", "is truncated: its header declares"), ("folder.wav", "no audio files"), ("...wav", "outside the output folder"), ("missing.wav", "no such file"),
                ("notes.xyz", "unsupported file type"), ("linked", "symbolic link")],
        exist=[out / "good" / "vocals.wav", out / "good" / "accompaniment.wav", out / "good2" / "vocals.wav"],
        absent=[root / "elsewhere.wav", out / "nan", out / "huge", out / "silent", out / "one-sample", out / "cut-short"], clean=[out])
    cases = [batch]
    good = str(ins / "good.wav")
    o2 = root / "out2"
    ins6 = write_wav(root / "other" / "six.wav", np.tile(mix[:1], (6, 1)))
    ins96 = write_wav(root / "other" / "hires.wav", np.tile(mix, (1, 2))[:, : 96000 // 4], rate=96000)

    def usage(name, argv, *needles):
        return Case(f"separate: {name}", "separate", ["separate", good, "-o", str(o2), *argv], 2, errors=[needles] if needles else [],
                    absent=[o2])

    cases += [
        usage("a template with attribute access", [*m, "--filename", "{track.__class__}/{stem}.{ext}"], "invalid --filename template"),
        usage("a template with an index", [*m, "--filename", "{track[0]}/{stem}.{ext}"], "invalid --filename template"),
        usage("a template with an unknown field", [*m, "--filename", "{artist}/{stem}.{ext}"], "invalid --filename template"),
        usage("a template that leaves OUTDIR", [*m, "--filename", "../../{stem}.{ext}"], "outside the output folder"),
        usage("a template without {stem}", [*m, "--filename", "{track}.{ext}"], "same file"),
        usage("FLAC in float", [*m, "--format", "flac", "--bit-depth", "float"], "FLAC stores at most 24-bit"),
        usage("--threads 0", [*m, "--threads", "0"], "--threads", "at least 1"),
        usage("--jobs two", [*m, "--jobs", "two"], "--jobs", "at least 1"),
        usage("--offset -1", [*m, "--offset", "-1"], "--offset"),
        usage("--duration 0", [*m, "--duration", "0"], "--duration"),
        usage("--duration nan", [*m, "--duration", "nan"], "--duration"),
        usage("--shifts 99", [*m, "--shifts", "99"], "--shifts"),
        usage("--stems drums", [*m, "--stems", "drums"], "--stems"),
        usage("a missing model file", ["-m", str(root / "none.safetensors")], "no such model"),
        usage("a model folder without models", ["-m", str(bad_models["empty-folder"])], "empty-folder", "no .safetensors"),
        usage("a model with integer weights", ["-m", str(bad_models["int-weights"])], "int-weights", "int32"),
        usage("a model with NaN weights", ["-m", str(bad_models["nan-weights"])], "nan-weights", "NaN or infinite"),
        usage("a model file that is not safetensors", ["-m", str(bad_models["garbage"])], "garbage", "not a safetensors"),
        usage("a truncated model file", ["-m", str(bad_models["truncated"])], "truncated", "not a safetensors"),
        usage("an unknown model name", ["-m", "no-such-model"], "unknown model"),
        Case("separate: no input at all", "separate", ["separate"], 2, absent=[o2]),
        Case("separate: -o below a file", "separate", ["separate", good, "-o", str(root / "notes.xyz" / "out"), *m], 2,
             errors=[("notes.xyz", "is a file, not a folder")]),
        Case("separate: --stream 3 of a one-stream file", "separate", ["separate", good, "-o", str(o2), *m, "--stream", "3"], 1,
             errors=[("good.wav", "stream 3 does not exist")], absent=[o2]),
        Case("separate: MP3 of a 6-channel and a 96 kHz input", "separate",
             ["separate", str(ins6), str(ins96), good, "-o", str(root / "o6"), *m, "--format", "mp3"], 1,
             errors=[("six.wav", "MP3 stores 1 or 2 channels"), ("hires.wav", "MP3 cannot store 96000 Hz")],
             exist=[root / "o6" / "good" / "vocals.mp3"], absent=[root / "o6" / "six", root / "o6" / "hires"], clean=[root / "o6"]),
        Case("separate: --duration 1e308 (the whole file)", "separate", ["separate", good, "-o", str(root / "o3"), *m, "--duration", "1e308"], 0,
             exist=[root / "o3" / "good" / "vocals.wav"], clean=[root / "o3"]),
        Case("separate: --offset 1e305 (past the end)", "separate", ["separate", good, "-o", str(root / "o4"), *m, "--offset", "1e305"], 1,
             errors=[("good.wav", "no audio samples in the selected range")], absent=[root / "o4"]),
    ]
    # a rerun with OUTDIR inside the input folder: the outputs are not inputs
    music = root / "music"
    write_wav(music / "song.wav", mix)
    rerun = ["separate", str(music), "-o", str(music / "separated"), *m]
    cases += [Case("separate: OUTDIR inside the input folder, first run", "separate", rerun, 0, exist=[music / "separated" / "song" / "vocals.wav"]),
              Case("separate: the same command again (no stems of stems)", "separate", rerun, 0,
                   absent=[music / "separated" / "vocals", music / "separated" / "accompaniment"], clean=[music])]
    # stale temporary files of a killed run are removed by the next one
    stale_dir = root / "o5" / "good"
    stale_dir.mkdir(parents=True)
    dead = _dead_pid()
    stale = stale_dir / f".vocals.wav.{dead}-deadbeef.part"
    cases.append(Case("separate: a stale .part of a killed run", "separate", ["separate", good, "-o", str(root / "o5"), *m], 0,
                      before=lambda: stale.write_bytes(b"half"), exist=[stale_dir / "vocals.wav"], absent=[stale], clean=[root / "o5"]))
    return cases


def _dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(p.stdout)


def info_cases(root: Path) -> list[Case]:
    models = tiny_models(root / "model")
    bad = damaged_models(root / "models", models)
    cases = [Case("info: a good model", "info", ["info", str(models)], 0)]
    for name, needle in (("int-weights", "int32"), ("nan-weights", "NaN or infinite"), ("garbage", "not a safetensors"),
                         ("truncated", "not a safetensors"), ("empty-folder", "no .safetensors")):
        cases.append(Case(f"info: {name}", "info", ["info", str(bad[name])], 2, errors=[(name, needle)]))
    cases.append(Case("info: a missing model", "info", ["info", str(root / "none.safetensors")], 2, errors=[("none.safetensors", "no such model")]))
    return cases


def train_cases(root: Path) -> list[Case]:
    from test_data import make_mir1k

    tiny = ["--channels", "4,8,16", "--batch-size", "2", "--valid-seconds", "2", "--threads", "1", "--steps", "2", "--steps-per-epoch", "2"]
    data = make_mir1k(root / "mir", singers=("ann", "bob"), songs=1, clips=2, seconds=3.0)
    (root / "empty-data").mkdir()
    (root / "notes.txt").write_text("not a dataset")
    cases = []
    for name, path in (("a missing --data", root / "missing"), ("an empty --data folder", root / "empty-data"), ("a text file as --data", root / "notes.txt")):
        runs = root / f"runs-{len(cases)}"
        cases.append(Case(f"train: {name}", "train", ["train", "--data", str(path), "--out", str(runs / "run"), *tiny], 2,
                          errors=[(path.name,)], absent=[runs]))
    run = root / "runs" / "run"
    good = ["train", "--data", str(data), "--out", str(run), "--valid-groups", "bob", *tiny]
    cases.append(Case("train: a good run", "train", good, 0, exist=[run / "last.safetensors", run / "summary.json"]))
    summary: dict = {}
    cases.append(Case("train: --resume of a finished run keeps its summary", "train", [*good, "--resume"], 0,
                      before=lambda: summary.update(text=(run / "summary.json").read_text()),
                      after=lambda: [] if (run / "summary.json").read_text() == summary["text"] else ["summary.json was rewritten"]))
    state = run / "state.pt"
    kept: dict = {}

    def damage(kind):
        def go():
            kept.setdefault("state", state.read_bytes())
            data = kept["state"]
            state.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"garbage", "empty": b""}[kind])
        return go

    for kind, said in (("truncated", "cut in half"), ("garbage", "not a state file"), ("empty", "empty (0 bytes)")):
        cases.append(Case(f"train: --resume, state.pt {said}", "train", [*good, "--resume", "--steps", "4"], 2,
                          errors=[("state.pt", "cannot resume")], before=damage(kind)))
    cases.append(Case("train: --resume with another network", "train", [*good[:-len(tiny)], *tiny, "--channels", "4,8", "--resume"], 2,
                      errors=[("--resume", "channels")], before=lambda: state.write_bytes(kept["state"])))
    cases.append(Case("train: --batch-size 0", "train", ["train", "--data", str(data), "--out", str(root / "r2"), *tiny, "--batch-size", "0"], 2,
                      errors=[("batch",)], absent=[root / "r2"]))
    return cases


def evaluate_cases(root: Path) -> list[Case]:
    rng = np.random.default_rng(0)
    t = np.arange(int(2.5 * RATE)) / RATE
    for i in range(3):
        voc = np.stack([0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t)] * 2)
        acc = 0.2 * rng.standard_normal((2, t.size))
        for name, x in (("vocals", voc), ("accompaniment", acc)):
            write_wav(root / "data" / f"song{i}" / f"{name}.wav", x, subtype="FLOAT")
            if i == 0:  # song1: no estimate; song2: a damaged one
                write_wav(root / "est" / f"song{i}" / f"{name}.wav", 0.95 * x, subtype="FLOAT")
    (root / "est" / "song2").mkdir(parents=True)
    (root / "est" / "song2" / "vocals.wav").write_bytes(b"RIFF not really")
    write_wav(root / "est" / "song2" / "accompaniment.wav", np.zeros((2, t.size)))
    models = tiny_models(root / "model")
    bad = damaged_models(root / "models", models)
    common = ["evaluate", "--data", str(root / "data"), "--rate", str(RATE), "-j", "1", "--excerpt", "1"]
    out = root / "out"
    cases = [Case("evaluate: an estimates folder with a missing and a damaged track (mask figure of a longer track)", "evaluate",
                  [*common, "--system", f"est={root / 'est'}", "--system", "mixture", "--out", str(out)], 1,
                  errors=[("song1", "missing estimate"), ("song2/vocals.wav", "cannot decode")],
                  exist=[out / "summary.json", out / "summary.md", out / "figures" / "masks_song0.png"], clean=[out])]
    damaged = root / "out-damaged"

    def damage():
        damaged.mkdir(exist_ok=True)
        (damaged / "setup.json").write_text("{not json")

    cases.append(Case("evaluate: a damaged OUT/setup.json", "evaluate", [*common, "--system", "mixture", "--out", str(damaged)], 2,
                      errors=[("setup.json", "unreadable")], before=damage))
    for name in ("int-weights", "nan-weights"):
        cases.append(Case(f"evaluate: a model with {name}", "evaluate", [*common, "--system", f"m={bad[name]}", "--out", str(root / f"o-{name}")], 2,
                          errors=[(name,)]))
    cases += [
        Case("evaluate: --rate 0", "evaluate", ["evaluate", "--data", str(root / "data"), "--rate", "0", "--system", "mixture", "--out", str(root / "o-rate")], 2,
             errors=[("--rate", "at least 1")], absent=[root / "o-rate"]),
        Case("evaluate: a missing --data", "evaluate", ["evaluate", "--data", str(root / "missing"), "--system", "mixture", "--out", str(root / "o-m")], 2,
             errors=[("missing",)]),
        Case("evaluate: a --system that is no system", "evaluate", [*common, "--system", "x=", "--out", str(root / "o-s")], 2, errors=[("--system",)]),
        Case("evaluate: --tracks that do not exist", "evaluate", [*common, "--system", "mixture", "--tracks", "nope", "--out", str(root / "o-t")], 2,
             errors=[("nope",)]),
    ]
    return cases


def mine_cases(root: Path) -> list[Case]:
    voice, acc = tone_song(4.0, 16000, channels=1)
    from vocalsep.audio import save

    save(root / "cat" / "a.flac", voice + acc, 16000)
    save(root / "cat" / "b.flac", acc, 16000)
    rows = [b"artist,title,path", b"Amy,Song,a.flac", b"Amy,Song (Instrumental Mix),b.flac", b"Amy,Caf\xe9,a.flac",
            b"Amy,Long," + b"x" * 140000, b"Amy,Gone,missing.mp3", b",No Artist,a.flac", b'Amy,"Broken quote,a.flac']
    (root / "cat" / "catalog.csv").write_bytes(b"\n".join(rows) + b"\n")
    jsonl = [json.dumps({"artist": "Amy", "title": "Song", "path": "a.flac"}).encode(), b'{"artist": "Amy", "title": "Caf\xe9"}',
             b"{not json", b"[1, 2]", b"[" * 50000 + b"]" * 50000, json.dumps({"artist": "Amy", "title": "Song (Off Vocal)", "path": "b.flac"}).encode()]
    (root / "cat" / "catalog.jsonl").write_bytes(b"\n".join(jsonl) + b"\n")
    out = root / "out"
    cases = [
        Case("mine: a CSV with a non-UTF-8 row, a 140,000-character field, a missing file, a missing artist", "mine",
             ["mine", str(root / "cat" / "catalog.csv"), "--out", str(out), "-j", "1"], 1,
             errors=[("line 4", "not UTF-8"), ("line 5", "longer than"), ("line 6", "no such audio file"), ("line 7", "missing artist")],
             exist=[out / "pairs.csv", out / "report.md"], clean=[out]),
        Case("mine: JSON lines with non-UTF-8, not JSON, not an object, nested too deeply", "mine",
             ["mine", str(root / "cat" / "catalog.jsonl"), "--out", str(root / "out-j"), "-j", "1"], 1,
             errors=[("line 2", "not UTF-8"), ("line 3", "not JSON"), ("line 4", "not a JSON object"), ("line 5", "nested too deeply")],
             exist=[root / "out-j" / "pairs.csv"]),
    ]

    def wrong_shapes():
        for k, path in enumerate(sorted((out / ".work").rglob("*.json"))):
            path.write_text(("{}", "[]", '{"status": "ok"}', '{"status": 3}')[k % 4])

    cases.append(Case("mine: stored results of the wrong shape", "mine", ["mine", str(root / "cat" / "catalog.csv"), "--out", str(out), "-j", "1"], 1,
                      errors=[("line 4", "not UTF-8")], before=wrong_shapes, exist=[out / "pairs.csv"]))
    lib = root / "lib"
    save(lib / "Amy - Song.flac", voice + acc, 16000)
    save(lib / "sub" / "Amy - Song (Inst.).flac", acc, 16000)
    cases.append(Case("mine: a relative folder", "mine", ["mine", "lib", "--out", "out-lib", "-j", "1"], 0, cwd=root,
                      exist=[root / "out-lib" / "pairs.csv"]))
    (root / "nocols.csv").write_text("name,file\nx,y\n")
    cases += [
        Case("mine: a missing catalogue", "mine", ["mine", str(root / "none.csv"), "--out", str(root / "o1")], 2, errors=[("none.csv",)]),
        Case("mine: a CSV without the needed columns", "mine", ["mine", str(root / "nocols.csv"), "--out", str(root / "o2")], 2,
             errors=[("nocols.csv", "columns")]),
        Case("mine: --title-threshold 0", "mine", ["mine", str(root / "cat" / "catalog.csv"), "--out", str(root / "o4"), "--title-threshold", "0"], 2,
             errors=[("--title-threshold",)], absent=[root / "o4"]),
        Case("mine: --allow an unknown tag", "mine", ["mine", str(root / "cat" / "catalog.csv"), "--out", str(root / "o3"), "--allow", "karaoke"], 2,
             errors=[("karaoke",)]),
    ]
    return cases


def import_spleeter_cases(root: Path) -> list[Case]:
    import torch

    from test_spleeter import tf_spleeter_variables, write_bundle

    folder = root / "2stems"
    folder.mkdir(parents=True)
    write_bundle(folder / "model", tf_spleeter_variables())
    (folder / "checkpoint").write_text('model_checkpoint_path: "model"\n')
    (folder / "model.data-00000-of-00001").write_bytes(b"")
    truncated = root / "2stems-truncated"
    shutil.copytree(folder, truncated)
    write_bundle(truncated / "model", tf_spleeter_variables())
    data = (truncated / "model.data-00000-of-00001").read_bytes()
    (truncated / "model.data-00000-of-00001").write_bytes(data[: len(data) // 3])
    (root / "garbage").mkdir()
    (root / "garbage" / "a.ckpt").write_bytes(b"not a checkpoint")
    (root / "garbage" / "b.ckpt").write_bytes(b"")
    (root / "evil").mkdir()
    marker = root / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for n in range(2):
        torch.save({"down1_conv.1.weight": Payload()}, root / "evil" / f"ckpt{n}.ckpt")
    return [
        Case("import-spleeter: an empty (0-byte) data file", "import-spleeter", ["import-spleeter", str(folder), "-o", str(root / "o1")], 1,
             errors=[("model.data-00000-of-00001", "empty")], absent=[root / "o1"]),
        Case("import-spleeter: a truncated data file", "import-spleeter", ["import-spleeter", str(truncated), "-o", str(root / "o2")], 1,
             errors=[("model.data-00000-of-00001",)], absent=[root / "o2"]),
        Case("import-spleeter: files that are not checkpoints", "import-spleeter", ["import-spleeter", str(root / "garbage"), "-o", str(root / "o3")], 1,
             errors=[("a.ckpt",)], absent=[root / "o3"]),
        Case("import-spleeter: a pickle that runs code", "import-spleeter", ["import-spleeter", str(root / "evil"), "-o", str(root / "o4")], 1,
             errors=[("ckpt0.ckpt", "refused by the restricted")], absent=[root / "o4", marker]),
        Case("import-spleeter: a missing path", "import-spleeter", ["import-spleeter", str(root / "none"), "-o", str(root / "o5")], 2,
             errors=[("none", "no such file")], absent=[root / "o5"]),
    ]


def listen_cases(root: Path) -> list[Case]:
    from listen_support import make_outputs

    dirs = make_outputs(root / "outputs", tracks=2)
    study = root / "study"
    systems = ["--system", f"unet={dirs['unet']}", "--system", f"baseline={dirs['baseline']}"]
    prepare = ["listen", "prepare", *systems, "--mixtures", str(dirs["mixtures"]), "--clips", "2", "--duration", "1", "-o", str(study)]
    cases = [Case("listen prepare: a good study", "listen", prepare, 0, exist=[study / "study.json"])]
    (root / "broken").mkdir()
    (root / "broken" / "study.json").write_text("{not json")
    cases += [
        Case("listen prepare: a --system folder that does not exist", "listen",
             ["listen", "prepare", "--system", f"x={root / 'none'}", "--mixtures", str(dirs["mixtures"]), "-o", str(root / "s2")], 2,
             errors=[("none",)], absent=[root / "s2"]),
        Case("listen prepare: --clips 0", "listen", [*prepare[:-2], "--clips", "0", "-o", str(root / "s3")], 2, errors=[("--clips",)],
             absent=[root / "s3"]),
        Case("listen serve: a folder that is not a study", "listen", ["listen", "serve", str(root / "outputs")], 2, errors=[("not a study folder",)]),
        Case("listen serve: a damaged study.json", "listen", ["listen", "serve", str(root / "broken")], 2, errors=[("study.json", "not valid JSON")]),
        Case("listen report: a missing study", "listen", ["listen", "report", str(root / "none"), "-o", str(root / "r")], 2, errors=[("none",)]),
        Case("listen serve: hostile requests (relative path, nested JSON, a clip swapped for a link, formulas)", "listen",
             check=lambda: _http_checks(root, study)),
    ]
    return cases


def _http_checks(root: Path, study: Path) -> list[str]:
    """The web app of a study served from a relative path, answering hostile requests."""
    from listen_support import answer_body, clip_index

    from vocalsep.listen.server import create_app

    problems = []
    here = os.getcwd()
    os.chdir(study.parent)
    try:
        app = create_app(study.name, db=root / "responses.sqlite", admin_token="corpus-admin-token-0123456789")
    finally:
        os.chdir(here)
    client = app.test_client()
    st = app.config["STUDY"]
    name = st.excerpts[0].reference.split("/", 1)[1]
    if client.get(f"/audio/{name}").status_code != 200:
        problems.append("a study served from a relative path does not serve its audio")
    nested = b"[" * 30000 + b"]" * 30000
    got = client.post("/api/participants", data=nested, content_type="application/json")
    if got.status_code != 400 or not got.is_json:
        problems.append(f"nested JSON: HTTP {got.status_code}, {got.content_type}")
    for body in (b"{not json", b"[1, 2]", json.dumps({"external_id": "x" * 5000}).encode(), json.dumps({"external_id": "<script>"}).encode()):
        got = client.post("/api/participants", data=body, content_type="application/json")
        if got.status_code != 400 or not got.is_json:
            problems.append(f"bad participant body {body[:20]!r}: HTTP {got.status_code}")
    for path in ("/audio/..%2fstudy.json", "/audio/study.json", "/api/p/" + "x" * 32 + "/state", "/static/../server.py"):
        if client.get(path).status_code != 404:
            problems.append(f"{path}: not 404")
    token = client.post("/api/participants", json={"external_id": "-1+2"}, headers={"User-Agent": "=HYPERLINK(1)"}).get_json()["token"]
    state = client.get(f"/api/p/{token}/state").get_json()
    client.post(f"/api/p/{token}/answer", json=answer_body(state, st, clip_index(st)))
    csv_text = client.get("/api/admin/responses.csv", headers={"Authorization": "Bearer corpus-admin-token-0123456789"}).data.decode()
    if any(cell.startswith(("=", "+", "-", "@")) for line in csv_text.splitlines() for cell in line.split(",")):
        problems.append("responses.csv holds a cell that starts a formula")
    secret = root / "secret.wav"
    secret.write_bytes(b"RIFF secret")
    clip = study / "audio" / name
    clip.unlink()
    clip.symlink_to(secret)
    got = client.get(f"/audio/{name}")
    if got.status_code != 404 or b"secret" in got.data:
        problems.append(f"a clip swapped for a link is followed (HTTP {got.status_code})")
    return problems


def signal_cases(root: Path) -> list[Case]:
    """Kills and signals against a real process (slow: each starts one)."""
    models = tiny_models(root / "model")
    voice, acc = tone_song(10.0, RATE, channels=1)
    for k in range(3):
        write_wav(root / "long" / f"long{k}.wav", np.tile(voice + acc, (1, 30)))  # 5 minutes each
    return [
        Case("signals: SIGTERM during separate", "signals", check=lambda: _sigterm(root, models), slow=True),
        Case("signals: SIGTERM during separate -j 2", "signals", check=lambda: _sigterm(root, models, jobs=2), slow=True),
        Case("signals: Ctrl-C (SIGINT to the process group) during separate -j 2", "signals",
             check=lambda: _sigterm(root, models, jobs=2, sig=signal.SIGINT), slow=True),
        Case("signals: kill -9 of separate -j 2 (the workers must die too)", "signals", check=lambda: _sigkill_jobs(root, models), slow=True),
        Case("signals: kill -9 of one worker of separate -j 2 (the files it held fail, one line each)", "signals",
             check=lambda: _sigkill_worker(root, models), slow=True),
        Case("signals: Ctrl-C to separate -j 2 started with SIGINT ignored (a script's background job) goes on", "signals",
             check=lambda: _sigint_ignored(root, models), slow=True),
    ]


def _wait_for_part(out: Path, proc: subprocess.Popen, seconds: float = 240) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end and proc.poll() is None:
        if list(out.rglob("*.part")):
            return True
        time.sleep(0.1)
    return False


def _start_separate(root: Path, models: Path, out: Path, jobs: int, sigint=signal.SIG_DFL) -> subprocess.Popen:
    """``vocalsep separate`` of the long inputs into ``out``, in a session of its own, with SIGINT's
    disposition ``sigint`` whatever the harness was started with (a shell's background job starts with
    SIGINT ignored).  PYTHONFAULTHANDLER: a crash prints every thread's Python stack, which a problem
    then quotes."""
    return subprocess.Popen([sys.executable, "-m", "vocalsep", "separate", str(root / "long"), "-o", str(out), "-m", str(models), "-j", str(jobs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, PYTHONFAULTHANDLER="1"), preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))


def _signalled(root: Path, models: Path, out: Path, jobs: int, act, sigint=signal.SIG_DFL) -> tuple[int, str] | str:
    """Start :func:`_start_separate`, wait until it writes an output, then ``act(proc, workers)`` (which
    signals something); (exit code, stderr) once it ended, or the problem when ``act`` could not be done.
    Whatever it started is killed afterwards."""
    proc = _start_separate(root, models, out, jobs, sigint)
    workers: list[tuple[int, str]] = []
    try:
        if not _wait_for_part(out, proc):
            return "no output was being written when the signal was to be sent"
        workers = children(proc.pid)
        problem = act(proc, workers)
        if problem:
            return problem
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
        kill_processes(workers)
    return proc.returncode, err


def _sigterm(root: Path, models: Path, jobs: int = 1, sig: int = signal.SIGTERM) -> list[str]:
    """SIGTERM to the command, or SIGINT to its process group (what Ctrl-C does)."""
    out = root / f"signal-{int(sig)}-{jobs}"

    def act(proc, workers):
        if sig == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(sig)

    got = _signalled(root, models, out, jobs, act)
    if isinstance(got, str):
        return [got]
    returncode, err = got
    problems = []
    code, said = (143, "vocalsep: terminated") if sig == signal.SIGTERM else (130, "vocalsep: interrupted")
    if returncode != code:
        problems.append(f"exit code {returncode}, expected {code}" + (f"; its stderr ends: {err[-3000:]}" if returncode < 0 else ""))
    if said not in err:
        problems.append(f"{said!r} not said")
    if "Traceback" in err or "Warning" in err:
        problems.append("more than the one line: " + err.strip()[-300:])
    time.sleep(1.0)  # workers finish their clean-up
    problems += [f"left behind: {p}" for p in _leftovers(out)]
    return problems


def _sigkill_jobs(root: Path, models: Path) -> list[str]:
    out = root / "sigkill"
    proc = subprocess.Popen([sys.executable, "-m", "vocalsep", "separate", str(root / "long"), "-o", str(out), "-m", str(models), "-j", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        if not _wait_for_part(out, proc):
            return ["no output was being written when the command was to be killed"]
        workers = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        end = time.monotonic() + 15
        while time.monotonic() < end and any(alive(w) for w, _ in workers):
            time.sleep(0.2)
        survivors = [w for w, _ in workers if alive(w)]
        return [f"worker {w} outlived the killed command" for w in survivors]
    finally:
        proc.kill()
        proc.wait()
        kill_processes(workers)


def _sigkill_worker(root: Path, models: Path) -> list[str]:
    """SIGKILL to one worker (what the out-of-memory killer does): no traceback, each file not separated
    named on its own error line, exit code 1, nothing half-written left behind."""
    out = root / "sigkill-worker"

    def act(proc, workers):
        busy = [w for w, _ in workers if any(p.name.split(".")[-2].startswith(f"{w}-") for p in out.rglob("*.part"))]
        if not busy:
            return "no worker was writing an output"
        os.kill(busy[0], signal.SIGKILL)

    got = _signalled(root, models, out, 2, act)
    if isinstance(got, str):
        return [got]
    returncode, err = got
    problems = []
    if returncode != 1:
        problems.append(f"exit code {returncode}, expected 1" + (f"; its stderr ends: {err[-3000:]}" if returncode < 0 else ""))
    lines = [line for line in err.splitlines() if line.startswith("vocalsep: error: ")]
    named = [f.name for f in sorted((root / "long").iterdir()) if any(f.name in line for line in lines)]
    if not lines or not all("worker process ended" in line or "terminated" in line for line in lines):
        problems.append(f"the lost files not named with the reason: {err.strip()[-300:]!r}")
    if not named:
        problems.append("no file named")
    if "Traceback" in err:
        problems.append("a traceback: " + err.strip()[-300:])
    time.sleep(1.0)  # the other worker finishes its clean-up
    problems += [f"left behind: {p}" for p in _leftovers(out)]
    return problems


def _sigint_ignored(root: Path, models: Path) -> list[str]:
    """A command started with SIGINT ignored keeps running through a Ctrl-C to its process group, workers
    included: it finishes (exit code 0), or SIGTERM stops it cleanly (143).  A worker that the SIGINT
    ended would break the pool and fail the run (exit code 1) before the SIGTERM."""
    out = root / "sigint-ignored"

    def act(proc, workers):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(2.0)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    got = _signalled(root, models, out, 2, act, sigint=signal.SIG_IGN)
    if isinstance(got, str):
        return [got]
    returncode, err = got
    problems = []
    if returncode not in (0, 143):
        problems.append(f"exit code {returncode}: it did not go on through the ignored SIGINT; its stderr ends: {err[-300:]!r}")
    if returncode == 0 and len(list(out.rglob("*.wav"))) != 2 * len(list((root / "long").iterdir())):
        problems.append("it ended with exit code 0 without every output")
    if "Traceback" in err:
        problems.append("a traceback: " + err.strip()[-300:])
    time.sleep(1.0)
    problems += [f"left behind: {p}" for p in _leftovers(out)]
    return problems


def kill_processes(pids: list[tuple[int, str | None]]) -> None:
    """Whatever a case started must not outlive it: ``(pid, start time)`` from :func:`children`, so that a
    number taken again by another process is left alone."""
    for pid, started in pids:
        if started is not None and start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), None when it does not run."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def children(pid: int) -> list[tuple[int, str]]:
    """``(pid, start time)`` of the processes whose parent is ``pid`` (read from /proc)."""
    kids = []
    for d in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if d.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    kids.append((int(d), fields[19]))
    return kids


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


BUILDERS = {"separate": separate_cases, "info": info_cases, "train": train_cases, "evaluate": evaluate_cases, "mine": mine_cases,
            "import-spleeter": import_spleeter_cases, "listen": listen_cases, "signals": signal_cases}


def build(root: Path, groups=GROUPS) -> list[Case]:
    """The corpus of ``groups`` under ``root`` (one folder per group)."""
    cases = []
    for g in groups:
        folder = root / g
        folder.mkdir(parents=True, exist_ok=True)
        cases += BUILDERS[g](folder)
    return cases


# -- running and checking

def _leftovers(folder: Path) -> list[str]:
    """``.part`` files and empty folders under ``folder``."""
    if not folder.exists():
        return []
    found = [str(p) for p in folder.rglob("*.part")]
    found += [str(d) for d in folder.rglob("*") if d.is_dir() and not d.is_symlink() and not any(d.iterdir())]
    return sorted(set(found))


def invoke(argv: list[str], cwd: Path | None, in_process: bool) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``vocalsep ARGV``: a process of its own, or ``main`` in this one."""
    if not in_process:
        env = dict(os.environ, VOCALSEP_PROGRESS="0")
        p = subprocess.run([sys.executable, "-m", "vocalsep", *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
        return p.returncode, p.stdout, p.stderr
    from vocalsep.cli import main

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - what a user would see as a traceback
                err.write(traceback.format_exc())
                code = 1
    finally:
        os.chdir(here)
    return code, out.getvalue(), err.getvalue()


def error_lines(stderr: str) -> list[str]:
    """The lines that report an error: 'vocalsep: error: ...' and argparse's 'vocalsep CMD: error: ...'."""
    return [line for line in stderr.splitlines() if line.startswith("vocalsep") and ": error: " in line]


def run_case(case: Case, in_process: bool = False) -> dict:
    """Run one case and check every promise; returns the result with its ``problems``."""
    t0 = time.perf_counter()
    if case.before is not None:
        case.before()
    if case.check is not None:
        try:
            problems = case.check()
        except Exception:  # noqa: BLE001
            problems = ["the check itself failed: " + traceback.format_exc().strip().splitlines()[-1]]
        return {"name": case.name, "group": case.group, "argv": [], "expected": None, "code": None, "inputs": case.inputs,
                "seconds": round(time.perf_counter() - t0, 2), "problems": problems, "ok": not problems}
    code, _, err = invoke(case.argv, case.cwd, in_process)
    problems = []
    if code != case.code:
        problems.append(f"exit code {code}, expected {case.code}")
    if "Traceback" in err:
        problems.append("a traceback: " + err.strip().splitlines()[-1][:200])
    lines = error_lines(err)
    for needles in case.errors:
        hits = [line for line in lines if all(n in line for n in needles)]
        if len(hits) != 1:
            problems.append(f"{len(hits)} error lines name {' + '.join(needles)!r}, expected 1")
    if case.code == 0 and lines:
        problems.append(f"error lines in a run that succeeded: {lines[:2]}")
    if case.code and not lines:
        problems.append("no error line")
    problems += [f"missing output {p}" for p in case.exist if not p.exists()]
    problems += [f"should not exist: {p}" for p in case.absent if p.exists() or p.is_symlink()]
    for folder in case.clean:
        problems += [f"left behind: {p}" for p in _leftovers(folder)]
    if case.after is not None:
        problems += case.after()
    return {"name": case.name, "group": case.group, "argv": case.argv, "expected": case.code, "code": code, "inputs": case.inputs,
            "seconds": round(time.perf_counter() - t0, 2), "problems": problems, "ok": not problems, "stderr": err[-2000:]}


def table(results: list[dict]) -> str:
    rows = ["| group | case | bad inputs | exit (expected) | seconds | result |", "| --- | --- | ---: | --- | ---: | --- |"]
    for r in results:
        code = "-" if r["code"] is None else f"{r['code']} ({r['expected']})"
        verdict = "ok" if r["ok"] else "FAIL: " + "; ".join(r["problems"])[:300]
        rows.append(f"| {r['group']} | {r['name']} | {r['inputs']} | {code} | {r['seconds']:.1f} | {verdict} |")
    passed = sum(r["ok"] for r in results)
    rows.append(f"\n{passed} of {len(results)} cases hold every promise ({sum(r['inputs'] for r in results)} bad inputs and requests)")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Build the bad-input corpus and check vocalsep's promises on every case.")
    ap.add_argument("--group", action="append", choices=GROUPS, help="only these commands (repeatable; default: all)")
    ap.add_argument("--in-process", action="store_true", help="call vocalsep.cli.main in this process (faster; the signal cases still start processes)")
    ap.add_argument("--fast", action="store_true", help="leave out the slow cases (kills and signals)")
    ap.add_argument("--json", default=None, metavar="FILE", help="write the results here")
    ap.add_argument("--keep", default=None, metavar="DIR", help="build the corpus in DIR and keep it (default: a temporary folder)")
    args = ap.parse_args(argv)
    groups = args.group or [g for g in GROUPS if not (args.fast and g == "signals")]
    with contextlib.ExitStack() as stack:
        root = Path(args.keep) if args.keep else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vocalsep-corpus-")))
        root.mkdir(parents=True, exist_ok=True)
        cases = [c for c in build(root, groups) if not (args.fast and c.slow)]
        results = []
        for case in cases:
            results.append(run_case(case, args.in_process))
            print(f"{'ok  ' if results[-1]['ok'] else 'FAIL'} {case.name} ({results[-1]['seconds']:.1f} s)", file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"in_process": args.in_process, "results": results}, indent=1))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
