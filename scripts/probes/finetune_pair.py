#!/usr/bin/env python
"""Fine-tune a (vocals, accompaniment) pair of U-Nets for a few steps (a measurement, not a feature).

``--mode independent``: each network on its own loss, as in training (the
control: the same extra steps); ``--mode joint``: both through the ``average``
mask combination used at separation time, ``m = (m_v + 1 - m_a) / 2``, with the
paper's L1 loss on both stems (``m`` for the vocals, ``1 - m`` for the
accompaniment).  ``--target-rule phase-sensitive`` trains towards the
phase-sensitive targets instead of the magnitudes (``--rule-vocals`` /
``--rule-accompaniment`` set one network's); ``--loss sdr`` uses the loss in dB
of ``vocalsep train --loss sdr`` on each stem instead of the L1 loss.  Batches of 8 patches from
the MIR-1K training singers (the held-out ones are left out), remixing 0.5,
bfloat16 autocast, Adam with a cosine decay from ``--lr`` to 1e-6.

    python scripts/probes/finetune_pair.py --mode joint --out runs/probe-joint \\
        runs/mir1k-unet-vocals/last.safetensors runs/mir1k-unet-accompaniment/last.safetensors

Writes OUT/vocals.safetensors and OUT/accompaniment.safetensors (score them
with ``vocalsep evaluate --system NAME=OUT/vocals.safetensors,OUT/accompaniment.safetensors``).
Measured results: docs/training.md, "Round 4".
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vocalsep.checkpoint import load_checkpoint
from vocalsep.data import open_dataset, split_tracks
from vocalsep.training.config import TARGET_RULES, Augment
from vocalsep.training.features import PatchSampler, load_cached
from vocalsep.training.loop import training_loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("vocals")
    p.add_argument("accompaniment")
    p.add_argument("--mode", choices=["independent", "joint"], required=True)
    p.add_argument("--target-rule", choices=TARGET_RULES, default="magnitude")
    p.add_argument("--rule-vocals", choices=TARGET_RULES, help="the vocal network's target rule (default: --target-rule)")
    p.add_argument("--rule-accompaniment", choices=TARGET_RULES, help="the accompaniment network's (default: --target-rule)")
    p.add_argument("--loss", choices=["l1", "sdr"], default="l1")
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps before the cosine")
    p.add_argument("--save-every", type=int, default=0, help="also write OUT/step-N/ every N steps")
    p.add_argument("--data", default="../shared/data/mir1k")
    p.add_argument("--valid-groups", default="abjones,tammy", help="held-out singers, left out of the fine-tuning")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=1, help="patch draws (the original runs used seed 0)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-dir", default="runs/.cache")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cpu = torch.device("cpu")
    cv, ca = load_checkpoint(a.vocals, cpu), load_checkpoint(a.accompaniment, cpu)
    preset = cv.preset
    train, _ = split_tracks(open_dataset(a.data, "mir1k").tracks, a.valid_groups.split(","), 0.0, 0)
    tracks = [load_cached(t, preset.sample_rate, Path(a.cache_dir)) for t in train]
    aug = Augment(remix=0.5)
    # the same seed draws the same patches for both targets
    sv = PatchSampler(tracks, preset, "vocals", aug, seed=a.seed, target_rule=a.rule_vocals or a.target_rule)
    sa = PatchSampler(tracks, preset, "accompaniment", aug, seed=a.seed, target_rule=a.rule_accompaniment or a.target_rule)
    nv, na = cv.model.train(), ca.model.train()
    opt = torch.optim.Adam(list(nv.parameters()) + list(na.parameters()), lr=a.lr)
    t0, smooth = time.time(), None
    for step in range(a.steps):
        for g in opt.param_groups:
            warm = min(1.0, (step + 1) / a.warmup) if a.warmup else 1.0
            g["lr"] = warm * (1e-6 + 0.5 * (a.lr - 1e-6) * (1 + math.cos(math.pi * step / a.steps)))
        X, V, w = sv.batch(step, 8)
        _, A, _ = sa.batch(step, 8)
        torch.manual_seed(a.seed * 1_000_003 + step)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mv, ma = nv(X).float(), na(X).float()
        if a.mode == "joint":
            m = (mv + 1 - ma) / 2
            loss = training_loss(a.loss, m, X, V, w) + training_loss(a.loss, 1 - m, X, A, w)
        else:
            loss = training_loss(a.loss, mv, X, V, w) + training_loss(a.loss, ma, X, A, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        if step % 100 == 0 or step == a.steps - 1:
            print(f"step {step}: loss {smooth:.5f}, {time.time() - t0:.0f} s", flush=True)
        if a.save_every and (step + 1) % a.save_every == 0 and step + 1 < a.steps:
            save(cv, nv, ca, na, out / f"step-{step + 1}")
    save(cv, nv, ca, na, out)
    print(f"done in {time.time() - t0:.0f} s: {out}")


def save(cv, nv, ca, na, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for c, net, name in ((cv, nv, "vocals"), (ca, na, "accompaniment")):
        with safe_open(str(c.path), "pt") as f:
            meta = f.metadata()
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(folder / f"{name}.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
