"""vocalsep mine: catalogue reading, metadata candidates, alignment, the whole run, the command line.

Most tests use synthetic songs (a sung melody in phrases over drums and
chords) written to tmp_path; one uses MIR-1K from the shared data when present.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vocalsep.audio import AudioWriter, save
from vocalsep.data import open_dataset
from vocalsep.mining import AlignConfig, Entry, MatchConfig, MineConfig, align_pair, find_candidates, mine, normalise_artist, parse_title, read_catalog
from vocalsep.mining.synthetic import Song, build_catalogue, score_mining, sdr, vocal_target

SR = 16000


def toy_song(seed: int, seconds: float = 12.0, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """(voice, accompaniment), each float32 ``(1, samples)``: phrases of a vibrato melody with gaps; drums on a random tempo and chords."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    beat = 60 / rng.uniform(80, 140)
    acc = np.zeros(n)
    for k in range(int(seconds / beat)):
        s = int(k * beat * sr)
        m = min(int(0.15 * sr), n - s)
        acc[s : s + m] += rng.uniform(0.3, 1.0) * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.03 * sr))
    roots = rng.choice([110, 123.5, 130.8, 146.8, 164.8, 174.6, 196, 220], size=int(seconds / (2 * beat)) + 1)
    phase = 2 * np.pi * np.cumsum(roots[(t / (2 * beat)).astype(int)]) / sr
    acc += 0.3 * (np.sin(phase) + 0.5 * np.sin(1.26 * phase) + 0.5 * np.sin(1.5 * phase))
    f0, amp, pos = np.zeros(n), np.zeros(n), 0.5
    while pos < seconds - 0.5:
        length = rng.uniform(1.5, 3.5)
        notes = rng.uniform(220, 440, size=int(length / 0.4) + 1)
        seg = np.arange(int(pos * sr), min(int((pos + length) * sr), n))
        f0[seg] = notes[((seg - seg[0]) / sr / 0.4).astype(int)] * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * t[seg]))
        amp[seg] = np.sin(np.pi * (seg - seg[0]) / seg.size) ** 0.3
        pos += length + rng.uniform(0.3, 1.2)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = amp * sum(np.sin(k * phase) / k**1.2 for k in range(1, 10))
    voice *= 0.8 * np.sqrt(np.mean(acc**2)) / np.sqrt(np.mean(voice**2))
    peak = np.abs(voice + acc).max() / 0.5
    return (voice / peak)[None].astype(np.float32), (acc / peak)[None].astype(np.float32)


def toy_songs(count: int, seconds: float = 12.0) -> list[Song]:
    artists = ("Amy", "Leon", "Ariel")
    return [Song(f"song{i}", artists[i % 3], *toy_song(i, seconds), SR) for i in range(count)]


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """A synthetic catalogue of 9 songs with distractors, mined serially once: (folder, truth, report)."""
    root = tmp_path_factory.mktemp("mine")
    truth = build_catalogue(toy_songs(9), root / "catalogue", seed=1)
    report = mine(MineConfig(str(root / "catalogue" / "catalog.csv"), str(root / "out"), jobs=1))
    return root, truth, report


# -- metadata

def test_artist_and_title_normalisation():
    assert normalise_artist("The Béatles feat. Billy Preston") == normalise_artist("BEATLES") == "beatles"
    assert normalise_artist("Simon & Garfunkel") == normalise_artist("simon and garfunkel")
    cfg = MatchConfig()
    for title in ("Yesterday (Instrumental)", "Yesterday - Instrumental Version", "Yesterday (Inst.)", "Yesterday [Off Vocal]",
                  "Yesterday (Karaoke Version)", "Yesterday (Version instrumentale)", "Yesterday (伴奏)", "Yesterday (Versión Instrumental)",
                  "Yesterday Instrumental", "Yesterday (feat. X) [Instrumental]"):
        t = parse_title(title, cfg)
        assert t.instrumental and t.base == "yesterday" and not t.tags, title
    assert parse_title("Instrumental", cfg).instrumental is False  # a song called "Instrumental"
    assert parse_title("Yesterday (Live at Wembley)", cfg).tags == {"live"}
    assert parse_title("Yesterday - 2009 Remaster", cfg).tags == {"remaster:2009"}
    assert parse_title("Yesterday (Radio Edit) [Instrumental]", cfg).tags == {"edit"}
    assert parse_title("Yesterday (Original Mix)", cfg).tags == frozenset()
    assert parse_title("Yesterday (Acapella)", cfg).tags == {"acappella"}


