"""``vocalsep evaluate``: per-track files, summaries, figures, resume, the CLI, on tiny synthetic stem folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from vocalsep.cli import main
from vocalsep.evaluation import evaluate
from vocalsep.evaluation.run import EvalConfig, TrackScorer, list_tracks, vocal_activity

RATE = 8000
PNG = b"\x89PNG\r\n\x1a\n"


def _write(path, x):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(x, np.float32).T, RATE, subtype="FLOAT")


@pytest.fixture
def synth(tmp_path):
    """Stem folders ``data/songN`` (song2 has no voice) and two estimate folders:
    ``near`` (references plus a little leakage) and ``noisy`` (plenty of it; song1 is missing)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * RATE)) / RATE
    for i in range(3):
        voc = 0.3 * np.sin(2 * np.pi * (220 + 50 * i) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        voc = np.stack([voc, 0.8 * voc]) * (i != 2)
        acc = 0.2 * rng.standard_normal((2, t.size))
        _write(tmp_path / "data" / f"song{i}" / "vocals.wav", voc)
        _write(tmp_path / "data" / f"song{i}" / "accompaniment.wav", acc)
        noise = 0.2 * rng.standard_normal((2, t.size))
        for name, k in (("near", 0.01), ("noisy", 1.0)):
            if name == "noisy" and i == 1:
                continue
            _write(tmp_path / name / f"song{i}" / "vocals.wav", voc + k * noise)
            _write(tmp_path / name / f"song{i}" / "accompaniment.wav", acc - k * noise)
    return tmp_path


def _cfg(root, *systems, **kw):
    return dict(data=str(root / "data"), systems=systems, out=str(root / "out"), rate=RATE, jobs=1, **kw)


def test_per_track_files_summary_and_figures(synth):
    summary = evaluate(**_cfg(synth, f"near={synth / 'near'}", f"noisy={synth / 'noisy'}", "mixture", "oracle"))
    out = synth / "out"
    for i in range(3):
        assert (out / "tracks" / f"song{i}.json").is_file() and (out / "tracks" / f"song{i}.csv").is_file()
    song0 = json.loads((out / "tracks" / "song0.json").read_text())
    sys0 = song0["systems"]
    assert sys0["mixture"]["targets"]["vocals"]["nsdr"] == 0.0 and sys0["mixture"]["targets"]["accompaniment"]["nsdr"] == 0.0
    assert sys0["near"]["targets"]["vocals"]["sdr"] > sys0["noisy"]["targets"]["vocals"]["sdr"] + 20
    assert sys0["oracle"]["targets"]["vocals"]["nsdr"] > 5
    # the silent voice: excluded with its reason, in no mean
    song2 = json.loads((out / "tracks" / "song2.json").read_text())
    assert song2["status"] == "excluded" and "all zeros" in song2["reason"]
    assert summary["tracks"]["scored"] == 2 and summary["tracks"]["excluded"][0]["track"] == "song2"
    # the missing estimate: one failure naming the file, the other systems still scored on that track
    assert [(f["track"], f["system"]) for f in summary["failures"]] == [("song1", "noisy")]
    assert "noisy/song1/vocals.wav" in summary["failures"][0]["reason"]
    song1 = json.loads((out / "tracks" / "song1.json").read_text())
    assert song1["systems"]["near"]["status"] == "scored"
    stats = summary["stats"]
    assert stats["noisy"]["vocals"]["tracks"] == 1 and stats["noisy"]["vocals"]["failed"] == 1
    assert stats["near"]["vocals"]["nsdr"]["mean"] > stats["noisy"]["vocals"]["nsdr"]["mean"]
    assert stats["mixture"]["accompaniment"]["nsdr"]["max"] == 0.0
    md = (out / "summary.md").read_text()
    assert "BSS Eval v3 sources" in md and "mean NSDR (dB)" in md and "| near |" in md and "Tables 4 and 5" in md
    scores = (out / "scores.csv").read_text().splitlines()
    assert scores[0].startswith("track,group,seconds,system,target,sdr")
    assert len(scores) == 1 + 2 * 4 * 2  # 2 scored tracks x 4 systems x 2 targets
    figures = sorted((out / "figures").glob("*.png"))
    assert [f.name for f in figures] == ["masks_song0.png", "nsdr_boxplot.png"]
    for f in figures:
        assert f.read_bytes().startswith(PNG) and f.stat().st_size > 10_000
    assert summary["timing"]["scoring"] > 0 and "separation" in md


def test_resume_scores_only_what_is_missing(synth, monkeypatch):
    evaluate(**_cfg(synth, "mixture", f"near={synth / 'near'}"))
    before = {p.name: p.stat().st_mtime_ns for p in (synth / "out" / "tracks").glob("*.json")}
    calls = []
    original = TrackScorer.score

    def spy(self, name, todo):
        calls.append((name, tuple(todo)))
        return original(self, name, todo)

    monkeypatch.setattr(TrackScorer, "score", spy)
    evaluate(**_cfg(synth, "mixture", f"near={synth / 'near'}"))
    assert calls == []
    assert before == {p.name: p.stat().st_mtime_ns for p in (synth / "out" / "tracks").glob("*.json")}
    summary = evaluate(**_cfg(synth, "mixture", f"near={synth / 'near'}", "oracle"))
    assert sorted(calls) == [("song0", ("oracle",)), ("song1", ("oracle",))]  # song2 stays excluded
    assert summary["stats"]["oracle"]["vocals"]["tracks"] == 2 and summary["stats"]["near"]["vocals"]["tracks"] == 2
    # replaced estimates (same folder, new files) are scored again, not taken from the stored scores
    calls.clear()
    _write(synth / "near" / "song0" / "vocals.wav", 0.5 * sf.read(synth / "near" / "song0" / "vocals.wav", always_2d=True)[0].T)
    evaluate(**_cfg(synth, "mixture", f"near={synth / 'near'}", "oracle"))
    assert sorted(calls) == [("song0", ("near",)), ("song1", ("near",))]


def test_model_system_and_museval_metric(synth, tiny_model_dir):
    summary = evaluate(**_cfg(synth, f"tiny={tiny_model_dir}", "mixture", metric="museval", tracks=("song0",)))
    song0 = json.loads((synth / "out" / "tracks" / "song0.json").read_text())
    tiny = song0["systems"]["tiny"]
    assert tiny["status"] == "scored" and len(tiny["targets"]["vocals"]["frames"]["sdr"]) == 1  # 1.5 s: one full 1 s window
    assert song0["channels"] == 2  # museval scores the stereo images
    assert song0["systems"]["mixture"]["targets"]["vocals"]["nsdr"] == 0.0
    assert np.isfinite(tiny["targets"]["vocals"]["isr"])
    assert "BSS Eval v4 images" in summary["variant"] and "median ISR (dB)" in (synth / "out" / "summary.md").read_text()


def test_cli_end_to_end_with_report(synth, capsys):
    report = synth / "docs" / "results.md"
    args = ["evaluate", "--data", str(synth / "data"), "--rate", str(RATE), "--system", f"near={synth / 'near'}",
            "--system", "mixture", "--system", "oracle", "--out", str(synth / "out"), "--jobs", "1", "--report", str(report)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "| oracle |" in captured.out and "2 tracks scored, 1 excluded" in captured.err
    text = report.read_text()
    assert "vocalsep evaluate --data" in text and "--system oracle" in text
    assert "![" in text and "(results/nsdr_boxplot.png)" in text and "(results/masks_song0.png)" in text
    assert (report.parent / "results" / "nsdr_boxplot.png").read_bytes().startswith(PNG)
    # another metric into the same folder is refused (exit 2, one line) unless --force
    assert main([*args, "--metric", "museval", "--tracks", "song0"]) == 2
    assert "another setup" in capsys.readouterr().err
    # a failed estimate: exit code 1, the file named on one line
    args_bad = [*args[:-2], "--system", f"noisy={synth / 'noisy'}", "-q"]
    assert main(args_bad) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "noisy/song1/vocals.wav: missing estimate" in err[0]


def test_bad_system_specs_are_usage_errors(synth, capsys):
    base = ["evaluate", "--data", str(synth / "data"), "--out", str(synth / "out")]
    assert main([*base, "--system", "x"]) == 2
    assert main([*base, "--system", "mixture", "--system", "mixture"]) == 2
    assert main([*base, "--system", "m=no/such/model.safetensors"]) == 2
    assert main([*base, "--system", "mixture", "--singers", "nobody"]) == 2
    err = capsys.readouterr().err
    assert "expected NAME=MODEL" in err and "more than once" in err and "no such model" in err and "nobody" in err


def test_models_that_cannot_run_together_stop_the_pool_with_one_line(synth, tiny_model_dir, capsys):
    """A model system that cannot load fails before the worker pool starts (which
    would otherwise die in its initializer with a BrokenProcessPool traceback)."""
    from dataclasses import replace

    from conftest import TINY, make_models
    from vocalsep.checkpoint import save_checkpoint

    other = replace(TINY, unet=replace(TINY.unet, channels=TINY.unet.channels[:-1], dropout_layers=1))
    acc = synth / "other-acc.safetensors"
    save_checkpoint(acc, make_models(other)["accompaniment"], target="accompaniment", preset=other)
    args = ["evaluate", "--data", str(synth / "data"), "--rate", str(RATE), "--out", str(synth / "out"), "--jobs", "2", "-q",
            "--system", f"pair={tiny_model_dir / 'vocals.safetensors'},{acc}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different presets" in err[0] and "Traceback" not in err[0]
    assert not (synth / "out" / "tracks").exists() or not any((synth / "out" / "tracks").iterdir())


def test_mir1k_is_scored_per_clip_with_labels(data_dir, tmp_path):
    cfg = EvalConfig(data=str(data_dir / "mir1k"), systems=("mixture", "oracle"), out=str(tmp_path / "out"), groups=("abjones",), limit=1, jobs=1)
    (track,) = list_tracks(cfg)
    assert track.name.startswith("abjones_") and track.name.count("_") == 2  # a clip, not a joined song
    refs = track.load(16000)
    activity = vocal_activity(track, refs["vocals"], 16000)
    assert activity["source"] == "labels" and activity["counts"]
    summary = evaluate(cfg)
    assert summary["setup"]["rate"] == 16000 and summary["tracks"]["scored"] == 1
    assert summary["stats"]["oracle"]["vocals"]["nsdr"]["mean"] > 3


def test_energy_rule_without_labels():
    class Unlabelled:
        def vocal_activity(self, rate, samples):
            return None

    quiet = np.full((1, 8000), 10 ** (-70 / 20))  # -70 dBFS: below the -60 dBFS threshold
    loud = np.zeros((1, 8000))
    loud[0, :4800] = 0.1  # 0.6 s above it
    assert not vocal_activity(Unlabelled(), quiet, 8000)["counts"]
    act = vocal_activity(Unlabelled(), loud, 8000)
    assert act["source"] == "energy" and act["counts"] and act["voiced_seconds"] == pytest.approx(0.6)


def test_process_pool_gives_the_same_scores(synth):
    one = evaluate(**_cfg(synth, f"near={synth / 'near'}", "mixture"))
    pooled = evaluate(**{**_cfg(synth, f"near={synth / 'near'}", "mixture"), "out": str(synth / "pooled"), "jobs": 2})
    assert pooled["tracks"]["scored"] == one["tracks"]["scored"] == 2
    assert pooled["stats"]["near"]["vocals"]["nsdr"] == one["stats"]["near"]["vocals"]["nsdr"]
    assert sorted(p.name for p in (synth / "pooled" / "tracks").glob("*.json")) == ["song0.json", "song1.json", "song2.json"]


def test_oracle_with_shifts_averages_the_framings(synth):
    """``--shifts N`` gives the oracle the separator's rule: the ideal masks of each delayed framing
    (mixture and references delayed alike), averaged; the command line records the option."""
    from vocalsep.config import get_preset
    from vocalsep.evaluation.systems import OracleSystem, SystemSpec
    from vocalsep.separator import SeparationOptions, delay, shift_offsets

    JANSSON2017 = get_preset("jansson2017")
    rng = np.random.default_rng(1)
    voc = rng.standard_normal((1, 16000)).astype(np.float32) * 0.1
    acc = rng.standard_normal((1, 16000)).astype(np.float32) * 0.1
    refs = {"vocals": voc, "accompaniment": acc}
    one = OracleSystem(SystemSpec.parse("oracle"), JANSSON2017, SeparationOptions(fullband="bandlimited"))  # the rule shifts > 1 picks
    three = OracleSystem(SystemSpec.parse("oracle"), JANSSON2017, SeparationOptions(shifts=3))
    got = three.estimate("t", voc + acc, refs, 16000)
    offsets = shift_offsets(JANSSON2017, 3, 16000)
    assert offsets == [0, 500, 1000]  # a third of the 768-sample hop at 8192 Hz, at 16 kHz
    for stem in refs:
        want = sum(one.estimate("t", delay(voc + acc, s), {k: delay(v, s) for k, v in refs.items()}, 16000)[stem][:, s : s + 16000]
                   for s in offsets) / 3
        assert np.allclose(got[stem], want, atol=1e-6)
    out = synth / "out"
    assert main(["evaluate", "--data", str(synth / "data"), "--rate", str(RATE), "--system", "oracle", "--shifts", "2",
                 "--out", str(out), "--jobs", "1", "-q", "--tracks", "song0"]) == 0
    assert "--shifts 2" in (out / "summary.md").read_text()
    assert main(["evaluate", "--data", str(synth / "data"), "--system", "oracle", "--shifts", "0", "--out", str(out)]) == 2


def test_item02_mask_figure_of_an_estimates_folder_longer_than_the_excerpt(tmp_path, capsys):
    """Issue 24, item 2: the excerpt of the references was compared with the whole estimate (exit 2, no summary)."""
    rng = np.random.default_rng(1)
    t = np.arange(int(3.0 * RATE)) / RATE  # longer than the excerpt (1 s) + 1 s
    voc = np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2)
    acc = 0.2 * rng.standard_normal((2, t.size))
    _write(tmp_path / "data" / "song" / "vocals.wav", voc)
    _write(tmp_path / "data" / "song" / "accompaniment.wav", acc)
    _write(tmp_path / "est" / "song" / "vocals.wav", voc + 0.01 * acc)
    _write(tmp_path / "est" / "song" / "accompaniment.wav", 0.99 * acc)
    out = tmp_path / "out"
    code = main(["-q", "evaluate", "--data", str(tmp_path / "data"), "--system", f"est={tmp_path / 'est'}", "--system", "mixture",
                 "--out", str(out), "--rate", str(RATE), "-j", "1", "--excerpt", "1"])
    assert code == 0, capsys.readouterr().err
    assert (out / "summary.json").is_file() and (out / "figures" / "masks_song.png").read_bytes().startswith(PNG)


def test_item16_a_damaged_setup_file_is_one_line(synth, capsys):
    out = synth / "out"
    out.mkdir()
    for text in ("{not json", "[1, 2]", "\udcff".encode("utf-8", "surrogateescape").decode("latin-1")):
        (out / "setup.json").write_text(text, encoding="latin-1")
        code = main(["-q", "evaluate", "--data", str(synth / "data"), "--system", "mixture", "--out", str(out), "--rate", str(RATE), "-j", "1"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and err.count("\n") == 1 and f"{out / 'setup.json'}:" in err, err


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_track_whose_references_cannot_be_read_fails_alone(synth, capsys, jobs):
    """A damaged reference fails its track (one line, every system on it), in the pool too; the other
    tracks are scored and summarised, the exit code is 1, and a later run tries the track again."""
    (synth / "data" / "song1" / "vocals.wav").write_bytes(b"junk" * 100)
    out = synth / "out"
    argv = ["evaluate", "--data", str(synth / "data"), "--system", "mixture", "--system", "oracle", "--out", str(out),
            "--rate", str(RATE), "-j", str(jobs), "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "song1" in err[0] and "vocals.wav: cannot decode" in err[0], err
    song0 = json.loads((out / "tracks" / "song0.json").read_text())
    assert song0["systems"]["oracle"]["status"] == "scored"
    song1 = json.loads((out / "tracks" / "song1.json").read_text())
    assert song1["status"] == "excluded" and song1["systems"]["oracle"]["status"] == "failed"
    assert (out / "summary.json").is_file()
    _write(synth / "data" / "song1" / "vocals.wav", 0.3 * np.ones((2, int(1.5 * RATE))) * np.sin(np.arange(int(1.5 * RATE)) / 5))
    assert main(argv) == 0  # mended: scored now
    assert json.loads((out / "tracks" / "song1.json").read_text())["systems"]["oracle"]["status"] == "scored"


def test_what_the_outputs_ask_for_is_checked_before_scoring(synth, capsys):
    (synth / "afile").write_text("x")
    base = ["evaluate", "--data", str(synth / "data"), "--system", "mixture", "--rate", str(RATE), "-j", "1", "-q"]
    for extra, said in ((["--figure-track", "nope"], "--figure-track 'nope': no such track"),
                        (["--mask-systems", "nope"], "--mask-systems nope: not among the evaluated systems"),
                        (["--report", str(synth / "afile" / "r.md")], "is a file, not a folder")):
        assert main([*base, "--out", str(synth / "out"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0], err
        assert not (synth / "out").exists()  # nothing scored, nothing written
    assert main([*base, "--out", str(synth / "afile")]) == 2
    assert "afile is a file, not a folder" in capsys.readouterr().err


def test_stems_of_different_lengths_fail_their_track(synth, capsys):
    """A vocals file much shorter than its accompaniment (a wrong or cut file) is not scored on the shortest."""
    _write(synth / "data" / "song0" / "vocals.wav", 0.3 * np.ones((2, int(0.3 * RATE))))
    argv = ["evaluate", "--data", str(synth / "data"), "--system", "oracle", "--out", str(synth / "out"), "--rate", str(RATE), "-j", "1", "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "song0: its stems differ in length (vocals 0.3 s, accompaniment 1.5 s)" in err, err
    assert json.loads((synth / "out" / "tracks" / "song1.json").read_text())["systems"]["oracle"]["status"] == "scored"
