"""The U-Net of Jansson et al. (2017), built from a layer table.

One class serves both the U-Net and the paper's baseline (``skip=False``: the
same encoder-decoder without skip connections), and Spleeter's variant of the
U-Net (``vocalsep.config.SPLEETER``: TensorFlow padding, decoder order, skips
from the pre-BatchNorm convolutions, a dilated final convolution).  The model takes a mixture
magnitude and returns a soft mask of the same shape; it knows nothing of
audio files.

Shapes: ``(batch, channels, bins, frames)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import UNetConfig


@dataclass(frozen=True)
class LayerSpec:
    """One row of the layer table."""

    name: str  # "enc0".."enc5", "dec0".."dec5" (and "head")
    kind: str  # "conv" | "deconv" | "head"
    in_channels: int
    out_channels: int
    batchnorm: bool
    activation: str  # "leaky_relu" | "relu" | "sigmoid"
    dropout: float
    skip_from: str | None  # encoder layer concatenated to this layer's output, if any


def layer_table(cfg: UNetConfig) -> list[LayerSpec]:
    """The layers of the network, in order, as data."""
    enc_in = (cfg.in_channels,) + cfg.channels[:-1]
    rows = [
        LayerSpec(f"enc{i}", "conv", cin, cout, True, "leaky_relu", 0.0, None)
        for i, (cin, cout) in enumerate(zip(enc_in, cfg.channels))
    ]
    depth = len(cfg.channels)
    dec_out = tuple(reversed(cfg.channels[:-1])) + (cfg.out_channels,)
    cin = cfg.channels[-1]
    dilated = cfg.final == "dilated_conv"
    if dilated:  # Spleeter: the last deconv makes one channel, like the other decoder layers
        dec_out = dec_out[:-1] + (1,)
    for i, cout in enumerate(dec_out):
        last = i == depth - 1 and not dilated
        # the output of decoder layer i (not the last) is joined with the
        # encoder output of the same size: encoder layer depth - 2 - i
        skip_from = f"enc{depth - 2 - i}" if (cfg.skip and i < depth - 1) else None
        rows.append(
            LayerSpec(
                f"dec{i}",
                "deconv",
                cin,
                cout,
                not last,
                "sigmoid" if last else "relu",
                cfg.dropout if i < cfg.dropout_layers else 0.0,
                skip_from,
            )
        )
        cin = cout * (2 if skip_from else 1)
    if dilated:
        rows.append(LayerSpec("head", "head", cin, cfg.out_channels, False, "sigmoid", 0.0, None))
    return rows


def same_padding(kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after) for an input that is a multiple of ``stride``."""
    total = max((kernel - 1) * dilation + 1 - stride, 0)
    return total // 2, total - total // 2


class Pad2d(nn.Module):
    """Zero padding of the last two axes: ``before`` rows/columns in front, ``after`` behind."""

    def __init__(self, before: int, after: int):
        super().__init__()
        self.before, self.after = before, after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (self.before, self.after, self.before, self.after))


class Crop2d(nn.Module):
    """Drop ``before`` rows/columns in front and ``after`` behind, on the last two axes."""

    def __init__(self, before: int, after: int):
        super().__init__()
        self.before, self.after = before, after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        return x[..., self.before : h - self.after, self.before : w - self.after]


def normalize_magnitude(mag: torch.Tensor, rule: str, eps: float = 1e-8) -> torch.Tensor:
    """The network's input from a magnitude ``(batch, channels, bins, frames)``.

    ``"max"``: divide each item by its own maximum over channels, bins and
    frames (the paper's "normalised to [0, 1]"); an all-zero item stays zero.
    ``"none"``: unchanged (Spleeter's networks take the raw magnitude).  The
    same rule runs in training and separation, because it lives in the model.
    """
    if rule == "none":
        return mag
    if rule == "max":
        peak = mag.amax(dim=(1, 2, 3), keepdim=True)
        return mag / peak.clamp_min(eps)
    raise ValueError(f"unknown normalisation {rule!r}")


