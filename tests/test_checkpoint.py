import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from vocalsep.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from vocalsep.config import Preset, UNetConfig
from vocalsep.errors import ConfigError, ModelError
from vocalsep.model import UNet

TINY = Preset(name="tiny", unet=UNetConfig(channels=(4, 8, 16)))


def _trained_like(seed=0):
    torch.manual_seed(seed)
    m = UNet(TINY.unet)
    # make the BatchNorm statistics non-trivial, as after training
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.rand(2, 1, 64, 32))
    return m.eval()


def test_round_trip_gives_identical_output(tmp_path):
    m = _trained_like()
    path = save_checkpoint(tmp_path / "v.safetensors", m, target="vocals", preset=TINY, training={"steps": 3, "data": "synthetic"})
    ck = load_checkpoint(path)
    assert ck.target == "vocals" and ck.preset == TINY and ck.training == {"steps": 3, "data": "synthetic"}
    assert not ck.model.training
    x = torch.rand(2, 1, 64, 40)
    with torch.no_grad():
        assert torch.equal(m(x), ck.model(x))
    assert not list(tmp_path.glob(".*.part"))


def test_metadata_is_self_describing(tmp_path):
    path = save_checkpoint(tmp_path / "a.safetensors", _trained_like(), target="accompaniment", preset=TINY)
    meta = read_metadata(path)
    assert meta["vocalsep.target"] == "accompaniment"
    assert Preset.from_json(meta["vocalsep.preset"]) == TINY
    assert json.loads(meta["vocalsep.training"]) == {}


def test_fp16_storage_loads_as_float32(tmp_path):
    m = _trained_like()
    path = save_checkpoint(tmp_path / "h.safetensors", m, target="vocals", preset=TINY, dtype=torch.float16)
    assert load_file(path)["encoder.0.0.weight"].dtype == torch.float16
    ck = load_checkpoint(path)
    assert ck.model.encoder[0][0].weight.dtype == torch.float32
    x = torch.rand(1, 1, 64, 32)
    with torch.no_grad():
        assert torch.allclose(m(x), ck.model(x), atol=1e-2)


def _tamper(path, fn):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(path)
    fn(tensors)
    save_file(tensors, path, metadata=meta)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda t: t.pop("encoder.0.0.weight"), "missing"),
        (lambda t: t.__setitem__("extra.weight", torch.zeros(1)), "unexpected"),
        (lambda t: t.__setitem__("encoder.0.0.bias", torch.zeros(5)), "shape"),
    ],
)
def test_loading_is_strict(tmp_path, change, message):
    path = save_checkpoint(tmp_path / "v.safetensors", _trained_like(), target="vocals", preset=TINY)
    _tamper(path, change)
    with pytest.raises(ModelError, match=message):
        load_checkpoint(path)


def test_foreign_and_broken_files_are_refused(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, plain)
    with pytest.raises(ModelError, match="not a vocalsep checkpoint"):
        load_checkpoint(plain)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match="not a safetensors"):
        load_checkpoint(junk)
    with pytest.raises(ModelError, match="no such"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_save_refuses_mismatched_config_and_unknown_target(tmp_path):
    with pytest.raises(ConfigError):
        save_checkpoint(tmp_path / "x.safetensors", UNet(UNetConfig()), target="vocals", preset=TINY)
    with pytest.raises(ConfigError):
        save_checkpoint(tmp_path / "x.safetensors", _trained_like(), target="drums", preset=TINY)
    assert not list(tmp_path.iterdir())
