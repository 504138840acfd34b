import pytest
import torch

from vocalsep.config import Preset, UNetConfig
from vocalsep.model import UNet, count_parameters, layer_table, normalize_magnitude

# (name, kind, in, out, batchnorm, activation, dropout, skip_from): the paper's table
PAPER_TABLE = [
    ("enc0", "conv", 1, 16, True, "leaky_relu", 0.0, None),
    ("enc1", "conv", 16, 32, True, "leaky_relu", 0.0, None),
    ("enc2", "conv", 32, 64, True, "leaky_relu", 0.0, None),
    ("enc3", "conv", 64, 128, True, "leaky_relu", 0.0, None),
    ("enc4", "conv", 128, 256, True, "leaky_relu", 0.0, None),
    ("enc5", "conv", 256, 512, True, "leaky_relu", 0.0, None),
    ("dec0", "deconv", 512, 256, True, "relu", 0.5, "enc4"),
    ("dec1", "deconv", 512, 128, True, "relu", 0.5, "enc3"),
    ("dec2", "deconv", 256, 64, True, "relu", 0.5, "enc2"),
    ("dec3", "deconv", 128, 32, True, "relu", 0.0, "enc1"),
    ("dec4", "deconv", 64, 16, True, "relu", 0.0, "enc0"),
    ("dec5", "deconv", 32, 1, False, "sigmoid", 0.0, None),
]


def _rows(cfg):
    return [(r.name, r.kind, r.in_channels, r.out_channels, r.batchnorm, r.activation, r.dropout, r.skip_from) for r in layer_table(cfg)]


def test_layer_table_is_the_papers():
    assert _rows(Preset().unet) == PAPER_TABLE


def test_baseline_has_no_skips():
    rows = _rows(UNetConfig(skip=False))
    assert all(r[7] is None for r in rows)
    assert [r[2] for r in rows[6:]] == [512, 256, 128, 64, 32, 16]


def test_parameter_counts_are_pinned():
    assert count_parameters(UNet(UNetConfig())) == 9_823_313
    assert count_parameters(UNet(UNetConfig(skip=False))) == 8_734_913


def test_layers_are_5x5_stride_2_with_leaky_slope():
    m = UNet()
    conv = m.encoder[0][0]
    assert conv.kernel_size == (5, 5) and conv.stride == (2, 2)
    assert m.encoder[0][2].negative_slope == 0.2
    assert isinstance(m.decoder[-1][-1], torch.nn.Sigmoid)
    assert sum(isinstance(x, torch.nn.Dropout) for layer in m.decoder for x in layer) == 3


@pytest.mark.parametrize("frames", [1, 7, 64, 100, 129])
def test_any_number_of_frames_and_mask_range(frames):
    m = UNet(UNetConfig(channels=(4, 8, 16))).eval()
    x = torch.rand(3, 1, 512, frames) * 10
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape
    assert torch.all((y >= 0) & (y <= 1))


def test_input_norm_makes_the_mask_scale_invariant():
    m = UNet(UNetConfig(channels=(4, 8, 16))).eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(m(x), m(x * 123.0), atol=1e-5)
    assert normalize_magnitude(x * 7, "max").max().item() == pytest.approx(1.0)
    assert torch.all(normalize_magnitude(torch.zeros(1, 1, 4, 4), "max") == 0)


def test_seeded_model_regression():
    """Stored numbers for a fixed input through a seeded paper U-Net (eval mode)."""
    torch.manual_seed(1234)
    m = UNet().eval()
    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 1, 512, 128, generator=g)
    with torch.no_grad():
        y = m(x)
    assert y.mean().item() == pytest.approx(REGRESSION_MEAN, rel=1e-4)
    assert y[0, 0, 100, :4].tolist() == pytest.approx(REGRESSION_ROW, rel=1e-4)


REGRESSION_MEAN = 0.56986547
REGRESSION_ROW = [0.5003008, 0.5504773, 0.5953387, 0.5144762]


def test_wrong_rank_is_an_error():
    with pytest.raises(ValueError):
        UNet()(torch.rand(512, 128))


