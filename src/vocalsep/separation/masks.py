"""Masks from the networks' outputs: combined by a rule, or refined by a multichannel Wiener filter
(our own, in PyTorch: norbert's loop over frames cost more than the networks); short segments padded
by repetition."""

from __future__ import annotations

from collections.abc import Mapping

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


# The Wiener filter's constants: Open-Unmix's (its filtering.py) for the covariances' floor, and a
# diagonal loading relative to each bin's power, which keeps the 2 x 2 inverse well conditioned in
# float32 where the stems' spatial images are nearly the same (mono-like music).
WIENER_EPS = 1e-10
WIENER_LOADING = 1e-3
WIENER_BINS = 128  # bins filtered at a time: each bin's model is its own, and memory stays small


def wiener_stems(spec: torch.Tensor, outputs: torch.Tensor, iterations: int) -> torch.Tensor:
    """Complex stems ``(sources, channels, bins, frames)`` of a multichannel Wiener filter.

    ``spec`` is the mixture's complex STFT ``(channels, bins, frames)``, ``outputs`` each source's
    magnitude estimate ``(sources, channels, bins, frames)``.  The stems start as the outputs' ratio
    mask of the mixture; each of the ``iterations`` EM iterations then fits every source a power per
    bin and frame and a spatial covariance per bin over the frames, and filters the mixture with
    ``v_j R_j C^-1`` (Open-Unmix's and norbert's algorithm, vectorised over the frames in float32,
    with the 2 x 2 inverse in closed form).  Channels are filtered in stereo pairs; an odd one alone.
    """
    return torch.stack(_wiener(spec, list(outputs), iterations, masks=False))


def wiener_masks(spec: torch.Tensor, outputs: Mapping[str, torch.Tensor], iterations: int) -> dict[str, torch.Tensor]:
    """Complex masks ``{stem: (channels, bins, frames)}`` of :func:`wiener_stems`: each stem over the mixture.

    ``spec`` is the mixture's complex STFT on the modelled bins and ``outputs`` each stem's output
    spectrogram (mask x mixture magnitude) of the same shape.
    """
    names = list(outputs)
    return dict(zip(names, _wiener(spec, [outputs[t] for t in names], iterations, masks=True)))


def _wiener(spec: torch.Tensor, outputs: list[torch.Tensor], iterations: int, masks: bool) -> list[torch.Tensor]:
    """Each source's stem (or, with ``masks``, the stem over the mixture), filtered a stereo pair of
    channels and :data:`WIENER_BINS` bins at a time, so that its working memory stays small."""
    out = [torch.empty(spec.shape, dtype=torch.complex64, device=spec.device) for _ in outputs]
    scale = max(1.0, float(spec.abs().max()) / 10.0)  # as norbert: the mixture at most 10, for the floors
    for c in range(0, spec.shape[0], 2):
        pair = slice(c, min(c + 2, spec.shape[0]))
        for b in range(0, spec.shape[1], WIENER_BINS):
            bins = slice(b, b + WIENER_BINS)
            x = spec[pair, bins].to(torch.complex64) / scale
            v = torch.stack([o[pair, bins].float() for o in outputs])
            y = v / (v.sum(0, keepdim=True) + WIENER_EPS) * x
            if iterations:
                y = _em(y, x, iterations)
            if masks:
                power = x.real.square() + x.imag.square()
                y = y * torch.where(power > 0, x.conj() / power.clamp_min(1e-30), torch.zeros_like(x))
            else:
                y = y * scale
            for o, yj in zip(out, y):
                o[pair, bins] = yj
    return out


def _em(y: torch.Tensor, x: torch.Tensor, iterations: int) -> torch.Tensor:
    """``iterations`` EM iterations of the Wiener filter on one or two channels: ``y`` the sources'
    complex estimates ``(J, C, B, T)``, ``x`` the mixture ``(C, B, T)``."""
    eps = WIENER_EPS
    for _ in range(iterations):
        p = y.real.square() + y.imag.square()  # (J, C, B, T)
        vj = p.mean(1)  # each source's power (J, B, T)
        weight = vj.sum(-1, keepdim=True) + eps  # (J, B, 1)
        if x.shape[0] == 1:  # one channel: the covariance is a scalar
            r = p[:, 0].sum(-1, keepdim=True) / weight
            c = (vj * r).sum(0)
            c = c * (1 + WIENER_LOADING) + eps ** 0.5
            y = (vj * r / c * x[0])[:, None]
            continue
        r00 = p[:, 0].sum(-1, keepdim=True) / weight
        r11 = p[:, 1].sum(-1, keepdim=True) / weight
        r01 = (y[:, 0] * y[:, 1].conj()).sum(-1, keepdim=True) / weight
        c00, c11, c01 = (vj * r00).sum(0), (vj * r11).sum(0), (vj * r01).sum(0)
        load = (c00 + c11).mul_(0.5 * WIENER_LOADING).add_(eps ** 0.5)
        c00, c11 = c00 + load, c11 + load
        det = c00 * c11 - (c01.real.square() + c01.imag.square())
        z0 = (c11 * x[0] - c01 * x[1]) / det  # C^-1 x
        z1 = (c00 * x[1] - c01.conj() * x[0]) / det
        y = torch.stack([vj * (r00 * z0 + r01 * z1), vj * (r01.conj() * z0 + r11 * z1)], 1)
    return y


def wrap_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """``x`` (..., frames') repeated from its start along the last axis to ``frames`` frames
    (``frames >= frames'``): the padding of :attr:`SeparationOptions.pad` ``"wrap"``."""
    t = x.shape[-1]
    if frames <= t or t == 0:
        return x
    return x.repeat(*(1,) * (x.dim() - 1), -(-frames // t))[..., :frames]
