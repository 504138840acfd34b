"""The U-Net of Jansson et al. (2017), built from a layer table.

One class serves both the U-Net and the paper's baseline (``skip=False``: the
same encoder-decoder without skip connections).  The model takes a mixture
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

    name: str  # "enc0".."enc5", "dec0".."dec5"
    kind: str  # "conv" | "deconv"
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
    for i, cout in enumerate(dec_out):
        last = i == depth - 1
        # the output of decoder layer i (not the last) is joined with the
        # encoder output of the same size: encoder layer depth - 2 - i
        skip_from = f"enc{depth - 2 - i}" if (cfg.skip and not last) else None
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
    return rows


def normalize_magnitude(mag: torch.Tensor, rule: str, eps: float = 1e-8) -> torch.Tensor:
    """Scale a magnitude ``(batch, channels, bins, frames)`` into [0, 1].

    ``"max"``: divide each item by its own maximum over channels, bins and
    frames (the paper's "normalised to [0, 1]"); an all-zero item stays zero.
    ``"none"``: unchanged.  The same rule runs in training and separation,
    because it lives in the model.
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
        k, s = self.config.kernel_size, self.config.stride
        pad = k // 2
        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for spec in self.table:
            layers: list[nn.Module] = []
            if spec.kind == "conv":
                layers.append(nn.Conv2d(spec.in_channels, spec.out_channels, k, s, pad))
            else:
                layers.append(nn.ConvTranspose2d(spec.in_channels, spec.out_channels, k, s, pad, output_padding=s - 1))
            if spec.batchnorm:
                layers.append(nn.BatchNorm2d(spec.out_channels))
            layers.append(
                {
                    "leaky_relu": nn.LeakyReLU(self.config.leaky_slope),
                    "relu": nn.ReLU(),
                    "sigmoid": nn.Sigmoid(),
                }[spec.activation]
            )
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            (self.encoder if spec.kind == "conv" else self.decoder).append(nn.Sequential(*layers))

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        if mag.dim() != 4:
            raise ValueError(f"expected (batch, channels, bins, frames), got shape {tuple(mag.shape)}")
        bins, frames = mag.shape[-2], mag.shape[-1]
        m = self.config.multiple
        x = normalize_magnitude(mag, self.config.input_norm)
        x = F.pad(x, (0, -frames % m, 0, -bins % m))
        outputs: dict[str, torch.Tensor] = {}
        for spec, layer in zip(self.table, self.encoder):
            x = layer(x)
            outputs[spec.name] = x
        for spec, layer in zip(self.table[len(self.encoder) :], self.decoder):
            x = layer(x)
            if spec.skip_from is not None:
                x = torch.cat([x, outputs[spec.skip_from]], dim=1)
        return x[..., :bins, :frames]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
