"""Issue 24: the defects a bad-input and fault campaign found, one test (or more) per item.

Most run the command line in this process (``vocalsep.cli.main``) to stay fast; those that need
a real process (signals, kills, resource limits) start one.  Nothing is written into the
current directory.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import soundfile as sf
import torch

from bad_inputs import alive, children, kill_processes, start_time
from conftest import TINY, make_models, synth_song

from vocalsep.checkpoint import load_checkpoint, save_checkpoint
from vocalsep.cli import main
from vocalsep.errors import ModelError


def one_error_line(err: str, *needles: str) -> str:
    """The single 'vocalsep: error:' line of ``err`` that holds every needle (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("vocalsep: error:") and all(n in line for n in needles)]
    assert len(lines) == 1, err
    return lines[0]


def _with_tensors(src, dst, change) -> None:
    """Copy the model file ``src`` to ``dst`` with its tensors passed through ``change``."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: change(k, v) for k, v in load_file(str(src)).items()}, str(dst), metadata=meta)


# -- 13: a model file with integer tensors of the right shapes; 10: non-finite weights

def test_item13_integer_weights_are_refused_with_one_line(tmp_path, tiny_model_dir, song_wav, capsys):
    bad = tmp_path / "int-model"
    for t in ("vocals", "accompaniment"):
        _with_tensors(tiny_model_dir / f"{t}.safetensors", bad / f"{t}.safetensors",
                      lambda k, v: v.to(torch.int32) if v.is_floating_point() else v)
    with pytest.raises(ModelError, match="holds int32 values, the model needs floating-point ones"):
        load_checkpoint(bad / "vocals.safetensors")
    for argv in (["separate", str(song_wav), "-o", str(tmp_path / "o"), "-m", str(bad)], ["info", str(bad)]):
        assert main(argv) == 2
        one_error_line(capsys.readouterr().err, ".safetensors", "int32")
    assert not (tmp_path / "o").exists()


def test_item10_nan_weights_are_refused(tmp_path, tiny_model_dir):
    bad = tmp_path / "nan-model" / "vocals.safetensors"
    _with_tensors(tiny_model_dir / "vocals.safetensors", bad, lambda k, v: v * float("nan") if v.is_floating_point() else v)
    with pytest.raises(ModelError, match="NaN or infinite"):
        load_checkpoint(bad)


# -- 22: model files follow the umask like every other output

def test_item22_model_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "m.safetensors", make_models(TINY)["vocals"], target="vocals", preset=TINY)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# -- separate: one bad input fails alone (5, 11, 12, 10), nothing half-written (9), clear usage errors (19, 20)

def _wav(path, seconds=1.0, rate=8000, audio=None, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (synth_song(seconds, rate) if audio is None else audio).T, rate, subtype=subtype, format="WAV")
    return path


def _files(folder) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


def test_item05_an_odd_name_or_a_link_fails_that_input_alone(tmp_path, tiny_model_dir, capsys):
    good = _wav(tmp_path / "in" / "good.wav")
    dots = _wav(tmp_path / "in" / "...wav")  # its track name is '..'
    linked = _wav(tmp_path / "in" / "linked.wav")
    out = tmp_path / "out"
    (out / "linked").mkdir(parents=True)
    (out / "linked" / "vocals.wav").symlink_to(tmp_path / "elsewhere.wav")
    # a hidden file, so named on the command line
    assert main(["separate", str(tmp_path / "in"), str(dots), "-o", str(out), "-m", str(tiny_model_dir)]) == 1
    err = capsys.readouterr().err
    assert "template" not in err, err
    one_error_line(err, str(dots), "'..'", "outside the output folder")
    one_error_line(err, str(out / "linked" / "vocals.wav"), "symbolic link")
    assert "1 separated, 0 skipped, 2 failed" in err
    assert (out / "good" / "vocals.wav").is_file() and not (tmp_path / "elsewhere.wav").exists()
    assert good.is_file() and linked.is_file()


def test_item06_outputs_under_outdir_are_not_inputs(tmp_path, tiny_model_dir, capsys):
    music = tmp_path / "music"
    _wav(music / "song.wav")
    for _ in range(2):  # the same command twice: the second separates nothing new
        assert main(["separate", str(music), "-o", str(music / "separated"), "-m", str(tiny_model_dir)]) == 0
    assert "0 separated, 1 skipped, 0 failed" in capsys.readouterr().err
    assert _files(music / "separated") == ["song", "song/accompaniment.wav", "song/vocals.wav"]
    # OUTDIR the input folder itself, another template: what the template makes is skipped
    other = tmp_path / "other"
    _wav(other / "song.wav")
    for _ in range(2):
        assert main(["separate", str(other), "-o", str(other), "--filename", "{track}-{stem}.{ext}", "-m", str(tiny_model_dir)]) == 0
    assert "0 separated, 1 skipped, 0 failed" in capsys.readouterr().err
    assert _files(other) == ["song-accompaniment.wav", "song-vocals.wav", "song.wav"]


def test_item09_no_empty_folders_for_failed_inputs(tmp_path, tiny_model_dir, capsys):
    nan = synth_song(1.0, 8000)
    nan[:, 4000] = np.nan  # found while decoding, after the outputs were opened
    _wav(tmp_path / "in" / "nan.wav", audio=nan, subtype="FLOAT")
    _wav(tmp_path / "in" / "silent.wav", audio=np.zeros((2, 8000), np.float32))
    out = tmp_path / "out"
    assert main(["separate", str(tmp_path / "in"), "-o", str(out), "-m", str(tiny_model_dir)]) == 1
    one_error_line(capsys.readouterr().err, "nan.wav", "NaN")
    assert not out.exists()  # not even an empty OUTDIR
    _wav(tmp_path / "in" / "good.wav")
    assert main(["separate", str(tmp_path / "in"), "-o", str(out), "-m", str(tiny_model_dir)]) == 1
    assert _files(out) == ["good", "good/accompaniment.wav", "good/vocals.wav"]


def test_item10_non_finite_stems_are_an_error_not_a_file(tmp_path, tiny_model_dir, capsys):
    huge = np.full((1, 8000), 1e37, np.float32)  # finite samples, but the spectrogram overflows
    _wav(tmp_path / "in" / "huge.wav", audio=huge, subtype="FLOAT")
    _wav(tmp_path / "in" / "good.wav")
    out = tmp_path / "out"
    assert main(["separate", str(tmp_path / "in"), "-o", str(out), "-m", str(tiny_model_dir), "--bit-depth", "float"]) == 1
    one_error_line(capsys.readouterr().err, "huge.wav", "NaN or infinite", "1e+37")
    assert _files(out) == ["good", "good/accompaniment.wav", "good/vocals.wav"]


def test_item11_huge_offset_and_duration(tmp_path, tiny_model_dir, capsys):
    song = _wav(tmp_path / "in" / "song.wav")
    out = tmp_path / "out"
    assert main(["separate", str(song), "-o", str(out), "-m", str(tiny_model_dir), "--duration", "1e308"]) == 0
    assert sf.info(out / "song" / "vocals.wav").frames == 8000
    mp3 = tmp_path / "in" / "other.mp3"
    from vocalsep.audio import save

    save(mp3, synth_song(1.0, 8000), 8000, fmt="mp3")
    assert main(["separate", str(song), str(mp3), "-o", str(out), "-m", str(tiny_model_dir), "--offset", "1e305", "-f"]) == 1
    err = capsys.readouterr().err
    for name in ("song.wav", "other.mp3"):
        one_error_line(err, name, "no audio samples in the selected range")


def test_item12_too_short_inputs(tmp_path, tiny_model_dir, capsys):
    for n in (1, 2):
        _wav(tmp_path / "in" / f"short{n}.wav", audio=np.full((2, n), 0.1, np.float32), rate=44100)
    _wav(tmp_path / "in" / "good.wav")
    assert main(["separate", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tiny_model_dir)]) == 1
    err = capsys.readouterr().err
    for n in (1, 2):
        one_error_line(err, f"short{n}.wav", "too short to separate", f"{n} sample{'s' if n > 1 else ''} at 44100 Hz")
    assert "1 separated, 0 skipped, 2 failed" in err


def test_item19_option_messages(tmp_path, song_wav, tiny_model_dir, capsys):
    for argv, message in (
        (["separate", str(song_wav), "--threads", "0"], "argument --threads: must be a whole number of at least 1, not '0'"),
        (["evaluate", "--data", str(tmp_path), "--system", "mixture", "--out", str(tmp_path / "e"), "--rate", "0"],
         "argument --rate: must be a sample rate in Hz of at least 1000, not '0'"),
        (["separate", str(song_wav), "-j", "two"], "argument -j/--jobs: must be a whole number of at least 1, not 'two'"),
    ):
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["separate", str(song_wav), "-o", str(out), "-m", str(tiny_model_dir), "--format", "flac", "--bit-depth", "float"]) == 2
    one_error_line(capsys.readouterr().err, "FLAC stores at most 24-bit")
    assert not out.exists()


@pytest.mark.parametrize("template", ["{track.__class__}/{stem}.{ext}", "{track[0]}/{stem}.{ext}", "{track!r}/{stem}.{ext}",
                                      "{stem:>20}.{ext}", "{track}/{0}.{ext}", "{}/{stem}.{ext}"])
def test_item20_only_the_documented_template_fields(tmp_path, song_wav, tiny_model_dir, capsys, template):
    out = tmp_path / "out"
    assert main(["separate", str(song_wav), "-o", str(out), "-m", str(tiny_model_dir), "--filename", template]) == 2
    one_error_line(capsys.readouterr().err, "invalid --filename template", "use {track}, {stem} and {ext}")
    assert not out.exists()


# -- 7, 8: workers die with their parent; SIGTERM like SIGINT; stale temporary files cleaned

def _gone(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` has ended (or is a zombie) within ``seconds``."""
    import time

    end = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


