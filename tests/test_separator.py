import importlib.util
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from vocalsep import SeparationOptions, Separator
from vocalsep.checkpoint import save_checkpoint
from vocalsep.config import Preset, UNetConfig
from vocalsep.errors import AudioError, ConfigError, ModelError, OutputError
from vocalsep.separator import combine_masks, output_paths

from conftest import TINY, make_models, snr, synth_song


class ConstantMask(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, mag):
        return torch.full_like(mag, self.value)


class LocalMask(nn.Module):
    """A nonlinear mask that depends only on each bin's own magnitude (no context)."""

    def forward(self, mag):
        return torch.sigmoid(torch.log(mag + 1e-6) + 2.0)


@pytest.fixture(scope="module")
def tiny():
    return Separator(make_models(TINY), TINY)


@pytest.mark.parametrize("sr", [8192, 16000, 22050, 44100])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_outputs_keep_rate_length_and_channels(tiny, sr, channels):
    x = synth_song(1.3, sr, channels)
    out = tiny.separate(x, sr)
    assert set(out) == {"vocals", "accompaniment"}
    for y in out.values():
        assert y.shape == x.shape and y.dtype == torch.float32
        assert torch.isfinite(y).all()


def test_channels_are_separated_independently(tiny):
    x = synth_song(2.0, 16000, 2)
    both = tiny.separate(x, 16000)["vocals"]
    left = tiny.separate(x[:1], 16000)["vocals"]
    assert torch.allclose(both[:1], left, atol=1e-5)
    mono = tiny.separate(x[0], 16000)["vocals"]
    assert mono.shape == (x.shape[1],)


@pytest.mark.parametrize("fullband", ["interpolate", "bandlimited"])
def test_an_all_pass_mask_returns_the_mixture_at_full_band(fullband):
    # "edge" with an all-pass mask: the band above the model passes too
    sep = Separator({"vocals": ConstantMask(1.0)}, TINY, SeparationOptions(fullband=fullband, high_band="edge"))
    x = synth_song(2.5, 44100)
    x += 0.05 * np.sin(2 * np.pi * 12000 * np.arange(x.shape[1]) / 44100).astype(np.float32)  # content far above 4 kHz
    out = sep.separate(x, 44100)
    assert snr(x, out["vocals"]) > 60
    assert np.abs(out["accompaniment"].numpy()).max() < 1e-3