@pytest.mark.parametrize("k,s,p,op", [(5, 2, 0, 0), (5, 2, 2, 1), (4, 2, 1, 0), (3, 3, 1, 2), (2, 2, 0, 0)])
def test_subpixel_transposed_convolution_equals_conv_transpose(k, s, p, op):
    from vocalsep.inference import SubPixelConvTranspose2d

    torch.manual_seed(k * 10 + s)
    deconv = torch.nn.ConvTranspose2d(3, 4, k, s, p, output_padding=op)
    sub = SubPixelConvTranspose2d(deconv)
    for shape in [(2, 3, 5, 7), (1, 3, 1, 4)]:
        x = torch.randn(shape)
        ref = deconv(x)
        y = sub(x)
        assert y.shape == ref.shape
        assert (y - ref).abs().max() < 1e-5


@pytest.mark.parametrize("k,s,p,op", [(5, 2, 0, 0), (5, 2, 2, 1), (5, 2, 1, 1), (4, 2, 1, 0), (3, 3, 1, 2), (2, 2, 0, 0), (1, 2, 0, 1)])
def test_polyphase_transposed_convolution_equals_conv_transpose(k, s, p, op):
    from vocalsep.inference import PolyphaseConvTranspose2d

    torch.manual_seed(k * 10 + s + p)
    deconv = torch.nn.ConvTranspose2d(3, 4, k, s, p, output_padding=op)
    poly = PolyphaseConvTranspose2d(deconv)
    for shape in [(2, 3, 5, 7), (1, 3, 1, 4), (1, 3, 6, 6)]:
        for fmt in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(shape).contiguous(memory_format=fmt)
            ref = deconv(x)
            y = poly(x)
            assert y.shape == ref.shape
            assert (y - ref).abs().max() < 1e-5


def test_subpixel_refuses_what_it_cannot_compute():
    from vocalsep.inference import SubPixelConvTranspose2d

    for deconv in (torch.nn.ConvTranspose2d(2, 2, 3, (2, 1)), torch.nn.ConvTranspose2d(2, 2, 3, 2, dilation=2),
                   torch.nn.ConvTranspose2d(2, 4, 3, 2, groups=2)):
        with pytest.raises(ValueError):
            SubPixelConvTranspose2d(deconv)


@pytest.mark.parametrize("preset", ["jansson2017", "spleeter"])
def test_inference_copy_matches_the_model(preset):
    from vocalsep.config import get_preset
    from vocalsep.inference import InferenceUNet, PolyphaseConvTranspose2d, SubPixelConvTranspose2d

    torch.manual_seed(0)
    model = UNet(get_preset(preset).unet).eval()
    for mod in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    x = torch.rand(1, model.config.in_channels, 128, 70) * 3
    with torch.inference_mode():
        ref = model(x)
        fast32 = InferenceUNet(model, torch.float32)
        assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in fast32.modules())
        assert any(isinstance(m, SubPixelConvTranspose2d) for m in fast32.modules())
        assert any(isinstance(m, PolyphaseConvTranspose2d) for m in fast32.modules())
        assert (fast32(x) - ref).abs().max() < 1e-5
        fast16 = InferenceUNet(model, torch.bfloat16)
        y = fast16(x)
        assert y.dtype == torch.float32 and y.shape == ref.shape
        assert (y - ref).abs().mean() < 0.02  # bfloat16 keeps 8 significant bits
    # the original is untouched
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())
    assert next(model.parameters()).dtype == torch.float32


def test_input_norms_max_and_none():
    torch.manual_seed(1)
    mag = torch.rand(2, 1, 16, 8) ** 4
    mag[1] *= 1e-3
    x = normalize_magnitude(mag, "max")
    assert x.min() >= 0 and (x.amax(dim=(1, 2, 3)) - 1).abs().max() < 1e-6
    assert torch.allclose(x[0], normalize_magnitude(mag[:1] * 37.0, "max")[0], atol=1e-6)
    assert normalize_magnitude(mag, "none") is mag
    with pytest.raises(ValueError, match="max_sqrt"):
        normalize_magnitude(mag, "max_sqrt")