POOL_PARENT = """
import os, sys, time
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from vocalsep._workers import die_with_parent

def work():
    time.sleep(120)

if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=die_with_parent, initargs=(os.getpid(),))
    pool.submit(work)
    while not pool._processes:
        time.sleep(0.05)
    print(next(iter(pool._processes)), flush=True)
    time.sleep(120)
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_item07_workers_die_with_their_parent(tmp_path):
    import signal
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(POOL_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker, started = None, None
    try:
        worker = int(parent.stdout.readline())
        started = start_time(worker)
        assert not _gone(worker, 1.0)  # the worker is up (its initializer ran, or is about to)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _gone(worker, 10.0), "the worker outlived its killed parent"
    finally:
        parent.kill()
        parent.wait()
        if worker is not None:  # whatever this test started must not outlive it
            kill_processes([(worker, started)])


def test_item07_every_pool_makes_its_workers_die_with_it():
    import inspect

    from vocalsep.cli import separate as cli_separate
    from vocalsep.evaluation import run as evaluation_run
    from vocalsep.mining import run as mining_run

    for source in (inspect.getsource(cli_separate._worker_init), inspect.getsource(evaluation_run._worker_init), inspect.getsource(mining_run._pool)):
        assert "die_with_parent" in source


def test_item08_sigterm_discards_the_partial_outputs(tmp_path, tiny_model_dir, capsys, monkeypatch):
    import signal

    from vocalsep.audio import AudioWriter

    song = _wav(tmp_path / "in" / "song.wav", seconds=3.0)
    real = AudioWriter.write

    def write_then_get_terminated(self, block):
        real(self, block)
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` would, halfway through

    monkeypatch.setattr(AudioWriter, "write", write_then_get_terminated)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "out"
    assert main(["separate", str(song), "-o", str(out), "-m", str(tiny_model_dir)]) == 143
    assert "vocalsep: terminated" in capsys.readouterr().err
    assert _files(out) == []  # no stem, no hidden .part, no empty folder
    assert signal.getsignal(signal.SIGTERM) == before


def test_item08_stale_temporary_files_are_removed(tmp_path, tiny_model_dir):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    out = tmp_path / "out"
    (out / "song").mkdir(parents=True)
    stale = out / "song" / f".vocals.wav.{dead}-abcd1234.part"
    live = out / "song" / ".vocals.wav.1-abcd1234.part"  # pid 1 runs: its file may be in use
    other = out / "song" / f".notes.txt.{dead}-abcd1234.part"  # not one of the outputs
    for p in (stale, live, other):
        p.write_bytes(b"half a file")
    song = _wav(tmp_path / "in" / "song.wav")
    assert main(["separate", str(song), "-o", str(out), "-m", str(tiny_model_dir)]) == 0
    assert not stale.exists() and live.exists() and other.exists()


# -- 18: a full disk says so, naming the file

FSIZE_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
from vocalsep.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_item18_write_errors_give_the_systems_reason(tmp_path, tiny_model_dir):
    import subprocess
    import sys

    song = _wav(tmp_path / "in" / "song.wav", seconds=3.0, rate=44100)
    small = _wav(tmp_path / "in" / "small.wav", seconds=0.2)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", FSIZE_LIMITED, "separate", str(song), str(small), "-o", str(out), "-m", str(tiny_model_dir),
                        "--bit-depth", "float"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    line = one_error_line(r.stderr, "cannot write", "File too large")
    assert str(out / "song") in line and "LibsndfileError" not in line
    assert _files(out) == ["small", "small/accompaniment.wav", "small/vocals.wav"]


def test_item18_the_reason_of_a_full_disk(tmp_path, monkeypatch):
    """No full disk in a test: libsndfile's own text for one is what reaches the user."""
    import soundfile

    from vocalsep.audio import AudioWriter
    from vocalsep.errors import OutputError

    w = AudioWriter(tmp_path / "vocals.wav", 8000, 1)
    class Lib:  # libsndfile, as it answers after a write that found the disk full
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def sf_strerror(handle):
            return soundfile._ffi.new("char[]", b"System error : No space left on device.")

    real = soundfile._snd
    monkeypatch.setattr(soundfile, "_snd", Lib())
    monkeypatch.setattr(soundfile.SoundFile, "write", lambda self, data: (_ for _ in ()).throw(soundfile.LibsndfileError(2)))
    with pytest.raises(OutputError) as err:
        w.write(np.zeros((1, 100), np.float32))
    assert str(err.value) == f"{tmp_path / 'vocals.wav'}: cannot write: No space left on device"
    w.discard()
    assert _files(tmp_path) == []


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_item07_separate_workers_die_when_the_command_is_killed(tmp_path):
    """The real command: kill -9 it while two workers separate long files; they must not finish them."""
    import signal
    import subprocess
    import sys
    import time

    for k in range(4):
        _wav(tmp_path / "in" / f"long{k}.wav", audio=np.tile(synth_song(10.0, 8000, channels=1), (1, 30)))  # 5 minutes each
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vocalsep", "separate", str(tmp_path / "in"), "-o", str(out), "-j", "2", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[tuple[int, str]] = []
    try:
        end = time.monotonic() + 240
        while not list(out.rglob("*.part")) and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.2)
        workers = children(proc.pid)
        assert list(out.rglob("*.part")) and workers, "the workers never started writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert all(_gone(w, 10.0) for w, _ in workers), "workers outlived the killed command"
        assert not list(out.rglob("*.wav")), "a worker finished a file after the command was killed"
    finally:
        proc.kill()
        proc.wait()
        kill_processes(workers)  # whatever this test started must not outlive it
