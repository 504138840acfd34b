"""Validation during training: the loss on fixed patches, and the target's scores on whole held-out
tracks separated by the real :class:`~vocalsep.separator.Separator`."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import torch

from ..config import Preset
from ..evaluation.metrics import nsdr_scores
from ..model import UNet
from ..separator import SeparationOptions, Separator
from .features import CachedTrack, PatchSampler
from .losses import masked_l1
from .mix import MixTrack


def valid_patches(tracks: list[CachedTrack], preset: Preset, target: str, seed: int, count: int = 16, target_rule: str = "magnitude"):
    """Fixed validation patches (no augmentation), drawn once; their target follows the run's ``target_rule``."""
    from .config import Augment

    sampler = PatchSampler(tracks, preset, target, Augment(remix=0.0), seed=seed + 7777, target_rule=target_rule)
    return [sampler.batch(i, 4) for i in range(max(1, count // 4))]


@torch.no_grad()
def validate(model: UNet, preset: Preset, target: str, tracks: list[CachedTrack], patches, seconds: float | None) -> dict[str, float]:
    """Validation loss on fixed patches, and mean NSDR/SDR of ``target`` on whole tracks through the real separator
    (on the model's device)."""
    model.eval()
    dev = next(model.parameters()).device
    losses = []
    for X, Y, w in patches:
        X, Y, w = X.to(dev), Y.to(dev), w.to(dev)
        losses.append(masked_l1(model(X), X, Y, w).item())
    sep = Separator({target: model}, preset, SeparationOptions(), device=dev)
    nsdrs, sdrs = [], []
    for t in tracks:
        if t.vocals is None:
            continue
        n = t.samples if seconds is None else min(t.samples, int(seconds * preset.sample_rate))
        mix, voc, acc = t.mixture[:n], t.vocals[:n], t.accompaniment[:n]
        if not np.any(voc) or not np.any(acc):
            continue  # only tracks with a voice (and an accompaniment) count
        est = sep.separate(mix, preset.sample_rate)
        scores = nsdr_scores(mix, {"vocals": voc, "accompaniment": acc}, {k: v.numpy() for k, v in est.items()})
        nsdrs.append(scores[target]["nsdr"])
        sdrs.append(scores[target]["sdr"])
    model.train()
    return {
        "valid_loss": float(np.mean(losses)) if losses else float("nan"),
        "valid_nsdr": float(np.mean(nsdrs)) if nsdrs else float("nan"),
        "valid_sdr": float(np.mean(sdrs)) if sdrs else float("nan"),
    }


def plain_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """``10 log10(sum reference^2 / sum (reference - estimate)^2)`` over all channels and samples, in dB
    (the global SDR of the MDX challenges: no projection, no windows)."""
    ref = reference.astype(np.float64)
    err = ref - estimate.astype(np.float64)
    return float(10 * np.log10((np.sum(ref**2) + 1e-10) / (np.sum(err**2) + 1e-10)))


@torch.no_grad()
def validate_mix(model: UNet, preset: Preset, target: str, tracks: list[MixTrack], patches, seconds: float | None) -> dict[str, Any]:
    """Validation loss on fixed patches, and the target's global SDR on whole validation tracks through the real
    separator: ``valid_sdr`` the mean over tracks, ``valid_nsdr`` the mean improvement over the mixture itself,
    ``valid_by_source`` the mean SDR per recipe source."""
    model.eval()
    dev = next(model.parameters()).device
    losses = [masked_l1(model(X.to(dev)), X.to(dev), Y.to(dev), w.to(dev)).item() for X, Y, w in patches]
    # a copy: the separator may convert its networks (memory format, precision) inside inference mode
    sep = Separator({target: copy.deepcopy(model)}, preset, SeparationOptions(), device=dev)
    sdrs, gains, by_source = [], [], {}
    for t in tracks:
        if target not in t.parts or len(t.parts) < 2:
            continue
        n = t.samples if seconds is None else min(t.samples, int(seconds * preset.sample_rate))
        mix, ref = t.mixture()[:, :n], None
        ref = t.get(target, mix.shape[0])[:, :n]
        if not np.any(ref) or not np.any(mix - ref):
            continue
        est = sep.separate(mix, preset.sample_rate)[target].numpy()
        sdr = plain_sdr(ref, est)
        sdrs.append(sdr)
        gains.append(sdr - plain_sdr(ref, mix))
        by_source.setdefault(t.source, []).append(sdr)
    model.train()
    return {
        "valid_loss": float(np.mean(losses)) if losses else float("nan"),
        "valid_nsdr": float(np.mean(gains)) if gains else float("nan"),
        "valid_sdr": float(np.mean(sdrs)) if sdrs else float("nan"),
        "valid_by_source": json.dumps({k: round(float(np.mean(v)), 4) for k, v in sorted(by_source.items())}),
    }
