"""Fast inference copies of a trained :class:`~vocalsep.model.UNet`: its transposed convolutions
rebuilt as sub-pixel or polyphase ordinary convolutions, in float32 or bfloat16, for the
separator (``SeparationOptions.precision``).  Training uses the plain UNet."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .model import UNet, normalize_magnitude

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