def _entries(*rows) -> list[Entry]:
    return [Entry(i + 1, artist, title, Path(f"/x/{i}.flac"), duration) for i, (artist, title, duration) in enumerate(rows)]


def test_candidates_by_metadata_and_their_rejections():
    entries = _entries(
        ("Amy", "Golden River", 200.0),                      # 1 original
        ("AMY feat. Leon", "Golden River (Instrumental)", 201.5),  # 2 instrumental: pairs with 1
        ("Amy", "Golden River (Live)", 230.0),               # 3 live: rejected against 2
        ("Amy", "Golden River (Instrumental)", 215.0),       # 4 an extended instrumental: duration
        ("Amy", "Golden River - 2011 Remaster", 200.0),      # 5 remaster of another year
        ("Amy", "Silent Harbor", 180.0),                     # 6 unrelated title: never a candidate with 2
        ("Leon", "Golden River", 200.0),                     # 7 another artist
        ("Amy", "Golden River (A Cappella)", 200.0),         # 8 never a partner
    )
    result = find_candidates(entries, MatchConfig())
    assert [(c.original.index, c.instrumental.index) for c in result.candidates] == [(1, 2)]
    reasons = {(c.original.index, c.instrumental.index): r for c, r in result.rejected}
    assert "live" in reasons[(3, 2)] and "remaster:2011" in reasons[(5, 2)] and "a cappella" in reasons[(8, 2)]
    assert "durations differ by 15.0 s" in reasons[(1, 4)]
    assert not any(6 in k or 7 in k for k in reasons)
    assert [e.index for e in result.unmatched] == [4]
    assert result.instrumentals == 2 and result.originals == 6
    # configurable: a wider tolerance, allowed remasters, a stricter title threshold, own markers
    wide = find_candidates(entries, MatchConfig(duration_tolerance=20, allow=frozenset({"remaster"})))
    assert {(c.original.index, c.instrumental.index) for c in wide.candidates} == {(1, 2), (1, 4), (5, 2), (5, 4)}
    assert not find_candidates(_entries(("A", "Love Song", 100.0), ("A", "Love Songs (Instrumental)", 100.0)), MatchConfig(title_threshold=99)).candidates
    own = find_candidates(_entries(("A", "Song", 100.0), ("A", "Song (Backing Version)", 100.0)), MatchConfig(markers=("backing version",)))
    assert len(own.candidates) == 1
    with pytest.raises(ValueError, match="unknown look-alike"):
        MatchConfig(allow=frozenset({"karaoke"}))


# -- catalogues

