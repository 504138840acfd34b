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
