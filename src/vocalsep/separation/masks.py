"""Masks from the networks' outputs: combined by a rule, or refined by a multichannel Wiener filter;
short segments padded by repetition."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ..config import COMBINE_RULES
from ..errors import ConfigError
from ..stems import STEMS


def combine_masks(masks: Mapping[str, torch.Tensor], rule: str, eps: float = 1e-10) -> dict[str, torch.Tensor]:
    """The stems' masks from the raw masks of a vocal and an accompaniment model.

    ``independent`` returns them as they are; ``average``: vocals
    ``(m_v + 1 - m_a) / 2``, accompaniment ``1 -`` that; ``ratio``: each mask
    over their sum; ``ratio2``: Spleeter's ``(m^2 + eps/2) / (m_v^2 + m_a^2 + eps)``.
    Masks of a single model are returned unchanged, whatever the rule.
    """
    if rule not in COMBINE_RULES:
        raise ConfigError(f"combine must be one of {COMBINE_RULES}, not {rule!r}")
    if rule == "independent" or not set(STEMS) <= set(masks):
        return dict(masks)
    mv, ma = masks["vocals"], masks["accompaniment"]
    if rule == "average":
        v = ((mv + 1 - ma) * 0.5).clamp(0, 1)
        out = {"vocals": v, "accompaniment": 1 - v}
    elif rule == "ratio":
        mv, ma = mv.clamp_min(0), ma.clamp_min(0)
        total = mv + ma
        v = torch.where(total > 0, mv / total.clamp_min(1e-12), torch.full_like(mv, 0.5))
        out = {"vocals": v, "accompaniment": 1 - v}
    else:  # ratio2, in place where it can be: the same values, fewer passes over the spectrogram
        v2, a2 = mv * mv, ma * ma
        total = (v2 + a2).add_(eps)
        out = {"vocals": v2.add_(eps / 2).div_(total), "accompaniment": a2.add_(eps / 2).div_(total)}
    return {t: out[t] for t in masks}


def wiener_masks(spec: torch.Tensor, outputs: Mapping[str, torch.Tensor], iterations: int) -> dict[str, torch.Tensor]:
    """Complex masks ``{stem: (channels, bins, frames)}`` of a multichannel Wiener filter.

    ``spec`` is the mixture's complex STFT on the modelled bins ``(channels, bins, frames)`` and
    ``outputs`` each stem's output spectrogram (mask x mixture magnitude) of the same shape.
    norbert's ``wiener`` (Open-Unmix's filter) starts from their ratio mask and refines it with
    ``iterations`` EM iterations, and returns complex stems ``y``; the mask is ``y / spec``.
    """
    try:
        import norbert
    except ImportError:
        raise ConfigError("the Wiener filter needs the norbert package: pip install 'vocalsep[wiener]'") from None
    names = list(outputs)
    v = np.stack([outputs[t].float().cpu().numpy() for t in names], axis=-1).transpose(2, 1, 0, 3)  # frames, bins, ch, src
    x = spec.cpu().numpy().transpose(2, 1, 0)  # frames, bins, ch
    y = norbert.wiener(v.astype(np.float64), x.astype(np.complex128), iterations=iterations, use_softmask=True)
    xc = np.conj(x)[..., None]
    power = (np.abs(x) ** 2)[..., None]
    m = np.where(power > 0, y * xc / np.maximum(power, 1e-30), 0).astype(np.complex64)  # frames, bins, ch, src
    return {t: torch.from_numpy(np.ascontiguousarray(m[..., i].transpose(2, 1, 0))).to(spec.device) for i, t in enumerate(names)}


def wrap_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """``x`` (..., frames') repeated from its start along the last axis to ``frames`` frames
    (``frames >= frames'``): the padding of :attr:`SeparationOptions.pad` ``"wrap"``."""
    t = x.shape[-1]
    if frames <= t or t == 0:
        return x
    return x.repeat(*(1,) * (x.dim() - 1), -(-frames // t))[..., :frames]
