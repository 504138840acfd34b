import numpy as np
import pytest
import soundfile as sf

from vocalsep.audio import AudioReader, AudioWriter, load, resample, save, track_name
from vocalsep.errors import AudioError, OutputError

from conftest import snr, synth_song


def _write_with_pyav(path, x, sr, codec, fmt=None):
    import av

    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=sr, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x, dtype=np.float32), format="fltp", layout="stereo")
        frame.sample_rate = sr
        frame.pts = 0
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)


@pytest.mark.parametrize("ext,codec,fmt,min_snr", [("m4a", "aac", "mp4", 10), ("ogg", "libopus", "ogg", None), ("mp3", "libmp3lame", "mp3", 10)])
def test_lossy_formats_decode_without_ffmpeg(tmp_path, ext, codec, fmt, min_snr):
    sr = 48000 if codec == "libopus" else 44100
    x = synth_song(2.0, sr)
    path = tmp_path / f"a.{ext}"
    _write_with_pyav(path, x, sr, codec, fmt)
    y, rate = load(path)
    assert rate == sr and y.dtype == np.float32 and y.shape[0] == 2
    assert abs(y.shape[1] - x.shape[1]) < 0.1 * sr
    assert np.abs(y).max() > 0.1


@pytest.mark.parametrize("ext", ["mov", "m4v", "3gp"])
def test_video_files_are_read_by_their_extension(tmp_path, ext):
    x = synth_song(1.0, 44100)
    path = tmp_path / f"clip.{ext}"
    _write_with_pyav(path, x, 44100, "aac", "mp4")
    y, rate = load(path)
    assert rate == 44100 and y.shape[0] == 2 and abs(y.shape[1] - x.shape[1]) < 0.1 * rate


@pytest.mark.parametrize("ext", ["wav", "mp3"])
def test_a_file_cut_short_is_refused(tmp_path, ext):
    """A file that ends well before its header says (a download cut short) is refused, naming both
    lengths; a selection that stops before the cut reads as before.  (An MP4 cut short fails to decode.)"""
    x = synth_song(6.0, 44100)
    whole = tmp_path / f"whole.{ext}"
    save(whole, x, 44100)
    assert load(whole)[0].shape[1] >= x.shape[1] - 2000
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"cut\.\w+: is truncated: its header declares 6\.0 s of audio, "):
        load(cut)
    y, _ = load(cut, duration=1.0)  # a part before the cut is still there
    assert y.shape[1] == 44100


@pytest.mark.parametrize("ext,bits", [("wav", "16"), ("wav", "24"), ("wav", "float"), ("flac", "16"), ("flac", "24")])
def test_lossless_write_read_round_trip(tmp_path, ext, bits):
    x = synth_song(1.0, 16000, channels=3)
    path = save(tmp_path / f"o.{ext}", x, 16000, bit_depth=bits)
    y, sr = load(path)
    assert sr == 16000 and y.shape == x.shape
    tol = {"16": 1e-4, "24": 1e-6, "float": 0}[bits]
    np.testing.assert_allclose(y, x, atol=tol + 1e-7)


def test_mp3_write(tmp_path):
    x = synth_song(2.0, 44100)
    path = save(tmp_path / "o.mp3", x, 44100)
    y, sr = load(path)
    assert sr == 44100 and y.shape[0] == 2 and abs(y.shape[1] - x.shape[1]) < 2000
    assert snr(x, y[:, : x.shape[1]]) > 10


def test_clipping_is_counted_not_silent(tmp_path, caplog):
    x = np.array([[0.5, 1.5, -2.0, 0.1]], np.float32)
    with AudioWriter(tmp_path / "c.wav", 8000, 1, bit_depth="16") as w:
        w.write(x)
    assert w.clipped == 2
    assert "clipped" in caplog.text
    with AudioWriter(tmp_path / "f.wav", 8000, 1, bit_depth="float") as w:
        w.write(x)
    assert w.clipped == 0
    np.testing.assert_array_equal(load(tmp_path / "f.wav")[0], x)


