#!/usr/bin/env python
"""``vocalsep evaluate`` with mask-averaging ensembles and weight averages (a measurement, not a feature).

In a ``--system NAME=V,A`` spec, a model path may join several files of one
target with ``+``: their networks' outputs (masks) are averaged before the
combination rule.  ``--average-weights OUT.safetensors FILE...`` writes the
element-wise mean of several checkpoints' tensors (a "weight soup") instead.

    python scripts/probes/ensemble_eval.py evaluate --data ../shared/data/mir1k --dataset mir1k \\
        --singers abjones,tammy --system e2=runs/a/last.safetensors+runs/b/last.safetensors,ACC --out results/ens
    python scripts/probes/ensemble_eval.py --average-weights soup.safetensors runs/a/last.safetensors runs/b/last.safetensors

Measured results: docs/training.md, "Round 4".
"""

from __future__ import annotations

import sys

import torch
from torch import nn

import vocalsep.models as registry
import vocalsep.separator as separator
from vocalsep.checkpoint import load_checkpoint


class Ensemble(nn.Module):
    """The mean of several networks' outputs (masks)."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def forward(self, x):
        return sum(m(x) for m in self.members) / len(self.members)


_inference_copy = separator.InferenceUNet
_from_pretrained = separator.Separator.from_pretrained.__func__
_resolve = registry.resolve_model


def inference_copy(model, dtype=torch.bfloat16):
    if isinstance(model, Ensemble):
        return Ensemble([_inference_copy(m, dtype) for m in model.members])
    return _inference_copy(model, dtype)


def from_pretrained(cls, name_or_path="default", options=None, *, device="cpu"):
    paths = name_or_path if isinstance(name_or_path, (list, tuple)) else [name_or_path]
    if not any("+" in str(p) for p in paths):
        return _from_pretrained(cls, name_or_path, options, device=device)
    models, preset = {}, None
    for p in paths:
        checkpoints = [load_checkpoint(q, device) for q in str(p).split("+")]
        preset = checkpoints[0].preset
        nets = [c.model for c in checkpoints]
        models[checkpoints[0].target] = Ensemble(nets) if len(nets) > 1 else nets[0]
    return cls(models, preset, options, device=device, name="ensemble")


def resolve_model(spec):
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    if any("+" in str(s) for s in specs):
        files = [f for s in specs for part in str(s).split("+") for f in _resolve(part)[1]]
        return "ensemble", files
    return _resolve(spec)


separator.InferenceUNet = inference_copy
separator.Separator.from_pretrained = classmethod(from_pretrained)
registry.resolve_model = resolve_model


def average_weights(out: str, paths: list[str]) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    total, meta = None, None
    for p in paths:
        with safe_open(p, "pt") as f:
            meta = meta or f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if total is None:
            total = {k: v.double() if v.is_floating_point() else v for k, v in tensors.items()}
        else:
            for k, v in tensors.items():
                if v.is_floating_point():
                    total[k] += v.double()
    mean = {k: (v / len(paths)).float() if v.is_floating_point() else v for k, v in total.items()}
    save_file(mean, out, metadata=meta)


if __name__ == "__main__":  # evaluation workers are spawned: they re-import this file, with its patches
    if sys.argv[1:2] == ["--average-weights"]:
        average_weights(sys.argv[2], sys.argv[3:])
        sys.exit(0)
    from vocalsep.cli import main

    sys.exit(main(sys.argv[1:]))
