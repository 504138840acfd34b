import math

import pytest
import torch

from vocalsep.spectral import STFT, interpolate_mask


@pytest.mark.parametrize("n_fft,hop", [(1024, 768), (2048, 512), (1024, 256)])
@pytest.mark.parametrize("length", [1, 100, 1023, 8192, 12345])
def test_stft_round_trip(n_fft, hop, length):
    torch.manual_seed(0)
    x = torch.randn(2, length)
    s = STFT(n_fft, hop)
    spec = s.forward(x)
    assert spec.shape == (2, n_fft // 2 + 1, s.frames(length))
    assert s.frames(length) == (max(length - 1, 0) + hop - 1) // hop + 1
    y = s.inverse(spec, length)
    assert y.shape == x.shape
    assert torch.allclose(x, y, atol=1e-4)


def test_stft_keeps_leading_dimensions():
    s = STFT(1024, 768)
    x = torch.randn(3, 2, 5000)
    assert s.forward(x).shape == (3, 2, 513, 8)  # last centre 5376 >= 4999


def test_stft_window_regression():
    """A round trip cannot catch a wrong window shared by both halves; these numbers can.

    A sine exactly on bin k with amplitude A gives |X[k]| = A * sum(w) / 2, and
    for the periodic Hann window sum(w) = n_fft / 2, so |X[k]| = A * n_fft / 4;
    the neighbouring bins get half of that and the rest nothing.
    """
    n_fft, hop, sr, k, amp = 1024, 768, 8192, 40, 0.5
    t = torch.arange(8 * n_fft, dtype=torch.float64)
    x = amp * torch.cos(2 * math.pi * k * t / n_fft)
    mag = STFT(n_fft, hop).forward(x).abs()
    frame = 4  # fully inside the signal
    assert mag[k, frame].item() == pytest.approx(amp * n_fft / 4, rel=1e-9)
    assert mag[k - 1, frame].item() == pytest.approx(amp * n_fft / 8, rel=1e-9)
    assert mag[k + 2, frame].item() == pytest.approx(0.0, abs=1e-6)
    # stored numbers (checked against numpy.fft.rfft of the hand-windowed frames):
    # the first frame (zero-padded half window) and a middle frame of a fixed chirp
    chirp = torch.sin(2 * math.pi * (50 + 0.01 * t) * t / sr)
    m = STFT(n_fft, hop).forward(chirp).abs()
    assert m.shape == (513, 12)
    assert m[6:9, 0].tolist() == pytest.approx([118.24477, 122.68756, 82.575693], rel=1e-4)
    assert m[:, 5].sum().item() == pytest.approx(598.94513, rel=1e-4)


def test_interpolate_mask_identity_and_constants():
    torch.manual_seed(0)
    mask = torch.rand(2, 512, 20)
    same = interpolate_mask(mask, src_rate=8192, src_n_fft=1024, src_hop=768, dst_rate=8192, dst_n_fft=1024, dst_hop=768, dst_frames=20, high="zero")
    assert same.shape == (2, 513, 20)
    assert torch.allclose(same[:, :512], mask)
    assert torch.all(same[:, 512] == 0)
    const = torch.full((1, 512, 10), 0.25)
    full = interpolate_mask(const, src_rate=8192, src_n_fft=1024, src_hop=768, dst_rate=44100, dst_n_fft=2048, dst_hop=512, dst_frames=160, high="edge")
    assert full.shape == (1, 1025, 160)
    assert torch.allclose(full, torch.full_like(full, 0.25))


def test_interpolate_mask_high_band_rules_and_linearity():
    # a mask that rises linearly with frequency is reproduced exactly at the destination bins
    bins = torch.arange(512, dtype=torch.float32) / 511
    mask = bins[None, :, None].expand(1, 512, 4).contiguous()
    out = {
        rule: interpolate_mask(mask, src_rate=8192, src_n_fft=1024, src_hop=768, dst_rate=16000, dst_n_fft=1024, dst_hop=256, dst_frames=8, high=rule)
        for rule in ("edge", "zero", 1.0)
    }
    hz = torch.arange(513) * 16000 / 1024
    inside = hz <= 4088
    expected = (hz[inside] / 4088).float()
    for o in out.values():
        assert torch.allclose(o[0, inside, 0], expected, atol=1e-5)
    assert torch.all(out["zero"][0, ~inside] == 0)
    assert torch.all(out[1.0][0, ~inside] == 1)
    top = mask[0, -125:, 0].mean()  # the top 1000 Hz = 125 bins of 8 Hz
    assert torch.allclose(out["edge"][0, ~inside], top.expand_as(out["edge"][0, ~inside]))
    with pytest.raises(ValueError):
        interpolate_mask(mask, src_rate=8192, src_n_fft=1024, src_hop=768, dst_rate=16000, dst_n_fft=1024, dst_hop=256, dst_frames=8, high="bogus")
    with pytest.raises(ValueError):
        interpolate_mask(mask, src_rate=8192, src_n_fft=1024, src_hop=768, dst_rate=16000, dst_n_fft=1024, dst_hop=256, dst_frames=8, high="one")
