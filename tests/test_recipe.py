"""Training mixtures from a recipe: parsing, the sampler's draws, and a stereo training run
through the real CLI with an exact resume."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalsep.config import SPLEETER, get_preset
from vocalsep.data.recipe import Recipe, open_source
from vocalsep.errors import ConfigError
from vocalsep.training.mix import MixSampler, load_recipe
from vocalsep.model import UNet

from train_support import train_cli

RATE = 44100


def tone(freq, seconds, rate=RATE, channels=2, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    x = 0.2 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    return np.repeat(x[None], channels, axis=0).astype(np.float32)


def write(path, x, rate=RATE):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.T, rate, subtype="FLOAT" if path.suffix == ".wav" else "PCM_24")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for i, name in enumerate(["a", "b", "c"]):  # stems folders: voice near 1 kHz, accompaniment near 200 Hz
        write(root / "stems" / name / "vocals.wav", tone(900 + 50 * i, 4.0, seed=i))
        write(root / "stems" / name / "accompaniment.wav", tone(200 + 10 * i, 4.0, seed=10 + i))
    write(root / "voices" / "v1.wav", tone(1100, 3.0, channels=1, seed=20))
    write(root / "voices" / "sub" / "v2.flac", tone(1200, 2.0, channels=1, seed=21), rate=22050)
    write(root / "music" / "m1.wav", tone(150, 3.0, seed=30))
    write(root / "music" / "m2.wav", tone(170, 3.0, seed=31))
    write(root / "songs" / "s1" / "guitar.wav", tone(300, 3.0, seed=40))
    write(root / "songs" / "s1" / "song.wav", tone(120, 3.0, seed=41))
    (root / "music" / "vocal-check.json").write_text(json.dumps({"files": {"m2.wav": {"flagged": True}, "m1.wav": {"flagged": False}}}))
    recipe = {
        "true_share": 0.5,
        "sources": [
            {"name": "st", "layout": "stems", "path": "stems", "valid": ["c"], "true": 1, "vocals": 1, "accompaniment": 1},
            {"name": "vo", "layout": "files", "role": "vocals", "path": "voices", "vocals": 1},
            {"name": "mu", "layout": "files", "role": "accompaniment", "path": "music", "accompaniment": 1,
             "exclude_flagged": "music/vocal-check.json"},
            {"name": "so", "layout": "folder-mix", "role": "accompaniment", "path": "songs", "accompaniment": 0.5},
        ],
    }
    (root / "recipe.json").write_text(json.dumps(recipe))
    return root


def test_recipe_is_checked():
    good = {"sources": [{"name": "x", "layout": "stems", "path": "p", "true": 1, "vocals": 1, "accompaniment": 1}]}
    assert Recipe.from_dict(good).sources[0].path == ("p",)
    bad = [
        ({"sources": []}, "no sources"),
        ({**good, "colour": 1}, "unknown keys"),
        ({"sources": [{"name": "x", "layout": "tar", "path": "p"}]}, "layout"),
        ({"sources": [{"name": "x", "layout": "files", "path": "p"}]}, "role"),
        ({"sources": [{"name": "x", "layout": "files", "role": "vocals", "path": "p", "accompaniment": 1}]}, "only a 'vocals'"),
        ({"sources": [{"name": "x", "layout": "stems", "path": "p", "true": -1}]}, ">= 0"),
        ({**good, "true_share": 1.5}, "true_share"),
        ({**good, "vocal_db": [3, -3]}, "low <= high"),
        ({"true_share": 0.5, "sources": [{"name": "x", "layout": "stems", "path": "p", "true": 1}]}, "remixes"),
    ]
    for d, words in bad:
        with pytest.raises(ConfigError, match=words):
            Recipe.from_dict(d)


def test_sources_split_and_exclude_flagged(data):
    r = Recipe.load(data / "recipe.json")
    st = {s.name: open_source(data, s) for s in r.sources}
    assert [t.name for t in st["st"].valid] == ["st/c"] and len(st["st"].train) == 2
    assert sorted(t.name for t in st["vo"].train) == ["vo/voices/sub/v2.flac", "vo/voices/v1.wav"]
    assert [t.name for t in st["mu"].train] == ["mu/music/m1.wav"]  # m2 is flagged
    assert [t.name for t in st["so"].train] == ["so/songs/s1"]  # one track: the folder's files summed
    song = st["so"].train[0].load(RATE)["accompaniment"]
    a, _ = sf.read(data / "songs" / "s1" / "guitar.wav", dtype="float32")
    b, _ = sf.read(data / "songs" / "s1" / "song.wav", dtype="float32")
    np.testing.assert_allclose(song, (a + b).T, atol=1e-6)


def test_sampler_draws(data, tmp_path):
    r = Recipe.load(data / "recipe.json")
    train, valid = load_recipe(r, data, RATE, tmp_path / "cache")
    assert [t.name for t in valid] == ["st/c"]
    assert train["vo"][0].parts["vocals"].dtype == np.float16  # the cache is float16, memory-mapped
    sampler = MixSampler(train, r, SPLEETER, "vocals", patch_frames=64)
    v, a, n = sampler.batch(3, 6)
    v2, a2, n2 = sampler.batch(3, 6)
    assert torch.equal(v, v2) and torch.equal(a, a2) and torch.equal(n, n2)  # a function of the step
    assert not torch.equal(v, sampler.batch(4, 6)[0])
    assert v.shape == a.shape == (6, 2, sampler.patch_samples)
    X, Y, w = sampler.features(v, a, n)
    assert X.shape == Y.shape == (6, 2, 1024, 64) and w.shape == (6, 1, 1, 64)
    # the mixture is the sum of the parts, so the target's magnitude is the voice's
    spec = sampler.stft.forward(v + a)[..., :1024, :64].abs()
    torch.testing.assert_close(X, spec)
    # a mono model gets the channels' mean
    mono = MixSampler(train, r, get_preset("jansson2017"), "accompaniment", patch_frames=32)
    assert mono.batch(0, 2)[0].shape[1] == 1


def test_remix_levels_and_padding(data, tmp_path):
    r = Recipe.from_dict({**json.loads((data / "recipe.json").read_text()), "true_share": 0.0, "vocal_db": [-6, -6],
                          "mix_dbfs": [-20, -20], "pan": 0.0})
    train, _ = load_recipe(r, data, RATE, tmp_path / "cache")
    sampler = MixSampler(train, r, SPLEETER, "vocals", patch_frames=256)  # 5.9 s: longer than every track
    rng = np.random.default_rng(0)
    for _ in range(5):
        voc, acc, n = sampler.item(rng)
        # zero-padded past each part's end; n is where the shorter part ends
        assert n < sampler.patch_samples and not (voc[:, n:].any() and acc[:, n:].any())
        rv, ra = np.sqrt(np.mean(voc[:, :n] ** 2)), np.sqrt(np.mean(acc[:, :n] ** 2))
        assert 20 * np.log10(rv / ra) == pytest.approx(-6, abs=1.0)
        assert 20 * np.log10(np.sqrt(np.mean((voc + acc) ** 2))) == pytest.approx(-20, abs=0.1)
    v, a, n = sampler.batch(0, 2)
    w = sampler.features(v, a, n)[2]
    assert 0 < w.sum() < w.numel()  # the padding's frames are left out of the loss


def test_spleeter_networks_keep_their_batchnorm_statistics():
    model = UNet(SPLEETER.unet).train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert any(isinstance(m, torch.nn.Dropout) and m.training for m in model.modules())
    before = bns[0].running_var.clone()
    model(torch.rand(2, 2, 64, 64) * 10)
    assert torch.equal(before, bns[0].running_var)
    paper = UNet(get_preset("jansson2017").unet).train()
    assert all(m.training for m in paper.modules() if isinstance(m, torch.nn.BatchNorm2d))



def test_train_stereo_from_a_recipe_and_resume(data, tmp_path):
    common = ["--data", data, "--recipe", data / "recipe.json", "--preset", "jansson2017-44k", "--channels", "4,8,16",
              "--patch-frames", "64", "--batch-size", "2", "--steps", "4", "--steps-per-epoch", "2", "--threads", "1",
              "--cache-dir", tmp_path / "cache"]
    r = train_cli(*common, "--out", tmp_path / "straight")
    assert r.returncode == 0, r.stderr
    split = json.loads((tmp_path / "straight" / "split.json").read_text())
    assert split["dataset"] == "recipe" and split["valid_tracks"] == ["st/c"]
    rows = (tmp_path / "straight" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and "st" in rows[-1]  # the validation SDR of each source
    r = train_cli(*common, "--out", tmp_path / "killed", kill_at=3)
    assert r.returncode == 137
    r = train_cli(*common, "--out", tmp_path / "killed", "--resume")
    assert r.returncode == 0, r.stderr
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "straight" / "last.safetensors"), load_file(tmp_path / "killed" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stereo_presets_need_a_recipe(data, tmp_path):
    r = train_cli("--data", data / "stems", "--preset", "spleeter", "--out", tmp_path / "x", "--steps", "1")
    assert r.returncode == 2 and "--recipe" in r.stderr
    r = train_cli("--data", data / "stems", "--patch-frames", "64", "--out", tmp_path / "y", "--steps", "1")
    assert r.returncode == 2 and "patch_frames" in r.stderr


def test_stages_with_stop_after_equal_one_run(data, tmp_path):
    """--stop-after ends a stage at a step while keeping the schedule of --steps; --resume continues it."""
    common = ["--data", data, "--recipe", data / "recipe.json", "--preset", "jansson2017-44k", "--channels", "4,8,16",
              "--patch-frames", "64", "--batch-size", "2", "--steps", "4", "--steps-per-epoch", "2", "--threads", "1",
              "--cache-dir", tmp_path / "cache"]
    assert train_cli(*common, "--out", tmp_path / "one").returncode == 0
    r = train_cli(*common, "--out", tmp_path / "staged", "--stop-after", "2")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "staged" / "summary.json").read_text())["steps"] == 2
    r = train_cli(*common, "--out", tmp_path / "staged", "--resume")
    assert r.returncode == 0, r.stderr
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "one" / "last.safetensors"), load_file(tmp_path / "staged" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("recipe,said", [
    ({"true_share": 0.4}, "'sources' must be a list"),
    ({"sources": "abc"}, "'sources' must be a list"),
    ({"true_share": "0.4", "sources": [{"name": "s", "layout": "stems", "path": "st", "true": 1}]}, "true_share must be a number"),
    ({"sources": [{"name": "s", "layout": "stems", "path": 5, "true": 1}]}, "path must be a string or a list of strings"),
    ({"sources": [{"name": "s", "layout": "stems", "path": "st", "true": 1, "max_seconds": "10"}]}, "max_seconds must be a number"),
])
def test_recipe_values_of_the_wrong_kind_are_one_line(recipe, said):
    with pytest.raises(ConfigError, match=said):
        Recipe.from_dict(recipe)


def test_a_single_valid_name_is_one_track_not_its_letters():
    r = Recipe.from_dict({"true_share": 1.0, "sources": [{"name": "s", "layout": "stems", "path": "st", "true": 1, "valid": "s3"}]})
    assert r.sources[0].valid == ("s3",)
