"""Dataset layouts on tiny synthetic fixtures made here."""

import csv

import numpy as np
import pytest
import soundfile as sf

from vocalsep.data import MIR1K, MUSDB, PairManifest, StemFolders, open_dataset, split_tracks
from vocalsep.errors import ConfigError

from conftest import synth_song


def _voice_acc(seconds, sr, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(150, 400)
    voice = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * 0.2
    acc = 0.1 * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * 110 * t)
    return voice.astype(np.float32), acc.astype(np.float32)


def make_mir1k(root, singers=("ann", "bob", "cat"), songs=2, clips=2, seconds=4.0, sr=16000, labels=True):
    (root / "audio").mkdir(parents=True)
    (root / "vocal-nonvocal").mkdir()
    for si, singer in enumerate(singers):
        for song in range(1, songs + 1):
            for clip in range(1, clips + 1):
                v, a = _voice_acc(seconds, sr, si * 100 + song * 10 + clip)
                name = f"{singer}_{song}_{clip:02d}"
                sf.write(root / "audio" / f"{name}.flac", np.stack([a, v], axis=1), sr)
                if labels:
                    n = int(seconds / 0.02)
                    np.savetxt(root / "vocal-nonvocal" / f"{name}.vocal", (np.arange(n) > n // 4).astype(int), fmt="%d")
    return root


def test_mir1k_joins_clips_of_a_song_and_groups_by_singer(tmp_path):
    d = MIR1K(make_mir1k(tmp_path / "mir"))
    assert [t.name for t in d.tracks] == ["ann_1", "ann_2", "bob_1", "bob_2", "cat_1", "cat_2"]
    assert {t.group for t in d.tracks} == {"ann", "bob", "cat"}
    x = d.tracks[0].load(8192)
    assert x["mixture"].shape == (1, 2 * 4 * 8192)
    np.testing.assert_allclose(x["mixture"], x["vocals"] + x["accompaniment"], atol=1e-6)
    act = d.tracks[0].vocal_activity(8192, x["mixture"].shape[1])
    assert act.shape == (2 * 4 * 8192,) and 0.6 < act.mean() < 0.9 and act[0] == 0
    # left channel is the accompaniment, right the voice
    v, a = _voice_acc(4.0, 16000, 0 * 100 + 1 * 10 + 1)
    raw = d.tracks[0].load(16000)
    np.testing.assert_allclose(raw["vocals"][0, : v.size], v, atol=1e-4)


def test_split_is_by_group_and_deterministic(tmp_path):
    tracks = MIR1K(make_mir1k(tmp_path / "mir")).tracks
    train, valid = split_tracks(tracks, ["cat"])
    assert {t.group for t in valid} == {"cat"} and "cat" not in {t.group for t in train}
    a = split_tracks(tracks, valid_fraction=0.3, seed=1)
    b = split_tracks(tracks, valid_fraction=0.3, seed=1)
    assert [t.name for t in a[1]] == [t.name for t in b[1]]
    assert not ({t.group for t in a[0]} & {t.group for t in a[1]})
    with pytest.raises(ConfigError):
        split_tracks(tracks, ["nobody"])


def test_stem_folders_and_musdb_hq(tmp_path):
    root = tmp_path / "stems"
    v, a = _voice_acc(2.0, 22050, 1)
    (root / "one").mkdir(parents=True)
    sf.write(root / "one" / "vocals.wav", v, 22050)
    sf.write(root / "one" / "accompaniment.flac", a, 22050)
    (root / "hq" / "two").mkdir(parents=True)
    for name, x in (("vocals", v), ("drums", a * 0.5), ("bass", a * 0.25), ("other", a * 0.25), ("mixture", v + a)):
        sf.write(root / "hq" / "two" / f"{name}.wav", np.stack([x, x], 1), 22050, subtype="FLOAT")
    d = StemFolders(root)
    assert sorted(t.name for t in d.tracks) == ["hq/two", "one"]
    two = next(t for t in d.tracks if t.name == "hq/two").load(22050)
    np.testing.assert_allclose(two["accompaniment"][0], a, atol=1e-6)
    one = next(t for t in d.tracks if t.name == "one").load(22050)
    np.testing.assert_allclose(one["mixture"], one["vocals"] + one["accompaniment"], atol=1e-6)
    assert isinstance(open_dataset(root), StemFolders)


def test_musdb_stem_mp4(tmp_path):
    import av

    path = tmp_path / "db" / "Song.stem.mp4"
    path.parent.mkdir()
    sr = 44100
    sources = [synth_song(1.0, sr, seed=i) * 0.3 for i in range(5)]
    with av.open(str(path), "w", format="mp4") as c:
        streams = [c.add_stream("aac", rate=sr, layout="stereo") for _ in sources]
        for s, x in zip(streams, sources):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout="stereo")
            frame.sample_rate = sr
            frame.pts = 0
            for p in list(s.encode(frame)) + list(s.encode(None)):
                c.mux(p)
    d = open_dataset(tmp_path / "db")
    assert isinstance(d, MUSDB) and [t.name for t in d.tracks] == ["Song"]
    x = d.tracks[0].load(sr)
    assert x["mixture"].shape[0] == 2 and abs(x["mixture"].shape[1] - sr) < 3000
    assert np.corrcoef(x["vocals"][0, 5000:30000], sources[4][0, 5000:30000])[0, 1] > 0.9


def test_pair_manifest_aligns_the_instrumental(tmp_path):
    sr = 16000
    v, a = _voice_acc(3.0, sr, 3)
    lag = 0.25
    inst = np.concatenate([np.zeros(int(lag * sr), np.float32), a * 0.5])
    sf.write(tmp_path / "orig.wav", v + a, sr, subtype="FLOAT")
    sf.write(tmp_path / "inst.wav", inst, sr, subtype="FLOAT")
    with open(tmp_path / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["original", "instrumental", "offset", "gain", "artist", "title"])
        w.writerow(["orig.wav", "inst.wav", lag, 2.0, "Someone", "Song"])
    d = open_dataset(tmp_path / "pairs.csv")
    assert isinstance(d, PairManifest) and d.tracks[0].group == "Someone" and d.tracks[0].kind == "pair"
    x = d.tracks[0].load(sr)
    assert "vocals" not in x
    np.testing.assert_allclose(x["accompaniment"][0], a, atol=1e-5)
    with pytest.raises(ConfigError):
        PairManifest(tmp_path / "missing.csv")
    for row, said in ((["orig.wav", "inst.wav", "abc"], "line 2: offset and gain must be numbers"),
                      (["orig.wav", "gone.wav", "0"], "line 2: no such audio file"),
                      (["orig.wav", "", "0"], "line 2: needs an original and an instrumental file")):
        with open(tmp_path / "bad.csv", "w", newline="") as f:
            csv.writer(f).writerows([["original", "instrumental", "offset"], row])
        with pytest.raises(ConfigError, match=said):
            PairManifest(tmp_path / "bad.csv")


def test_bad_dataset_paths(tmp_path):
    with pytest.raises(ConfigError):
        MIR1K(tmp_path)
    with pytest.raises(ConfigError):
        StemFolders(tmp_path)
    with pytest.raises(ConfigError):
        open_dataset(tmp_path, "nope")


def test_real_mir1k_layout(data_dir):
    d = MIR1K(data_dir / "mir1k")
    assert len({t.group for t in d.tracks}) >= 10
    train, valid = split_tracks(d.tracks, ["abjones", "amy"])
    assert not ({t.group for t in train} & {"abjones", "amy"})
