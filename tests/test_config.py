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


def test_hop384_preset_is_the_paper_with_half_the_hop():
    paper, fine = get_preset("jansson2017"), get_preset("jansson2017-hop384")
    assert (fine.hop, fine.fullband, fine.name) == (384, "bandlimited", "jansson2017-hop384")
    # everything the network sees is the paper's but the hop; segments stay 30 s
    same = {f: getattr(paper, f) for f in ("sample_rate", "n_fft", "bins", "patch_frames", "unet", "framing", "channel_mode", "combine", "high_band")}
    assert same == {f: getattr(fine, f) for f in same}
    assert fine.segment_frames * fine.hop == paper.segment_frames * paper.hop
    assert fine.segment_frames % fine.unet.multiple == 0


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
        UNetConfig(input_norm="max_sqrt")  # removed with vocalsep train --input-norm
    with pytest.raises(ConfigError):
        Preset.from_dict({"name": "x", "bogus": 1})
    with pytest.raises(ConfigError):
        get_preset("nope")