class UNet(nn.Module):
    """Mixture magnitude in, soft mask in [0, 1] out.

    ``forward(mag)``: ``(batch, in_channels, bins, frames)`` ->
    ``(batch, out_channels, bins, frames)``.  Any number of bins and frames
    works: the input is zero-padded to a multiple of ``config.multiple`` and
    the mask cropped back.
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = config or UNetConfig()
        self.table = layer_table(self.config)
        cfg = self.config
        k, s = cfg.kernel_size, cfg.stride
        pad = k // 2
        tf_same = cfg.padding == "tf_same"
        before, after = same_padding(k, s)
        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.head: nn.Sequential | None = None
        # index, inside each encoder layer, of the module whose output is the skip tap
        self._tap = (1 if tf_same else 0) if cfg.skip_tap == "conv" else None
        for spec in self.table:
            layers: list[nn.Module] = []
            if spec.kind == "head":  # 4x4, dilation 2, "same" padding (symmetric: 3 and 3)
                hb, ha = same_padding(4, 1, 2)
                if hb != ha:
                    layers.append(Pad2d(hb, ha))
                layers.append(nn.Conv2d(spec.in_channels, spec.out_channels, 4, 1, hb if hb == ha else 0, dilation=2))
                layers.append(nn.Sigmoid())
                self.head = nn.Sequential(*layers)
                continue
            if spec.kind == "conv":
                if tf_same:
                    layers += [Pad2d(before, after), nn.Conv2d(spec.in_channels, spec.out_channels, k, s, 0)]
                else:
                    layers.append(nn.Conv2d(spec.in_channels, spec.out_channels, k, s, pad))
            elif tf_same:
                layers += [nn.ConvTranspose2d(spec.in_channels, spec.out_channels, k, s, 0), Crop2d(before, after)]
            else:
                layers.append(nn.ConvTranspose2d(spec.in_channels, spec.out_channels, k, s, pad, output_padding=s - 1))
            norm = [nn.BatchNorm2d(spec.out_channels, eps=cfg.bn_eps)] if spec.batchnorm else []
            act = [
                {
                    "leaky_relu": nn.LeakyReLU(cfg.leaky_slope),
                    "relu": nn.ReLU(),
                    "sigmoid": nn.Sigmoid(),
                }[spec.activation]
            ]
            layers += act + norm if (spec.kind == "deconv" and cfg.decoder_order == "act_bn") else norm + act
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            (self.encoder if spec.kind == "conv" else self.decoder).append(nn.Sequential(*layers))

    def train(self, mode: bool = True) -> "UNet":
        """Training mode; with ``config.batch_stats`` False the BatchNorm layers stay in evaluation
        mode (their stored statistics), while their scale and shift still learn."""
        super().train(mode)
        if mode and not self.config.batch_stats:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        if mag.dim() != 4:
            raise ValueError(f"expected (batch, channels, bins, frames), got shape {tuple(mag.shape)}")
        bins, frames = mag.shape[-2], mag.shape[-1]
        m = self.config.multiple
        x = normalize_magnitude(mag, self.config.input_norm)
        x = F.pad(x, (0, -frames % m, 0, -bins % m))
        outputs: dict[str, torch.Tensor] = {}
        depth = len(self.encoder)
        for i, (spec, layer) in enumerate(zip(self.table, self.encoder)):
            if self._tap is None:
                x = layer(x)
                outputs[spec.name] = x
                continue
            # the convolution's output is what the decoder gets: as the skip and, from the
            # last layer, as the bottleneck (whose BatchNorm and activation are then unused)
            last = i == depth - 1
            for j, module in enumerate(layer):
                if last and j > self._tap:
                    break
                x = module(x)
                if j == self._tap:
                    outputs[spec.name] = x
        for spec, layer in zip(self.table[depth:], self.decoder):
            x = layer(x)
            if spec.skip_from is not None:
                x = torch.cat([x, outputs[spec.skip_from]], dim=1)
        if self.head is not None:
            x = self.head(x)
        return x[..., :bins, :frames]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- inference copies -------------------------------------------------------------

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}  # the torch type of each separation precision


class SubPixelConvTranspose2d(nn.Module):
    """A strided transposed convolution computed as one ordinary convolution and a pixel shuffle.

    Output sample ``s*q + r`` of a stride-``s`` transposed convolution only
    meets the kernel taps ``r, r + s, r + 2s, ...``, so each of the ``s x s``
    output phases is an ordinary convolution of the input with a
    ``ceil(k / s)``-tap sub-kernel (the kernel is zero-padded to a multiple of
    ``s``).  All phases run as one convolution with ``s * s * out_channels``
    outputs, :func:`torch.nn.functional.pixel_shuffle` interleaves them, and
    the result is cropped to the transposed convolution's padding and
    ``output_padding``.  The output equals :class:`torch.nn.ConvTranspose2d`'s up
    to float rounding (tested).  :class:`InferenceUNet` uses it in bfloat16,
    where oneDNN runs ordinary convolutions better than transposed ones;
    float32 inference keeps the original layer.
    """

    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__()
        s = deconv.stride[0]
        if (
            deconv.groups != 1
            or deconv.dilation != (1, 1)
            or deconv.stride != (s, s)
            or deconv.padding[0] != deconv.padding[1]
            or deconv.output_padding[0] != deconv.output_padding[1]
        ):
            raise ValueError("only square strides, symmetric padding, no dilation and no groups are supported")
        w = deconv.weight.detach()
        cin, cout, kh, kw = w.shape
        taps = -(-max(kh, kw) // s)
        # (cin, cout, kh, kw) -> (cout, K, K, cin), zero-padded to K = taps * s; then tap
        # t = m * s + r  ->  phase r, sub-tap m; an ordinary convolution is a correlation, so
        # the sub-taps run backwards
        w = F.pad(w.permute(1, 2, 3, 0).contiguous(), (0, 0, 0, taps * s - kw, 0, taps * s - kh))
        w = w.view(cout, taps, s, taps, s, cin).flip(1, 3)
        self.weight = nn.Parameter(w.permute(0, 2, 4, 5, 1, 3).reshape(cout * s * s, cin, taps, taps), requires_grad=False)
        bias = deconv.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().repeat_interleave(s * s), requires_grad=False)
        self.stride, self.taps = s, taps
        self.kernel = (kh, kw)
        self.padding, self.output_padding = deconv.padding[0], deconv.output_padding[0]

    def _geometry(self, x: torch.Tensor) -> tuple[int, int, torch.Tensor, int]:
        """(output height, output width, the input to convolve, the convolution's padding)."""
        h, w = x.shape[-2], x.shape[-1]
        s, p, op, pad = self.stride, self.padding, self.output_padding, self.taps - 1
        out_h = (h - 1) * s - 2 * p + self.kernel[0] + op
        out_w = (w - 1) * s - 2 * p + self.kernel[1] + op
        # a large output_padding can reach past the full output (there: the bias alone)
        more_h = max(0, -(-(p + out_h) // s) - (h + pad))
        more_w = max(0, -(-(p + out_w) // s) - (w + pad))
        if more_h or more_w:
            return out_h, out_w, F.pad(x, (pad, pad + more_w, pad, pad + more_h)), 0
        return out_h, out_w, x, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_h, out_w, x, pad = self._geometry(x)
        p = self.padding
        y = F.pixel_shuffle(F.conv2d(x, self.weight, self.bias, padding=pad), self.stride)
        return y[..., p : p + out_h, p : p + out_w]


class PolyphaseConvTranspose2d(SubPixelConvTranspose2d):
    """:class:`SubPixelConvTranspose2d` without its zero taps: one convolution per output phase.

    A ``k``-tap kernel at stride ``s`` splits into phases of ``ceil(k / s)``
    or fewer taps (5 at stride 2: 3, 2), which the sub-pixel form pads with
    zeros to one ``ceil(k / s)``-square kernel (36 multiplications per output
    pixel where 25 are needed).  Here each phase runs as its own convolution
    with its own taps, computes only the output rows and columns that survive
    the crop, and is written straight into its strided place in the output.
    The result equals the sub-pixel form's up to float rounding (tested).

    With few output channels the separate convolutions do too little work
    each (the last layer has one output channel: four convolutions of one
    channel), so :class:`InferenceUNet` uses this form for layers with
    ``POLYPHASE_MIN_CHANNELS`` and more output channels only.
    """

    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__(deconv)
        s, taps = self.stride, self.taps
        cout = self.weight.shape[0] // (s * s)
        w = self.weight.detach().view(cout, s, s, *self.weight.shape[1:])
        b = None if self.bias is None else self.bias.detach().view(cout, s, s)
        kh, kw = self.kernel
        self.phases: list[tuple[int, int, int, int]] = []
        for rh in range(s):
            for rw in range(s):
                # phase r meets taps r, r + s, ... < k; the sub-kernel runs backwards, so its
                # zero-padded sub-taps are the first ones
                r0 = taps - len(range(rh, kh, s))
                c0 = taps - len(range(rw, kw, s))
                self.register_buffer(f"w{rh}{rw}", w[:, rh, rw, :, r0:, c0:].contiguous())
                self.register_buffer(f"b{rh}{rw}", None if b is None else b[:, rh, rw].contiguous())
                self.phases.append((rh, rw, r0, c0))
        del self.weight, self.bias
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_h, out_w, x, conv_pad = self._geometry(x)
        s, p = self.stride, self.padding
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and x.dim() == 4 else torch.contiguous_format
        out = torch.empty(x.shape[0], self.out_channels, out_h, out_w, dtype=x.dtype, device=x.device, memory_format=fmt)
        for rh, rw, r0, c0 in self.phases:
            i0, j0 = (rh - p) % s, (rw - p) % s  # the first output row / column of this phase
            nh, nw = len(range(i0, out_h, s)), len(range(j0, out_w, s))
            if not nh or not nw:
                continue
            # the sub-pixel form's phase output at q is this convolution's at q + r0
            q, qq = (p + i0) // s + r0, (p + j0) // s + c0
            weight, bias = getattr(self, f"w{rh}{rw}"), getattr(self, f"b{rh}{rw}")
            if r0 == self.taps or c0 == self.taps:  # a phase that meets no tap: the bias alone
                out[..., i0::s, j0::s] = 0.0 if bias is None else bias.view(-1, 1, 1)
                continue
            y = F.conv2d(x, weight, bias, padding=conv_pad)
            out[..., i0::s, j0::s] = y[..., q : q + nh, qq : qq + nw]
        return out


POLYPHASE_MIN_CHANNELS = 16  # InferenceUNet: PolyphaseConvTranspose2d from this many output channels, else SubPixel


class InferenceUNet(nn.Module):
    """A frozen copy of a :class:`UNet` for separation in another precision.

    The input is normalised in float32 (the model's own rule), then the copy
    runs in ``dtype`` with its transposed convolutions as
    :class:`PolyphaseConvTranspose2d` (16 and more output channels) or
    :class:`SubPixelConvTranspose2d` (fewer), and the mask comes back in float32.
    """

    def __init__(self, model: UNet, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        import copy
        from dataclasses import replace

        net = copy.deepcopy(model).eval().to(dtype)  # converted first: the rearranging below moves half the bytes
        self.input_norm = net.config.input_norm
        net.config = replace(net.config, input_norm="none")
        for seq in list(net.decoder) + ([net.head] if net.head is not None else []):
            for i, module in enumerate(seq):
                if isinstance(module, nn.ConvTranspose2d):
                    many = module.out_channels >= POLYPHASE_MIN_CHANNELS
                    seq[i] = (PolyphaseConvTranspose2d if many else SubPixelConvTranspose2d)(module)
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net
        self.dtype = dtype

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        x = normalize_magnitude(mag.float(), self.input_norm).to(self.dtype)
        if mag.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x).float()