def test_high_band_rules_decide_what_happens_above_the_model():
    sr = 44100
    t = np.arange(2 * sr) / sr
    high = (0.5 * np.sin(2 * np.pi * 10000 * t)).astype(np.float32)[None]
    for fullband in ("interpolate", "bandlimited"):
        sep = Separator({"vocals": ConstantMask(0.5)}, TINY, SeparationOptions(high_band="zero", fullband=fullband))
        v = sep.separate(high, sr)["vocals"].numpy()
        mid = slice(sr // 2, 3 * sr // 2)
        assert np.sqrt(np.mean(v[0, mid] ** 2)) < 0.01
    with pytest.raises(ConfigError, match="high_band"):
        SeparationOptions(high_band="one")
    for bad in (-5, 0, float("nan"), "1000"):
        with pytest.raises(ConfigError, match="edge_hz must be a positive number of Hz"):
            SeparationOptions(edge_hz=bad)
    edge = Separator({"vocals": ConstantMask(0.5)}, TINY, SeparationOptions(high_band="edge")).separate(high, sr)["vocals"].numpy()
    assert snr(0.5 * high[:, sr // 2 : -sr // 2], edge[:, sr // 2 : -sr // 2]) > 40


def test_complement_makes_stems_sum_to_the_mixture():
    models = make_models(TINY)
    x = synth_song(2.0, 22050)
    sep = Separator(models, TINY, SeparationOptions(complement=True))
    out = sep.separate(x, 22050)
    np.testing.assert_allclose(out["vocals"] + out["accompaniment"], x, atol=1e-5)
    # without complement (and with each model's own mask), the accompaniment comes from its own model
    own = Separator(models, TINY, SeparationOptions(combine="independent")).separate(x, 22050)
    assert not torch.allclose(own["accompaniment"], out["accompaniment"], atol=1e-3)
    assert torch.allclose(own["vocals"], out["vocals"], atol=1e-6)


@pytest.mark.parametrize("fullband", ["interpolate", "bandlimited"])
@pytest.mark.parametrize("rule", ["average", "ratio"])
def test_joint_rules_give_stems_that_add_up_to_the_mixture(fullband, rule):
    models = make_models(TINY)
    x = synth_song(2.0, 22050)
    sep = Separator(models, TINY, SeparationOptions(fullband=fullband, combine=rule))
    out = sep.separate(x, 22050)
    np.testing.assert_allclose(out["vocals"] + out["accompaniment"], x, atol=2e-5)
    # one stem alone is the same stem as in the two-stem run: both networks still vote
    alone = sep.separate(x, 22050, stems=["accompaniment"])
    assert torch.allclose(alone["accompaniment"], out["accompaniment"], atol=1e-6)
    independent = Separator(models, TINY, SeparationOptions(fullband=fullband, combine="independent")).separate(x, 22050)
    assert not torch.allclose(independent["vocals"], out["vocals"], atol=1e-3)


def test_combine_masks_rules():
    mv = torch.tensor([0.9, 0.2, 0.0, 0.5])
    ma = torch.tensor([0.3, 0.6, 0.0, 0.5])
    avg = combine_masks({"vocals": mv, "accompaniment": ma}, "average")
    assert torch.allclose(avg["vocals"], torch.tensor([0.8, 0.3, 0.5, 0.5]))
    assert torch.allclose(avg["accompaniment"], 1 - avg["vocals"])
    ratio = combine_masks({"vocals": mv, "accompaniment": ma}, "ratio")
    assert torch.allclose(ratio["vocals"], torch.tensor([0.75, 0.25, 0.5, 0.5]))
    sq = combine_masks({"vocals": mv, "accompaniment": ma}, "ratio2")
    assert torch.allclose(sq["vocals"], torch.tensor([0.81 / 0.9, 0.04 / 0.4, 0.5, 0.5]))
    assert torch.allclose(sq["vocals"] + sq["accompaniment"], torch.ones(4))
    same = combine_masks({"vocals": mv, "accompaniment": ma}, "independent")
    assert same["vocals"] is mv and same["accompaniment"] is ma
    assert combine_masks({"vocals": mv}, "average")["vocals"] is mv  # one model: nothing to combine
    with pytest.raises(ConfigError):
        combine_masks({"vocals": mv}, "vote")
    with pytest.raises(ConfigError):
        SeparationOptions(combine="vote")
    with pytest.raises(ConfigError):
        Preset(combine="vote")


def test_bf16_precision_runs_copies_and_stays_close(tiny):
    x = synth_song(1.5, 16000)
    ref = tiny.separate(x, 16000)
    fast = tiny.with_options(precision="bf16")
    out = fast.separate(x, 16000)
    for stem in ref:
        assert out[stem].shape == ref[stem].shape
        assert snr(ref[stem].numpy(), out[stem].numpy()) > 20, stem
    assert set(fast._low_precision) == set(tiny.models)  # built once, on first use
    assert all(next(m.parameters()).dtype == torch.float32 for m in tiny.models.values())  # the models are untouched
    with pytest.raises(ConfigError):
        SeparationOptions(precision="fp16")


def test_a_single_model_gives_the_other_stem_as_complement():
    models = make_models(TINY)
    x = synth_song(1.0, 16000)
    only_acc = Separator({"accompaniment": models["accompaniment"]}, TINY).separate(x, 16000)
    np.testing.assert_allclose(only_acc["vocals"] + only_acc["accompaniment"], x, atol=1e-5)
    just_vocals = Separator(models, TINY).separate(x, 16000, stems=["vocals"])
    assert list(just_vocals) == ["vocals"]


@pytest.mark.parametrize("fullband,min_snr", [("bandlimited", 60), ("interpolate", 35)])
def test_chunked_equals_whole_for_a_context_free_mask(fullband, min_snr):
    """The seams of overlap-add are inaudible: with a mask without context, chunking changes
    (almost) nothing.  Segment steps keep the model's frame grid; the full-rate grid of
    ``interpolate`` (hop 1024) shifts from segment to segment, which is the residual difference."""
    x = synth_song(20.0, 16000)
    whole = Separator({"vocals": LocalMask()}, TINY, SeparationOptions(fullband=fullband, segment_frames=400)).separate(x, 16000)["vocals"]
    chunked_sep = Separator({"vocals": LocalMask()}, TINY, SeparationOptions(fullband=fullband, segment_frames=24, overlap=0.5))
    assert chunked_sep.segment_samples(16000)[0] < x.shape[1] / 5
    assert snr(whole, chunked_sep.separate(x, 16000)["vocals"]) > min_snr


def test_chunked_close_to_whole_for_the_unet(tiny):
    x = synth_song(20.0, 16000)
    whole = tiny.with_options(segment_frames=400).separate(x, 16000)["vocals"].numpy()
    chunked = tiny.with_options(segment_frames=64, overlap=1.0).separate(x, 16000)["vocals"].numpy()
    assert snr(whole, chunked) > 15
    # no clicks at the seams: the sample-to-sample jump is nowhere far above the whole-file output's
    assert np.abs(np.diff(chunked)).max() < 1.5 * np.abs(np.diff(whole)).max() + 1e-3


class Spy(nn.Module):
    """A local mask that records the inputs it is given."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, mag):
        self.seen.append(mag.clone())
        return LocalMask()(mag)


class NanPast(nn.Module):
    """:class:`LocalMask` on the first ``frames`` frames, NaN on the frames after them."""

    def __init__(self, frames):
        super().__init__()
        self.frames = frames

    def forward(self, mag):
        out = LocalMask()(mag).clone()
        out[..., self.frames :] = float("nan")
        return out


@pytest.mark.parametrize("seconds", [1.0, 13.0])
def test_short_segments_are_padded_by_wrapping(seconds):
    """A segment shorter than a training patch (or not a multiple of the U-Net's 2 ** depth frames)
    reaches the network repeated from its start ("wrap"), not followed by silence; the masks of the
    padding are dropped."""
    x = synth_song(seconds, 8192)
    spy = Spy()
    out = Separator({"vocals": spy}, TINY, SeparationOptions(pad="wrap")).separate(x, 8192)["vocals"]
    (seen,) = spy.seen
    from vocalsep.spectral import STFT

    frames = STFT(TINY.n_fft, TINY.hop).frames(x.shape[-1])
    want = max(TINY.patch_frames, -(-frames // TINY.unet.multiple) * TINY.unet.multiple)
    assert seen.shape[-1] == want > frames
    assert torch.equal(seen, seen[..., torch.arange(want) % frames])
    # the padding's masks never reach the stems
    nan_past = Separator({"vocals": NanPast(frames)}, TINY).separate(x, 8192)["vocals"]
    assert torch.equal(nan_past, out)
    with pytest.raises(ConfigError, match="pad"):
        SeparationOptions(pad="zero")


@pytest.mark.parametrize("sr,fullband", [(8192, "bandlimited"), (16000, "interpolate"), (44100, "bandlimited"), (44100, "interpolate")])
def test_shifts_average_the_framings(tiny, sr, fullband):
    """``shifts=N`` is the mean of N separations of the input delayed by k/N of the model's hop
    (k = 0 .. N-1), each advanced back; the default is one framing."""
    from vocalsep.separator import shift_offsets

    x = synth_song(2.3, sr, 2)
    one = tiny.with_options(shifts=1, fullband=fullband)
    hop = TINY.hop * sr / TINY.sample_rate
    for n in (1, 2, 3):
        offsets = shift_offsets(TINY, n, sr)
        assert offsets == [round(k * hop / n) for k in range(n)] and offsets[0] == 0
        got = tiny.with_options(shifts=n, fullband=fullband).separate(x, sr)
        for stem in ("vocals", "accompaniment"):
            want = sum(
                one.separate(np.concatenate([np.zeros((2, s), np.float32), x], axis=1), sr)[stem][:, s : s + x.shape[1]]
                for s in offsets
            ) / n
            assert got[stem].shape == x.shape
            assert torch.allclose(got[stem], want, atol=1e-5)
    if fullband == "interpolate":
        assert torch.equal(tiny.separate(x, sr)["vocals"], one.separate(x, sr)["vocals"])  # the default: one framing
    # the framings differ: averaging them changes the stems
    assert not torch.allclose(one.separate(x, sr)["vocals"], tiny.with_options(shifts=3, fullband=fullband).separate(x, sr)["vocals"], atol=1e-4)


def test_shifts_keep_an_all_pass_mask_and_the_complement():
    x = synth_song(1.7, 16000, 1)
    sep = Separator({"vocals": ConstantMask(1.0)}, TINY, SeparationOptions(high_band="edge", shifts=4))
    out = sep.separate(x, 16000)
    assert snr(torch.as_tensor(x), out["vocals"]) > 60
    assert torch.allclose(out["vocals"] + out["accompaniment"], torch.as_tensor(x), atol=1e-5)
    for bad in (0, 17, 2.5, True):
        with pytest.raises(ConfigError, match="shifts"):
            SeparationOptions(shifts=bad)


def test_bad_waveforms(tiny):
    with pytest.raises(AudioError, match="no samples"):
        tiny.separate(np.zeros((2, 0), np.float32), 16000)
    x = synth_song(0.5, 16000)
    x[0, 10] = np.inf
    with pytest.raises(AudioError, match="NaN or infinite"):
        tiny.separate(x, 16000)
    with pytest.raises(ConfigError):
        tiny.separate(synth_song(0.5, 16000), 16000, stems=["drums"])
    with pytest.raises(ValueError):
        tiny.separate(np.zeros((1, 2, 3), np.float32), 16000)
    # the (samples, channels) array soundfile reads, passed without .T: an error, not thousands of channels
    with pytest.raises(ValueError, match=r"8000 channels of 2 samples: pass \(channels, samples\), e.g. audio.T"):
        tiny.separate(synth_song(0.5, 16000).T, 16000)
    assert tiny.separate(synth_song(0.5, 16000)[:1, :40], 16000)["vocals"].shape == (1, 40)  # short is fine
    for rate in (0, 0.5, -44100, 16000.5, "16000"):
        with pytest.raises(ValueError, match="sample_rate must be a positive whole number of Hz"):
            tiny.separate(synth_song(0.5, 16000), rate)
    assert set(tiny.separate(synth_song(0.5, 16000), 16000.0, stems="vocals")) == {"vocals"}  # one stem by name


def test_separate_file_writes_keeps_and_forces(tiny, song_wav, tmp_path):
    out = tmp_path / "out"
    written = tiny.separate_file(song_wav, out)
    assert set(written) == {"vocals", "accompaniment"}
    for stem, path in written.items():
        assert path == (out / "song" / f"{stem}.wav").resolve()
        y, sr = sf.read(path, always_2d=True)
        assert sr == 22050 and y.shape == (synth_song().shape[1], 2)
    mtime = written["vocals"].stat().st_mtime_ns
    assert tiny.separate_file(song_wav, out) == {}  # kept
    assert written["vocals"].stat().st_mtime_ns == mtime
    assert set(tiny.separate_file(song_wav, out, force=True)) == {"vocals", "accompaniment"}
    flac = tiny.separate_file(song_wav, out, fmt="flac", bit_depth="24", stems=["vocals"], offset=0.5, duration=1.0)
    y, sr = sf.read(flac["vocals"], always_2d=True)
    assert y.shape == (22050, 2)


def test_separate_file_never_overwrites_an_input(tiny, song_wav):
    with pytest.raises(OutputError, match="input"):
        tiny.separate_file(song_wav, song_wav.parent.parent, filename="in/{track}.{ext}", stems=["vocals"], force=True)


def test_failed_file_leaves_nothing(tiny, tmp_path):
    x = synth_song(2.0, 16000)
    x[:, 20000] = np.nan
    bad = tmp_path / "nan.wav"
    sf.write(bad, x.T, 16000, subtype="FLOAT")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((16000, 2), np.float32), 16000)
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros((0, 2), np.float32), 16000)
    out = tmp_path / "out" / "new" / "folders"
    for path, reason in ((bad, "NaN"), (silent, "silence"), (zero, "no audio samples")):
        with pytest.raises(AudioError, match=reason):
            tiny.separate_file(path, out)
    assert not (tmp_path / "out").exists()  # not even the folders it made for the outputs


def test_output_paths_refuse_escapes(tmp_path):
    with pytest.raises(OutputError, match="outside"):
        output_paths("a.wav", tmp_path, ["vocals"], "wav", "../{stem}.{ext}")
    with pytest.raises(OutputError, match="outside"):
        output_paths("a.wav", tmp_path, ["vocals"], "wav", "/etc/{stem}.{ext}")
    with pytest.raises(OutputError, match="same file"):
        output_paths("a.wav", tmp_path, ["vocals", "accompaniment"], "wav", "{track}.{ext}")
    with pytest.raises(OutputError, match="template"):
        output_paths("a.wav", tmp_path, ["vocals"], "wav", "{nope}.{ext}")


def test_from_pretrained(tiny_model_dir, tmp_path):
    sep = Separator.from_pretrained(tiny_model_dir)
    assert set(sep.models) == {"vocals", "accompaniment"} and sep.preset == TINY
    one = Separator.from_pretrained(tiny_model_dir / "vocals.safetensors")
    assert set(one.models) == {"vocals"}
    listed = Separator.from_pretrained([tiny_model_dir / "vocals.safetensors", tiny_model_dir / "accompaniment.safetensors"])
    assert set(listed.models) == {"vocals", "accompaniment"}
    with pytest.raises(ModelError, match="two models"):
        Separator.from_pretrained([tiny_model_dir / "vocals.safetensors", tiny_model_dir / "vocals.safetensors"])
    # dropout acts only in training: a model trained without it pairs with one trained with it
    nodrop = replace(TINY, unet=replace(TINY.unet, dropout=0.0))
    save_checkpoint(tmp_path / "nodrop.safetensors", make_models(nodrop)["accompaniment"], target="accompaniment", preset=nodrop)
    mixed = Separator.from_pretrained([tiny_model_dir / "vocals.safetensors", tmp_path / "nodrop.safetensors"])
    assert set(mixed.models) == {"vocals", "accompaniment"}
    # a wider network of the same depth pairs too (the separator needs only the depth to agree)
    wide = replace(TINY, unet=replace(TINY.unet, channels=tuple(2 * c for c in TINY.unet.channels)))
    save_checkpoint(tmp_path / "wide.safetensors", make_models(wide)["vocals"], target="vocals", preset=wide)
    paired = Separator.from_pretrained([tmp_path / "wide.safetensors", tiny_model_dir / "accompaniment.safetensors"])
    assert paired.models["vocals"].config.channels == wide.unet.channels
    assert paired.models["accompaniment"].config.channels == TINY.unet.channels
    x = torch.randn(2, 3 * 8000)
    stems = paired.separate(x, 8000)
    assert set(stems) == {"vocals", "accompaniment"} and stems["vocals"].shape == x.shape
    other = Preset(name="other", unet=UNetConfig(channels=(4, 8), dropout_layers=1))
    save_checkpoint(tmp_path / "acc.safetensors", make_models(other)["accompaniment"], target="accompaniment", preset=other)
    with pytest.raises(ModelError, match="different presets"):
        Separator.from_pretrained([tiny_model_dir / "vocals.safetensors", tmp_path / "acc.safetensors"])
    with pytest.raises(ModelError, match="unknown model"):
        Separator.from_pretrained("no-such-model")
    with pytest.raises(ModelError, match="no such model file"):
        Separator.from_pretrained(str(tmp_path / "missing.safetensors"))


def test_real_music_through_the_separator(tiny, data_dir):
    from vocalsep.audio import load

    x, sr = load(data_dir / "musdb-sample" / "Music Delta - 80s Rock.stem.mp4")
    out = tiny.separate(x, sr)
    assert out["vocals"].shape == x.shape
    assert all(torch.isfinite(y).all() for y in out.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (PyTorch sees none here)")
def test_cuda_separates_like_the_cpu(tmp_path):
    """The shipped models on a GPU: the same stems as on the CPU, to float rounding; bf16 close;
    files through the streaming path too."""
    cpu = Separator.from_pretrained("default")
    gpu = Separator.from_pretrained("default", device="cuda")
    assert next(gpu.models["vocals"].parameters()).is_cuda
    x = synth_song(20.0, 44100)
    ref = cpu.separate(x, 44100)
    out = gpu.separate(x, 44100)
    for stem in ref:
        assert out[stem].device.type == "cpu" and out[stem].shape == ref[stem].shape
        assert snr(ref[stem].numpy(), out[stem].numpy()) > 60, stem
    assert gpu.with_options(precision="auto").precision == "bf16"
    fast = gpu.with_options(precision="bf16").separate(x, 44100)
    for stem in ref:
        assert snr(ref[stem].numpy(), fast[stem].numpy()) > 20, stem
    src = tmp_path / "song.wav"
    sf.write(src, x.T, 44100)
    a = cpu.separate_file(src, tmp_path / "cpu")
    b = gpu.separate_file(src, tmp_path / "gpu")
    for stem in a:
        ya, yb = sf.read(a[stem])[0], sf.read(b[stem])[0]
        assert snr(ya, yb) > 50, stem


def test_shifts_choose_the_bandlimited_rule_unless_told():
    assert Separator(make_models(TINY), TINY).front.fullband == "interpolate"
    assert Separator(make_models(TINY), TINY, SeparationOptions(shifts=3)).front.fullband == "bandlimited"
    assert Separator(make_models(TINY), TINY, SeparationOptions(shifts=3, fullband="interpolate")).front.fullband == "interpolate"


STEREO_TINY = Preset(name="tiny-stereo", sample_rate=22050, n_fft=1024, hop=256, bins=512, patch_frames=64,
                     unet=UNetConfig(in_channels=2, out_channels=2, channels=(4, 8, 16)), fullband="bandlimited",
                     channel_mode="stereo", segment_frames=256)


@pytest.mark.parametrize("iterations", [1, 2])
def test_wiener_filter_stems_add_up_to_the_mixture(iterations):
    models = make_models(STEREO_TINY)
    x = synth_song(2.0, 22050)
    out = Separator(models, STEREO_TINY, SeparationOptions(wiener=iterations)).separate(x, 22050)
    base = Separator(models, STEREO_TINY, SeparationOptions()).separate(x, 22050)
    # below the modelled band the filter's stems add up to the mixture, as its masks do
    from vocalsep.spectral import STFT

    stft = STFT(1024, 256)
    total = stft.forward(out["vocals"] + out["accompaniment"])[:, :500]
    mix = stft.forward(torch.from_numpy(x))[:, :500]
    assert snr(mix.abs().numpy(), total.abs().numpy()) > 40
    assert not torch.allclose(out["vocals"], base["vocals"], atol=1e-4)


def _random_mixture(channels, bins=150, frames=90, mono=False, seed=0):
    g = np.random.default_rng(seed)
    x = (g.standard_normal((channels, bins, frames)) + 1j * g.standard_normal((channels, bins, frames))) * 3
    x[:, :, 30:40] *= 40  # loud frames
    x[:, 100:] *= 1e-4  # quiet bins
    if mono:
        x[1:] = x[0]
    mv = np.abs(x) * g.random(x.shape)
    ma = np.abs(x) - 0.7 * mv
    return x.astype(np.complex64), np.stack([mv, ma]).astype(np.float32)


def _snr_complex(ref, est) -> float:
    ref, est = np.asarray(ref, np.complex128), np.asarray(est, np.complex128)
    return float(10 * np.log10(np.sum(np.abs(ref) ** 2) / max(np.sum(np.abs(ref - est) ** 2), 1e-30)))


def _norbert(x, v, iterations):
    """norbert's wiener on each stereo pair of channels, in float64: (sources, channels, bins, frames)."""
    import norbert

    pairs = []
    for c in range(0, x.shape[0], 2):
        y = norbert.wiener(v[:, c:c + 2].transpose(3, 2, 1, 0).astype(np.float64), x[c:c + 2].transpose(2, 1, 0).astype(np.complex128),
                           iterations=iterations, use_softmask=True)
        pairs.append(y.transpose(3, 2, 1, 0))
    return np.concatenate(pairs, axis=1)


@pytest.mark.parametrize("channels", [1, 2, 4])
@pytest.mark.parametrize("iterations", [0, 1, 2])
def test_wiener_stems_are_norberts(channels, iterations):
    """The PyTorch filter gives norbert's (Open-Unmix's) stems, to the effect of its diagonal loading."""
    pytest.importorskip("norbert")
    from vocalsep.separation.masks import wiener_stems

    x, v = _random_mixture(channels)
    ours = wiener_stems(torch.from_numpy(x), torch.from_numpy(v), iterations).numpy()
    theirs = _norbert(x, v, iterations)
    assert _snr_complex(theirs, ours) > 50


def test_wiener_stems_of_a_mono_mixture_are_finite_and_add_up():
    """Two identical channels (a mono file through a stereo model): the 2 x 2 covariances are
    singular there, and the loading keeps the stems finite and adding up to the mixture (to its
    effect, which grows with each iteration); one iteration is norbert's."""
    from vocalsep.separation.masks import wiener_stems

    x, v = _random_mixture(2, mono=True)
    for iterations in (1, 2, 3, 5):
        y = wiener_stems(torch.from_numpy(x), torch.from_numpy(v), iterations)
        assert torch.isfinite(y).all()
        assert _snr_complex(x, y.sum(0).numpy()) > 35
    if importlib.util.find_spec("norbert"):
        assert _snr_complex(_norbert(x, v, 1), wiener_stems(torch.from_numpy(x), torch.from_numpy(v), 1).numpy()) > 50


def test_wiener_masks_without_iterations_are_the_ratio_mask_of_the_outputs():
    from vocalsep.separator import wiener_masks

    g = torch.Generator().manual_seed(0)
    spec = torch.randn(2, 16, 12, dtype=torch.complex64, generator=g)
    outs = {"vocals": torch.rand(2, 16, 12, generator=g), "accompaniment": torch.rand(2, 16, 12, generator=g)}
    m = wiener_masks(spec, outs, 0)
    soft = outs["vocals"] / (outs["vocals"] + outs["accompaniment"])
    torch.testing.assert_close(m["vocals"].real, soft, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(m["vocals"] + m["accompaniment"], torch.ones_like(m["vocals"]), atol=1e-4, rtol=1e-4)


def test_a_presets_wiener_filter_is_its_default_and_0_turns_it_off():
    models = make_models(STEREO_TINY)
    x = synth_song(2.0, 22050)
    with_filter = replace(STEREO_TINY, wiener=1)
    preset_default = Separator(models, with_filter, SeparationOptions()).separate(x, 22050)
    asked = Separator(models, STEREO_TINY, SeparationOptions(wiener=1)).separate(x, 22050)
    off = Separator(models, with_filter, SeparationOptions(wiener=0)).separate(x, 22050)
    plain = Separator(models, STEREO_TINY, SeparationOptions()).separate(x, 22050)
    for stem in ("vocals", "accompaniment"):
        torch.testing.assert_close(preset_default[stem], asked[stem])
        torch.testing.assert_close(off[stem], plain[stem])
    # a mono input (both channels the same) has no stereo image to model: the combine rule's masks stay
    mono = x[:1]
    torch.testing.assert_close(Separator(models, with_filter, SeparationOptions()).separate(mono, 22050)["vocals"],
                               Separator(models, STEREO_TINY, SeparationOptions()).separate(mono, 22050)["vocals"])
    # the preset's filter needs the bandlimited rule: another rule turns it off rather than failing
    interp = Separator(models, with_filter, SeparationOptions(fullband="interpolate"))
    assert interp.settings.wiener == 0
    # a model stored before the field takes its named preset's filter; the shipped spleeter-ratio has one
    from vocalsep.config import SPLEETER_RATIO

    stored = {k: v for k, v in SPLEETER_RATIO.to_dict().items() if k not in ("wiener", "wiener_power")}
    assert Preset.from_dict(stored).wiener == SPLEETER_RATIO.wiener >= 1
    assert Preset.from_dict(stored).wiener_power == SPLEETER_RATIO.wiener_power != 1
    assert Preset.from_dict({**stored, "name": "mine"}).wiener_power == 1  # a preset of another name: the field's default


def test_wiener_filter_starts_from_the_masks_to_the_presets_power(monkeypatch):
    """The filter's first estimates are mask ** wiener_power x the mixture's magnitude; the separation
    option overrides the preset's power, and the stems still add up to the mixture."""
    import vocalsep.separator as separator_module

    models = make_models(STEREO_TINY)
    x = synth_song(2.0, 22050)
    seen = []
    real = separator_module.wiener_masks

    def recording(spec, outputs, iterations):
        seen.append(({t: o.clone() for t, o in outputs.items()}, spec.abs()))
        return real(spec, outputs, iterations)

    monkeypatch.setattr(separator_module, "wiener_masks", recording)
    plain = Separator(models, replace(STEREO_TINY, wiener=1), SeparationOptions()).separate(x, 22050)
    softer = Separator(models, replace(STEREO_TINY, wiener=1, wiener_power=0.5), SeparationOptions()).separate(x, 22050)
    asked = Separator(models, replace(STEREO_TINY, wiener=1), SeparationOptions(wiener_power=0.5)).separate(x, 22050)
    assert len(seen) == 3
    (ones, mag), (halves, mag_again) = seen[0], seen[1]
    torch.testing.assert_close(mag, mag_again)
    audible = mag > 1e-6 * mag.max()
    for stem in ("vocals", "accompaniment"):
        mask = ones[stem][audible] / mag[audible]
        torch.testing.assert_close(halves[stem][audible], mask.sqrt() * mag[audible], atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(asked[stem], softer[stem])
        assert not torch.allclose(plain[stem], softer[stem], atol=1e-4)
    from vocalsep.spectral import STFT

    stft = STFT(1024, 256)
    total = stft.forward(softer["vocals"] + softer["accompaniment"])[:, :500]
    assert snr(stft.forward(torch.from_numpy(x))[:, :500].abs().numpy(), total.abs().numpy()) > 40


def test_wiener_option_is_checked():
    with pytest.raises(ConfigError, match="wiener"):
        SeparationOptions(wiener=-1)
    for bad in (0, -0.5, 4.5, float("nan"), True, "0.7"):
        with pytest.raises(ConfigError, match="wiener_power"):
            SeparationOptions(wiener_power=bad)
        with pytest.raises(ConfigError, match="wiener_power"):
            replace(STEREO_TINY, wiener_power=bad)
    with pytest.raises(ConfigError, match="bandlimited"):
        Separator(make_models(TINY), TINY, SeparationOptions(wiener=1, fullband="interpolate"))