def test_writer_is_atomic(tmp_path):
    target = tmp_path / "out" / "x.wav"
    with pytest.raises(RuntimeError):
        with AudioWriter(target, 8000, 1) as w:
            w.write(np.zeros((1, 100), np.float32))
            raise RuntimeError("interrupted")
    assert not target.exists()
    assert not [p for p in target.parent.iterdir()]


def test_writer_refusals(tmp_path):
    with pytest.raises(OutputError):
        AudioWriter(tmp_path / "x.flac", 8000, 1, bit_depth="float")
    with pytest.raises(OutputError):
        AudioWriter(tmp_path / "x.mp3", 96000, 2)
    with pytest.raises(OutputError):
        AudioWriter(tmp_path / "x.aiff", 8000, 1)
    assert not list(tmp_path.iterdir())


def test_offset_and_duration_are_sample_exact(tmp_path):
    x = synth_song(3.0, 16000)
    path = tmp_path / "x.flac"
    sf.write(path, x.T, 16000, subtype="PCM_24")
    full, _ = load(path)
    part, _ = load(path, offset=1.25, duration=0.5)
    np.testing.assert_array_equal(part, full[:, 20000:28000])
    beyond, _ = load(path, offset=10.0)
    assert beyond.shape == (2, 0)


def test_streaming_blocks_concatenate_to_the_whole(tmp_path):
    x = synth_song(2.0, 22050)
    path = tmp_path / "x.wav"
    sf.write(path, x.T, 22050, subtype="FLOAT")
    r = AudioReader(path)
    assert r.frames == x.shape[1] and r.channels == 2
    blocks = list(r.blocks(1000))
    assert all(b.shape[1] <= 1000 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), x)


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("empty.wav", b"", "empty"),
        ("corrupt.mp3", b"\x00\x01garbage" * 100, "cannot decode"),
        ("corrupt.flac", b"fLaC" + b"\x00" * 50, "cannot decode"),
        ("notes.txt", b"hello", "unsupported file type"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError) as err:
        load(path)
    msg = str(err.value)
    assert str(path) in msg and reason in msg and "\n" not in msg


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(AudioError, match="is a directory"):
        AudioReader(tmp_path)
    with pytest.raises(AudioError, match="no such file"):
        AudioReader(tmp_path / "nope.wav")


def test_nan_samples_are_an_error(tmp_path):
    x = synth_song(1.0, 8000)
    x[1, 4000] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x.T, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load(path)


def test_resample_lengths_and_content():
    x = synth_song(1.0, 44100)
    y = resample(x, 44100, 8192)
    assert y.shape == (2, 8192) and y.dtype == np.float32
    back = resample(y, 8192, 44100)
    assert back.shape == (2, 44100)
    assert resample(x, 44100, 44100) is x


def test_track_names():
    assert track_name("/a/Music Delta - 80s Rock.stem.mp4") == "Music Delta - 80s Rock"
    assert track_name("x/song.final.mp3") == "song.final"


def test_musdb_stem_streams(data_dir):
    stem = data_dir / "musdb-sample" / "Music Delta - 80s Rock.stem.mp4"
    folder = data_dir / "musdb-sample" / "Music Delta - 80s Rock"
    r = AudioReader(stem)
    assert r.info.streams == 5 and r.sample_rate == 44100 and r.channels == 2
    mix = r.read()
    vocals, _ = load(stem, stream=4)
    ref_mix, _ = load(folder / "mixture.flac")
    ref_voc, _ = load(folder / "vocals.flac")
    n = min(mix.shape[1], ref_mix.shape[1])
    assert snr(ref_mix[:, :n], mix[:, :n]) > 60  # the FLACs are the same decode, kept in float
    assert snr(ref_voc[:, :n], vocals[:, :n]) > 60
    with pytest.raises(AudioError, match="stream 7 does not exist"):
        AudioReader(stem, stream=7)


def test_real_mp3_offset_matches_full_decode(data_dir):
    path = data_dir / "mixtures" / "slow-motion-dream.mp3"
    full, sr = load(path)
    part, _ = load(path, offset=5.0, duration=1.0)
    np.testing.assert_allclose(part, full[:, 5 * sr : 6 * sr], atol=1e-6)
