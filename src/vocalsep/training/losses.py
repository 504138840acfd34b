"""The training losses and the learning-rate schedule."""

from __future__ import annotations

import math

import torch

from .config import TrainConfig


def masked_l1(mask: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mean |mask * X - Y| over valid frames, with X and Y divided by each item's max of X
    (the paper's L1,1 loss)."""
    scale = X.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    err = (mask * X - Y).abs() / scale * w
    denom = (w.sum() * X.shape[1] * X.shape[2]).clamp_min(1.0)
    return err.sum() / denom


SDR_FLOOR_DB = 30.0  # masked_sdr: the distortion floor, this far below the patch's mixture energy


def masked_sdr(mask: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, w: torch.Tensor,
               floor_db: float = SDR_FLOOR_DB) -> torch.Tensor:
    """Minus the signal-to-distortion ratio (dB) of ``mask * X`` against ``Y`` per item, over the
    valid frames, averaged over the batch (``--loss sdr``).

    Per item ``-10 log10((sum Y^2 + f) / (sum (mask X - Y)^2 + f))`` with the floor
    ``f = 10 ** (-floor_db / 10) * sum X^2``: the gradient is that of the squared error, divided by
    the item's own error energy, so every patch counts alike whatever its loudness or its share of
    the target, as every clip does in a mean NSDR (the L1 loss weighs a patch by its target's
    magnitude, and a quiet voice hardly at all).  The floor keeps a patch without the target (the
    voice silent) from pulling without bound: it stops rewarding errors more than ``floor_db``
    below the mixture.  Scale-free, so the max normalisation of :func:`masked_l1` is not needed.
    """
    err = ((mask * X - Y) * w).pow(2).sum(dim=(1, 2, 3))
    sig = (Y * w).pow(2).sum(dim=(1, 2, 3))
    floor = (X * w).pow(2).sum(dim=(1, 2, 3)) * 10 ** (-floor_db / 10) + 1e-12
    return (10 * torch.log10((err + floor) / (sig + floor))).mean()


def training_loss(kind: str, mask: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The training loss ``kind`` (``TrainConfig.loss``) of ``mask`` for mixture ``X`` and target ``Y``."""
    if kind == "sdr":
        return masked_sdr(mask, X, Y, w)
    return masked_l1(mask, X, Y, w)


def lr_at(cfg: TrainConfig, step: int, total: int | None) -> float:
    """The learning rate of ``step``: a linear warm-up over ``warmup_steps``, then a cosine from ``lr``
    down to ``lr_min`` at step ``total`` (constant ``lr`` when the run has no step count)."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if not total:
        return cfg.lr * warm
    p = min(1.0, step / max(1, total))
    return (cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * p))) * warm
