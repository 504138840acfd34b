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


def _song(tempo, tonic, seconds, rate=RATE, seed=0, clicks=True):
    """Notes of the major triad on ``tonic`` (pitch class, C = 0), one per beat at ``tempo`` BPM,
    each a sharp onset and a decay; ``clicks``: a noise click on every beat as well."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * rate), np.float32)
    period = 60.0 / tempo
    freqs = [261.63 * 2 ** ((tonic + k) % 12 / 12) for k in (0, 4, 7, 12)]
    t_note = np.arange(int(0.9 * period * rate)) / rate
    env = np.exp(-t_note * 6)
    for i, start in enumerate(np.arange(0.0, seconds - period, period)):
        a = int(start * rate)
        f = freqs[i % 4]
        note = env * (np.sin(2 * np.pi * f * t_note) + 0.5 * np.sin(2 * np.pi * 2 * f * t_note))
        x[a : a + note.size] += 0.2 * note.astype(np.float32)
        if clicks:
            x[a : a + 200] += 0.3 * rng.standard_normal(200).astype(np.float32) * np.exp(-np.arange(200) / 40)
    return np.stack([x, x])


def test_tempo_and_key_of_a_track():
    pytest.importorskip("librosa", reason="librosa (vocalsep[train]) analyses tempo and key")
    from vocalsep.training.music import analyse, shift_to_match

    acc = analyse(_song(120, 0, 12.0), RATE)  # C major, 120 BPM
    assert acc["key"] == 0 and acc["mode"] == "major"
    assert acc["tempo"] == pytest.approx(120, rel=0.03)
    assert np.median(np.diff(acc["beats"])) == pytest.approx(0.5, rel=0.03)
    voice = analyse(_song(134.7, 2, 12.0, clicks=False), RATE)  # D major: two semitones above
    assert voice["key"] == 2 and voice["tempo"] == pytest.approx(134.7, rel=0.03)
    # D down two semitones is C; the voice slowed by the same 2**(-2/12) is at 120 BPM
    assert shift_to_match(voice, acc, 2, 0.04) == -2
    assert shift_to_match(voice, acc, 1, 0.04) is None  # a shift over the limit
    assert shift_to_match(voice, {**acc, "tempo": 100.0}, 2, 0.04) is None  # a tempo too far
    assert shift_to_match(voice, {**acc, "tempo": 60.0}, 2, 0.04) == -2  # half the tempo is coherent too
    silent = analyse(np.zeros((2, RATE * 3), np.float32), RATE)
    assert silent["tempo"] == 0 and shift_to_match(voice, silent, 6, 0.5) is None


def test_coherent_remixes(tmp_path):
    pytest.importorskip("librosa", reason="librosa (vocalsep[train]) analyses tempo and key")
    from vocalsep.training.music import analyse

    root = tmp_path / "data"
    write(root / "voices" / "d-major.wav", _song(134.7, 2, 16.0, clicks=False)[:1])
    write(root / "music" / "c-major.wav", _song(120, 0, 16.0, seed=1))
    write(root / "music" / "f-sharp-major.wav", _song(90, 6, 12.0, seed=2))  # neither key nor tempo fit
    recipe = Recipe.from_dict({
        "true_share": 0.0, "coherent": 1.0, "vocal_db": [0, 0], "pan": 0.0,
        "sources": [{"name": "vo", "layout": "files", "role": "vocals", "path": "voices", "vocals": 1},
                    {"name": "mu", "layout": "files", "role": "accompaniment", "path": "music", "accompaniment": 1}],
    })
    train, _ = load_recipe(recipe, root, RATE, tmp_path / "cache")
    assert all(t.music is not None for ts in train.values() for t in ts)
    sampler = MixSampler(train, recipe, SPLEETER, "vocals", patch_frames=256)
    (voice,) = train["vo"]
    pairs, _ = sampler.partners[voice.name]
    assert [(a.name, s) for a, s in pairs] == [("mu/music/c-major.wav", -2)]
    rng = np.random.default_rng(0)
    for _ in range(3):
        voc, acc, n = sampler.item(rng)
        assert n == sampler.patch_samples
        heard = analyse(voc, RATE)
        assert heard["key"] == 0  # moved down to C
        assert heard["tempo"] == pytest.approx(120, rel=0.04)
        # the voice's notes start on the accompaniment's beats
        beats_v, beats_a = np.array(heard["beats"]), np.array(analyse(acc, RATE)["beats"])
        assert np.median([np.min(np.abs(beats_a - b)) for b in beats_v]) < 0.05
    # a recipe without "coherent" looks for no partner (and draws as it did before the field existed)
    plain = Recipe.from_dict({**recipe.to_dict(), "coherent": 0.0})
    assert not MixSampler(load_recipe(plain, root, RATE, tmp_path / "cache")[0], plain, SPLEETER, "vocals", patch_frames=256).partners


def test_coherent_recipe_fields_are_checked():
    good = {"sources": [{"name": "x", "layout": "stems", "path": "p", "true": 1, "vocals": 1, "accompaniment": 1}]}
    for extra, words in (({"coherent": 2}, "coherent must be in"), ({"coherent_semitones": 7}, "coherent_semitones"),
                         ({"coherent_tempo": 0}, "coherent_tempo")):
        with pytest.raises(ConfigError, match=words):
            Recipe.from_dict({**good, **extra})
