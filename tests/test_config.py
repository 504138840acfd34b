import pytest

from vocalsep.config import PRESETS, Preset, UNetConfig, get_preset
from vocalsep.errors import ConfigError


def test_jansson2017_preset_matches_the_paper():
    p = get_preset("jansson2017")
    assert (p.sample_rate, p.n_fft, p.hop, p.bins, p.patch_frames) == (8192, 1024, 768, 512, 128)
    u = p.unet
    assert u.channels == (16, 32, 64, 128, 256, 512)
    assert (u.kernel_size, u.stride, u.leaky_slope, u.dropout, u.dropout_layers, u.skip) == (5, 2, 0.2, 0.5, 3, True)
    assert p.max_frequency == pytest.approx(4088.0)


def test_preset_json_round_trip():
    for p in list(PRESETS.values()) + [Preset(name="x", unet=UNetConfig(channels=(4, 8), dropout_layers=1, skip=False))]:
        assert Preset.from_json(p.to_json()) == p


@pytest.mark.parametrize(
    "kwargs",
    [dict(hop=2048), dict(bins=600), dict(sample_rate=0), dict(patch_frames=0)],
)
def test_invalid_presets_are_rejected(kwargs):
    with pytest.raises(ConfigError):
        Preset(**kwargs)


def test_invalid_unet_and_unknown_keys_are_rejected():
    with pytest.raises(ConfigError):
        UNetConfig(kernel_size=4)
    with pytest.raises(ConfigError):
        UNetConfig(input_norm="zscore")
    with pytest.raises(ConfigError):
        Preset.from_dict({"name": "x", "bogus": 1})
    with pytest.raises(ConfigError):
        get_preset("nope")