def test_read_catalog_csv_and_jsonl(tmp_path):
    a = save(tmp_path / "a.flac", toy_song(0, 3.0)[1], SR)
    rows = [("artist", "title", "duration", "path"), ("Amy", "Song", "0:03", "a.flac"), ("Amy", "Song (Inst.)", "", str(a)),
            ("Amy", "Gone", "3", "missing.mp3"), ("", "No Artist", "3", "a.flac"), ("Amy", "Bad", "-1", "a.flac")]
    with open(tmp_path / "cat.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    entries, problems = read_catalog(tmp_path / "cat.csv")
    assert [e.title for e in entries] == ["Song", "Song (Inst.)"] and entries[0].path == a.resolve()
    assert entries[0].duration == 3.0 and abs(entries[1].duration - 3.0) < 1e-6  # m:ss, and read from the header
    assert len(problems) == 3 and "line 4: no such audio file 'missing.mp3'" in problems[0]
    assert "missing artist" in problems[1] and "duration" in problems[2]
    lines = [json.dumps({"artist": "Amy", "title": "Song", "path": "a.flac", "isrc": "XX1"}), "{not json", json.dumps([1])]
    (tmp_path / "cat.jsonl").write_text("\n".join(lines) + "\n")
    entries, problems = read_catalog(tmp_path / "cat.jsonl")
    assert entries[0].isrc == "XX1" and len(problems) == 2 and "line 2: not JSON" in problems[0]
    (tmp_path / "bad.csv").write_text("name,file\nx,y\n")
    with pytest.raises(ValueError, match="artist, title and path columns"):
        read_catalog(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="unknown catalogue format"):
        read_catalog(a)


def test_read_catalog_folder_of_tagged_files(tmp_path):
    from mutagen.easyid3 import EasyID3
    from mutagen.flac import FLAC

    _, acc = toy_song(0, 3.0)
    save(tmp_path / "lib" / "one.flac", acc, SR)
    tags = FLAC(tmp_path / "lib" / "one.flac")
    tags.update({"artist": "Amy", "title": "Song", "album": "LP", "isrc": "US123"})
    tags.save()
    with AudioWriter(tmp_path / "lib" / "sub" / "two.mp3", SR, 1, fmt="mp3") as w:
        w.write(acc)
    mp3 = EasyID3()
    mp3.update({"artist": "Amy", "title": "Song (Instrumental)"})
    mp3.save(tmp_path / "lib" / "sub" / "two.mp3")
    save(tmp_path / "lib" / "Leon - Untagged.wav", acc, SR)
    save(tmp_path / "lib" / "notags.wav", acc, SR)
    entries, problems = read_catalog(tmp_path / "lib")
    by_title = {e.title: e for e in entries}
    assert set(by_title) == {"Song", "Song (Instrumental)", "Untagged"}
    assert by_title["Song"].isrc == "US123" and by_title["Untagged"].artist == "Leon"
    assert abs(by_title["Song (Instrumental)"].duration - 3.0) < 0.1
    assert len(problems) == 1 and "notags.wav" in problems[0] and "missing artist, title" in problems[0]


# -- audio

def _instrumental(acc: np.ndarray, lag: int, gain: float) -> np.ndarray:
    return (np.concatenate([np.zeros((1, lag), np.float32), acc], axis=1)[:, : acc.shape[1]] if lag >= 0 else
            np.pad(acc[:, -lag:], ((0, 0), (0, -lag)))) * gain


def test_align_pair_finds_offset_and_gain_to_the_sample(tmp_path):
    voice, acc = toy_song(3)
    orig = save(tmp_path / "orig.flac", voice + acc, SR, bit_depth="24")
    for lag, gain in ((12345, 0.5), (-20001, 1.6)):
        inst = save(tmp_path / f"inst{lag}.wav", _instrumental(acc, lag, gain), SR, bit_depth="float")
        r = align_pair(orig, inst)
        assert r["status"] == "accepted", r
        assert r["offset_samples"] == lag and r["offset"] == lag / SR
        assert abs(r["gain_db"] - 20 * np.log10(1 / gain)) < 0.05
        assert r["residual_db"] < -40 and 0.5 < r["vocal_activity"] < 0.95 and r["confidence"] > 0.99
    # the alignment is the manifest's: x ~ gain * y[t + offset]
    with open(tmp_path / "pairs.csv", "w", newline="") as f:
        csv.writer(f).writerows([("original", "instrumental", "offset", "gain"), (orig.name, inst.name, repr(r["offset"]), r["gain"])])
    x = open_dataset(tmp_path / "pairs.csv", "pairs").tracks[0].load(SR)
    start, n = -lag, x["mixture"].shape[1]  # before `start` the instrumental has no audio
    assert sdr(voice[0, start:n], x["mixture"][0, start:] - x["accompaniment"][0, start:]) > 35


def test_align_pair_rejects_copies_and_strangers(tmp_path):
    voice, acc = toy_song(4)
    orig = save(tmp_path / "orig.flac", voice + acc, SR)
    with AudioWriter(tmp_path / "copy.mp3", SR, 1, fmt="mp3") as w:
        w.write(voice + acc)
    same = align_pair(orig, tmp_path / "copy.mp3")
    assert same["status"] == "rejected" and "same audio as the original" in same["reason"] and same["vocal_activity"] < 0.03
    other = save(tmp_path / "other.flac", toy_song(5)[1], SR)
    stranger = align_pair(orig, other)
    assert stranger["status"] == "rejected" and stranger["confidence"] < 0.5
    strict = align_pair(orig, save(tmp_path / "inst.flac", acc * 0.7, SR), AlignConfig(max_residual_db=-80))
    assert strict["status"] == "rejected" and "residual" in strict["reason"]
    (tmp_path / "empty.mp3").write_bytes(b"")
    failed = align_pair(orig, tmp_path / "empty.mp3")
    assert failed["status"] == "failed" and "empty.mp3" in failed["reason"] and "empty" in failed["reason"]


# -- the whole run

def test_mine_synthetic_catalogue(mined):
    root, truth, report = mined
    scores = score_mining(root / "out", truth)
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0, scores
    for p in scores["per_pair"]:
        assert abs(p["offset_error_ms"]) <= 1000 / SR, p  # to the sample
        assert abs(p["gain_error_db"]) < 0.6, p  # the MP3 encoder's level change included
        assert p["sdr_mined"] > p["sdr_true_alignment"] - 0.3, p
    c = report["counts"]
    assert c["accepted"] == len(truth["pairs"]) and c["metadata_rejected"] > 0 and c["content_pruned"] > 0 and c["audio_rejected"] > 0
    assert report["failed"] == 0
    reasons = " ".join(r["reason"] for r in report["rejected"])
    for words in ("look-alike: original tagged live", "durations differ", "same content hash", "duplicate of pair", "same audio as the original",
                  "residual"):
        assert words in reasons, words
    md = (root / "out" / "report.md").read_text()
    assert "| pairs accepted (in pairs.csv) |" in md and "same content hash" in md
    assert json.loads((root / "out" / "report.json").read_text())["counts"] == c


def test_mined_manifest_is_a_pair_dataset(mined):
    root, truth, _ = mined
    data = open_dataset(root / "out" / "pairs.csv", "pairs")
    assert len(data.tracks) == len(truth["pairs"]) and all(t.kind == "pair" for t in data.tracks)
    assert {t.group for t in data.tracks} == {"amy", "leon", "ariel"}
    voices = {tp["instrumental"]: tp["voice"] for tp in truth["pairs"].values()}
    paths = {e["path"]: e["index"] for e in truth["entries"]}
    with open(root / "out" / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    from vocalsep.audio import load, resample

    for row, track in zip(rows[:3], data.tracks):
        x = track.load(8192)
        v, vr = load(voices[paths[str((root / "out" / row["instrumental"]).resolve())]])
        target = vocal_target(x["mixture"], x["accompaniment"])
        assert sdr(resample(v, vr, 8192)[0], target) > 4.0  # the half-wave rectified difference is close to the voice
        assert sdr(resample(v, vr, 8192)[0], x["mixture"].mean(axis=0)) < 3.0  # and much closer than the mixture


def test_rerun_reuses_results_and_force_recomputes(mined, tmp_path):
    root, _, report = mined
    again = mine(MineConfig(str(root / "catalogue" / "catalog.csv"), str(root / "out"), jobs=1))
    assert again["counts"]["results_reused"] == report["counts"]["files_decoded"] + report["counts"]["aligned"]
    assert again["pairs"] == report["pairs"]
    stored = sorted((root / "out" / ".work" / "pairs").glob("*.json"))
    assert len(stored) == report["counts"]["aligned"] and not list((root / "out").rglob("*.part"))
    stored[0].write_text('{"status": "accepted"')  # a damaged stored result is recomputed
    forced = mine(MineConfig(str(root / "catalogue" / "catalog.csv"), str(root / "out"), jobs=1, force=True))
    assert forced["counts"]["results_reused"] == 0 and forced["pairs"] == report["pairs"]


def test_process_pool_gives_the_serial_result(tmp_path):
    truth = build_catalogue(toy_songs(3, 8.0), tmp_path / "cat", seed=2, distractors=False, without_instrumental_every=0)
    serial = mine(MineConfig(str(tmp_path / "cat" / "catalog.csv"), str(tmp_path / "a"), jobs=1))
    pool = mine(MineConfig(str(tmp_path / "cat" / "catalog.csv"), str(tmp_path / "b"), jobs=2))
    assert len(serial["pairs"]) == len(truth["pairs"]) == 3
    assert [p["offset"] for p in pool["pairs"]] == [p["offset"] for p in serial["pairs"]]


def test_ray_local_instance(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (optional extra: pip install 'vocalsep[ray]')")
    truth = build_catalogue(toy_songs(2, 8.0), tmp_path / "cat", seed=3, distractors=False, without_instrumental_every=0)
    report = mine(MineConfig(str(tmp_path / "cat" / "catalog.csv"), str(tmp_path / "out"), jobs=1, ray="local"))
    assert score_mining(tmp_path / "out", truth, with_sdr=False)["recall"] == 1.0 and report["failed"] == 0


# -- command line

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "vocalsep", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_mine_command_line(tmp_path):
    code = ("import sys; from vocalsep import cli; p = cli.build_parser(); p.parse_args(['mine', 'c.csv', '--out', 'o']); "
            "assert 'numpy' not in sys.modules and 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    build_catalogue(toy_songs(2, 8.0), tmp_path / "cat", seed=4, distractors=False, without_instrumental_every=0)
    catalog = tmp_path / "cat" / "catalog.csv"
    r = run_cli("mine", catalog, "--out", tmp_path / "out", "-j", "1")
    assert r.returncode == 0, r.stderr
    assert "2 accepted" in r.stderr and (tmp_path / "out" / "pairs.csv").is_file()
    with open(catalog, "a") as f:  # a row naming a missing file: reported, the rest still done, exit 1
        f.write("Amy,Lost Song,LP,3.0,audio/missing.mp3\n")
    r = run_cli("mine", catalog, "--out", tmp_path / "out2", "-j", "1", "-q")
    assert r.returncode == 1 and "no such audio file 'audio/missing.mp3'" in r.stderr and r.stderr.count("\n") == 1
    assert len(open_dataset(tmp_path / "out2" / "pairs.csv", "pairs").tracks) == 2
    for bad in (["mine", tmp_path / "nothing.csv", "--out", tmp_path / "o"], ["mine", catalog, "--out", tmp_path / "o", "--allow", "karaoke"],
                ["mine", catalog, "--out", tmp_path / "o", "--title-threshold", "0"], ["mine", catalog]):
        r = run_cli(*bad)
        assert r.returncode == 2 and r.stderr.count("\n") >= 1, (bad, r.stderr)


def test_mine_mir1k(data_dir, tmp_path):
    from vocalsep.data import MIR1K

    tracks = [t for t in MIR1K(data_dir / "mir1k").tracks if t.group in ("amy", "leon")][:3]
    songs = []
    for t in tracks:
        x = t.load(SR)
        songs.append(Song(t.name, t.group.capitalize(), x["vocals"][:, : 20 * SR], x["accompaniment"][:, : 20 * SR], SR))
    truth = build_catalogue(songs, tmp_path / "cat", seed=5, distractors=False, without_instrumental_every=0)
    mine(MineConfig(str(tmp_path / "cat" / "catalog.csv"), str(tmp_path / "out"), jobs=1))
    scores = score_mining(tmp_path / "out", truth)
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0, scores
    for p in scores["per_pair"]:
        assert abs(p["offset_error_ms"]) <= 1000 / SR and p["sdr_mined"] > p["sdr_true_alignment"] - 0.3, p


# -- issue 24: a relative folder (item 3), damaged stored results (16), bad catalogue rows (17)

def test_item03_a_relative_catalogue_folder(tmp_path, monkeypatch):
    _, acc = toy_song(0, 2.0)
    save(tmp_path / "lib" / "Amy - Song.wav", acc, SR)
    save(tmp_path / "lib" / "sub" / "Amy - Song (Instrumental).wav", acc, SR)
    monkeypatch.chdir(tmp_path)
    entries, problems = read_catalog("lib")
    assert problems == [] and sorted(e.title for e in entries) == ["Song", "Song (Instrumental)"]
    assert all(e.path.is_file() and e.path.is_absolute() for e in entries)


def test_item16_stored_results_of_the_wrong_shape_are_computed_again(tmp_path):
    build_catalogue(toy_songs(1, 6.0), tmp_path / "cat", seed=6, distractors=False, without_instrumental_every=0)
    cfg = MineConfig(str(tmp_path / "cat" / "catalog.csv"), str(tmp_path / "out"), jobs=1)
    first = mine(cfg)
    assert len(first["pairs"]) == 1
    stored = sorted((tmp_path / "out" / ".work").rglob("*.json"))
    for path, text in zip(stored, ("{}", '{"status": "ok"}', "[]")):
        path.write_text(text)
    again = mine(cfg)
    assert again["pairs"] == first["pairs"] and again["failed"] == 0


def test_item17_bad_catalogue_rows_are_one_problem_each(tmp_path):
    a = save(tmp_path / "a.flac", toy_song(0, 2.0)[1], SR)
    lines = [b"artist,title,path", b"Amy,Song,a.flac", b"Amy,Caf\xe9 (Instrumental),a.flac", b"Amy,Long," + b"x" * 140000, b"Amy,Song 2,a.flac"]
    (tmp_path / "cat.csv").write_bytes(b"\n".join(lines) + b"\n")
    entries, problems = read_catalog(tmp_path / "cat.csv")
    assert [e.title for e in entries] == ["Song", "Song 2"]
    assert len(problems) == 2 and "line 3: not UTF-8 text (byte 0xe9)" in problems[0] and "line 4: a field is longer than" in problems[1]
    rows = [json.dumps({"artist": "Amy", "title": "Song", "path": "a.flac"}).encode(), b'{"artist": "Amy", "title": "Caf\xe9", "path": "a.flac"}',
            json.dumps({"artist": "Amy", "title": "Song 2", "path": "a.flac"}).encode(), b"[" * 100000 + b"]" * 100000]
    (tmp_path / "cat.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join(rows) + b"\n")
    entries, problems = read_catalog(tmp_path / "cat.jsonl")
    assert [e.title for e in entries] == ["Song", "Song 2"] and entries[0].path == a.resolve()
    assert len(problems) == 2 and "line 2: not UTF-8 text (byte 0xe9 at column 32)" in problems[0] and "line 4: not JSON" in problems[1]


def test_a_broken_row_costs_that_row_alone(tmp_path):
    """An unclosed quote, a duration too large for a float, a path too long for the file system: one
    problem each, naming the line, and the rows after them are still read."""
    save(tmp_path / "a.flac", toy_song(0, 2.0)[1], SR)
    lines = ["artist,title,path,duration", "Amy,Song,a.flac,", 'Bad,"Unclosed,a.flac,', "Amy,Song 2,a.flac,",
             "Amy,Huge,a.flac," + "9" * 400, "Amy,Long," + "x" * 5000 + ".flac,", "Amy,Song 3,a.flac,"]
    (tmp_path / "cat.csv").write_text("\n".join(lines) + "\n")
    entries, problems = read_catalog(tmp_path / "cat.csv")
    assert [e.title for e in entries] == ["Song", "Song 2", "Song 3"], problems
    assert len(problems) == 3
    assert "line 3: an unclosed quote (a catalogue row is one line)" in problems[0]
    assert "line 5: duration must be a positive number of seconds or m:ss" in problems[1]
    assert "line 6: cannot use the path 'xxxx" in problems[2]
    rows = [{"artist": "Amy", "title": "Song", "path": "a.flac", "duration": 10 ** 400},
            {"artist": "Amy", "title": "Song", "path": "a.flac", "duration": True},
            {"artist": "Amy", "title": "Song 2", "path": "a.flac"}]
    (tmp_path / "cat.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    entries, problems = read_catalog(tmp_path / "cat.jsonl")
    assert [e.title for e in entries] == ["Song 2"] and len(problems) == 2
    assert all("duration must be a positive number" in p for p in problems), problems


def test_mine_usage_errors_leave_no_output_folder(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("artist,title,path\n")
    (tmp_path / "afile").write_text("x")
    for catalog, out, said in (("empty.csv", "o1", "needs artist, title and path columns"),
                               ("header.csv", "o2", "lists no usable audio files"),
                               ("header.csv", "afile/o3", "is a file, not a folder"),
                               ("header.csv", "afile", "is a file, not a folder")):
        r = run_cli("mine", tmp_path / catalog, "--out", tmp_path / out, "-q")
        assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "empty.csv", "header.csv"]


# -- issue 24, item 4: real-world instrumental title forms, and the exclusions kept

def test_item04_every_synthetic_title_form_is_an_instrumental_of_its_original():
    from vocalsep.mining.synthetic import MARKER_STYLES, NATIVE_TITLES

    cfg = MatchConfig()
    for title in ("Golden River", "Don't Stop", *NATIVE_TITLES[:6]):
        base = parse_title(title, cfg).base
        for style in MARKER_STYLES:
            t = parse_title(style.format(title), cfg)
            assert t.instrumental and t.base == base and not t.tags, style.format(title)
            found = find_candidates(_entries(("Amy", title, 200.0), ("AMY", style.format(title), 201.0)), cfg)
            assert [(c.original.index, c.instrumental.index) for c in found.candidates] == [(1, 2)], style.format(title)


def test_item04_instrumental_mix_pairs_and_the_look_alikes_do_not():
    cfg = MatchConfig()
    entries = _entries(
        ("Amy", "Golden River", 200.0),                            # 1 original
        ("Amy", "Golden River (Instrumental Mix)", 200.5),         # 2 its instrumental (was taken for a remix)
        ("Amy", "Golden River (Club Remix)", 200.0),               # 3 a remix
        ("Amy", "Golden River (Club Remix) [Instrumental]", 200.0),  # 4 the remix's instrumental: pairs with 3 only
        ("Amy", "Golden River (En Vivo)", 201.0),                  # 5 live, Spanish
        ("Amy", "Golden River (アカペラ)", 200.0),                  # 6 a cappella, Japanese
        ("Amy", "Golden River (TV Size)", 90.0),                   # 7 a TV-size edit
        ("Amy", "Golden River (TVサイズ) (オフボーカル)", 90.5),      # 8 its off-vocal version: pairs with 7 only
        ("Amy", "Golden River 2", 200.0),                          # 9 another song, numbered
        ("Amy", "Golden River (Mr. Oizo Remix)", 230.0),           # 10 "Mr" is not the Korean "MR": an original (a remix)
        ("Amy", "Instant Playback", 200.0),                        # 11 "Playback" ends an ordinary title: an original
        ("Amy", "Golden River (라이브) (Inst.)", 201.0),             # 12 a live instrumental: pairs with the live version 5 only
    )
    found = find_candidates(entries, cfg)
    assert sorted((c.original.index, c.instrumental.index) for c in found.candidates) == [(1, 2), (3, 4), (5, 12), (7, 8)]
    assert found.instrumentals == 4 and not found.unmatched
    reasons = {(c.original.index, c.instrumental.index): r for c, r in found.rejected}
    assert "remix" in reasons[(3, 2)] and "live" in reasons[(5, 2)] and "a cappella" in reasons[(6, 2)] and "remix" in reasons[(1, 4)]
    assert "live" in reasons[(1, 12)] and "durations differ" in reasons[(10, 4)]
    assert not any(9 in k for k in reasons)  # "Part 2" is not a near miss of "Part 1"


def test_item04_title_catalogue_precision_and_recall():
    """The metadata stage on a catalogue of real-world title forms and same-artist distractors (the benchmark's
    --titles-only, smaller): both at least 0.95."""
    from vocalsep.mining.synthetic import score_candidates, title_catalogue

    entries, truth = title_catalogue(60, 5, seed=7)
    scores = score_candidates(find_candidates(entries, MatchConfig()).candidates, truth)
    assert scores["true_pairs"] > 200
    assert scores["precision"] >= 0.95 and scores["recall"] >= 0.95, scores


def _die_on(key: str) -> dict:
    """A task for :func:`run_tasks` whose worker is killed on "kill" (as the out-of-memory killer would)."""
    import os
    import signal
    import time

    if key == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.2)
    return {"status": "done", "key": key}


def test_a_killed_pool_worker_fails_its_items_and_ends_the_run_cleanly():
    from vocalsep.mining.run import run_tasks

    out = dict(run_tasks(_die_on, [("kill", ("kill",)), ("a", ("a",)), ("b", ("b",))], jobs=2))
    assert set(out) == {"kill", "a", "b"}
    assert out["kill"]["status"] == "failed" and "worker process ended" in out["kill"]["reason"]
    for r in out.values():  # what the broken pool still finished is kept; the rest fails with the reason
        assert r["status"] == "done" or "worker process ended" in r["reason"]
