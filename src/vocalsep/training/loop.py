"""The training loop: ``fit(config)``.

- L1,1 loss of (mask x X - Y) on magnitudes normalised by the patch's
  mixture maximum (the same rule the model applies to its input), averaged
  over the valid (non-padding) bins and frames; Adam with a linear warm-up
  and a cosine learning-rate schedule.  ``--loss sdr`` trains on each patch's
  signal-to-distortion ratio in dB (:func:`~vocalsep.training.losses.masked_sdr`), which weighs every
  patch alike, as the per-clip NSDR does (validation loss stays L1).
- Validation (rank 0): loss on fixed validation patches and NSDR of the
  target on the validation tracks through the real separator (:mod:`~vocalsep.training.validation`).
- ``OUT/best.safetensors`` (best validation NSDR) and ``OUT/last.safetensors``
  are written atomically with the training facts in their metadata;
  ``OUT/state.pt`` holds what ``--resume`` needs (weights, optimiser, step,
  clock); ``OUT/metrics.csv`` one row per validation; ``OUT/split.json`` the
  split; ``OUT/config.json`` the configuration.
- Every random draw is a function of (seed, rank, step), so a run resumed
  after a kill ends with the same weights as an uninterrupted one.
- Data-parallel with ``torchrun --nproc-per-node N vocalsep train ...``
  (DistributedDataParallel over gloo): each process draws its own patches.
- ``device="cuda"`` trains on a GPU (under torchrun, process ``LOCAL_RANK``
  takes GPU ``LOCAL_RANK`` modulo the GPUs present); patches are cut and
  transformed on the CPU, cuDNN runs deterministically, processes talk over gloo.
- ``workers=N`` prepares batches in N processes ahead of the training step
  (each batch is a function of its step, so the draws do not change).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from .._atomic import missing_dirs, publish, remove_empty, temp_beside
from ..checkpoint import save_checkpoint
from ..config import Preset, get_preset
from ..data.datasets import open_dataset, split_tracks
from ..errors import ConfigError
from ..model import UNet
from .config import TrainConfig, removed_settings
from .features import PatchSampler, load_cached
from .losses import lr_at, training_loss
from .mix import MixSampler, load_recipe
from .validation import valid_patches, validate, validate_mix
from .warmstart import init_facts, load_initial_weights, resolve_init

log = logging.getLogger(__name__)

METRIC_FIELDS = ["step", "epoch", "train_loss", "valid_loss", "valid_nsdr", "valid_sdr", "lr", "patches_per_s", "train_seconds", "wall",
                 "valid_by_source"]


def make_preset(cfg: TrainConfig) -> Preset:
    preset = get_preset(cfg.preset)
    unet = replace(preset.unet, skip=cfg.skip)
    if cfg.channels is not None:
        unet = replace(unet, channels=cfg.channels, dropout_layers=min(unet.dropout_layers, len(cfg.channels)))
    if cfg.dropout is not None:
        unet = replace(unet, dropout=cfg.dropout)
    return replace(preset, unet=unet)


class _Dist:
    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo")
            self.dist = dist

    def any(self, flag: bool) -> bool:
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        self.dist.all_reduce(t)
        return bool(t.item() > 0)

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        self.dist.all_reduce(t)
        return float(t.item() / self.world)

    def barrier(self) -> None:
        if self.enabled:
            self.dist.barrier()


def _train_device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {cfg.device}: this PyTorch ({torch.__version__}) sees no CUDA GPU")
    dev = torch.device(cfg.device)
    if dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    if dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {cfg.device}: there are only {torch.cuda.device_count()} CUDA GPUs here")
    torch.cuda.set_device(dev)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    return dev


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class _StepBatches(torch.utils.data.Dataset):
    """Batch ``i`` is the sampler's batch for step ``first + i``: a pure function of the step,
    so worker processes may prepare batches ahead, in any order, and a resumed run still
    draws exactly what an uninterrupted one would."""

    def __init__(self, sampler: PatchSampler, first: int, count: int, batch_size: int):
        self.sampler, self.first, self.count, self.batch_size = sampler, first, count, batch_size

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        return self.sampler.batch(self.first + i, self.batch_size)


def _batches(sampler: PatchSampler, first: int, total: int | None, batch_size: int, workers: int, pin: bool):
    """Batches from step ``first`` on: in this process (``workers == 0``), or prepared ahead by
    ``workers`` processes (a torch DataLoader, one thread each)."""
    count = (total - first) if total is not None else 2**62
    if workers == 0:
        for i in range(max(0, count)):
            yield sampler.batch(first + i, batch_size)
        return
    loader = torch.utils.data.DataLoader(_StepBatches(sampler, first, max(0, count), batch_size), batch_size=None, shuffle=False,
                                         num_workers=workers, pin_memory=pin, prefetch_factor=4, persistent_workers=False)
    yield from loader


def _save_state(path: Path, state: dict[str, Any]) -> None:
    tmp = temp_beside(path)
    try:
        torch.save(state, tmp)
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _open_data(cfg: TrainConfig, preset: Preset, cache_dir: Path, dist: "_Dist"):
    """(sampler, validation tracks, validation patches, validate function, split facts) for ``cfg``'s data."""
    if cfg.recipe:
        from ..data.recipe import Recipe

        recipe = Recipe.load(cfg.recipe)
        if dist.rank == 0:
            train_by_source, valid = load_recipe(recipe, Path(cfg.data), preset.sample_rate, cache_dir, cfg.seed)
        dist.barrier()
        if dist.rank != 0:
            train_by_source, valid = load_recipe(recipe, Path(cfg.data), preset.sample_rate, cache_dir, cfg.seed)
            valid = []
        sampler = MixSampler(train_by_source, recipe, preset, cfg.target, cfg.patch_frames or preset.patch_frames,
                             seed=cfg.seed, rank=dist.rank, target_rule=cfg.target_rule)
        train = [t for ts in train_by_source.values() for t in ts]
        split = {
            "dataset": "recipe",
            "data": str(cfg.data),
            "recipe": recipe.to_dict(),
            "train_groups": sorted({t.group for t in train}),
            "valid_groups": sorted({t.group for t in valid}),
            "train_tracks": [t.name for t in train],
            "valid_tracks": [t.name for t in valid],
            "train_hours": sum(t.samples for t in train) / preset.sample_rate / 3600,
            "train_hours_by_source": {k: round(sum(t.samples for t in v) / preset.sample_rate / 3600, 3) for k, v in train_by_source.items()},
        }
        patches = sampler.valid_patches(valid) if dist.rank == 0 and valid else []
        return sampler, valid, patches, validate_mix, split
    dataset = open_dataset(cfg.data, cfg.dataset)
    train_tracks, valid_tracks = split_tracks(dataset.tracks, cfg.valid_groups or None, cfg.valid_fraction, cfg.seed)
    # rank 0 fills the cache first, the others then read it
    if dist.rank == 0:
        train = [load_cached(t, preset.sample_rate, cache_dir) for t in train_tracks]
        valid = [load_cached(t, preset.sample_rate, cache_dir) for t in valid_tracks]
    dist.barrier()
    if dist.rank != 0:
        train = [load_cached(t, preset.sample_rate, cache_dir) for t in train_tracks]
        valid = []
    split = {
        "dataset": type(dataset).__name__,
        "data": str(cfg.data),
        "train_groups": sorted({t.group for t in train_tracks}),
        "valid_groups": sorted({t.group for t in valid_tracks}),
        "train_tracks": [t.name for t in train_tracks],
        "valid_tracks": [t.name for t in valid_tracks],
        "train_hours": sum(t.samples for t in train) / preset.sample_rate / 3600,
    }
    sampler = PatchSampler(train, preset, cfg.target, cfg.augment, seed=cfg.seed, rank=dist.rank, target_rule=cfg.target_rule)
    patches = valid_patches(valid, preset, cfg.target, cfg.seed, target_rule=cfg.target_rule) if dist.rank == 0 and valid else []
    return sampler, valid, patches, validate, split


class _Run:
    """One training run, in the stages :func:`fit` goes through: set-up (data, model, optimiser),
    resume, the training step, and validate-and-save."""

    def __init__(self, cfg: TrainConfig, dist: _Dist):
        self.cfg, self.dist = cfg, dist
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.out = out = Path(cfg.out)
        self.state_path = out / "state.pt"
        if self.state_path.exists() and not cfg.resume:  # every rank refuses, so none waits for the others
            raise ConfigError(f"{out} already holds a training run; use --resume to continue it or choose another --out")
        self.dev = _train_device(cfg)
        self.preset = make_preset(cfg)
        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else out.parent / ".vocalsep-cache"
        made = missing_dirs([out.absolute(), cache_dir.absolute()], Path(out.absolute().anchor))
        out.mkdir(parents=True, exist_ok=True)
        cache_dir.mkdir(parents=True, exist_ok=True)

        self.t0 = time.perf_counter()
        try:
            self.sampler, self.valid, self.patches, self.validate_fn, self.split = _open_data(cfg, self.preset, cache_dir, dist)
        except BaseException:  # data that cannot be used leaves no empty --out or cache folder behind
            remove_empty(made)
            raise
        self.data_seconds = time.perf_counter() - self.t0
        sampler = self.sampler
        self.steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(sampler.total_samples / sampler.patch_samples / cfg.batch_size / dist.world))
        self.total_steps = cfg.steps if cfg.steps is not None else (math.ceil(cfg.epochs * self.steps_per_epoch) if cfg.epochs else None)
        self.valid_every = cfg.valid_every or self.steps_per_epoch

        torch.manual_seed(cfg.seed)
        self.model = UNet(self.preset.unet).to(self.dev)
        self.resuming = bool(cfg.resume and self.state_path.exists())
        try:
            self.init_path = resolve_init(cfg.init, cfg.target) if cfg.init else None
            if self.init_path and not self.resuming:
                load_initial_weights(self.model, self.init_path, self.preset)
        except BaseException:  # weights that cannot be used leave no empty --out folder either
            remove_empty(made)
            raise
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.step, self.best, self.train_seconds = 0, -math.inf, 0.0
        self.initial = init_facts(self.init_path) if self.init_path and dist.rank == 0 and not self.resuming else None
        self.net = self.model
        self.metrics_path = out / "metrics.csv"
        self.timing = {"data": 0.0, "forward": 0.0, "backward": 0.0}
        self.last_row: dict[str, Any] = {}

    def finished(self) -> bool:
        """Whether this run (or this stage of it: ``stop_after``) has trained enough."""
        cfg = self.cfg
        return ((self.total_steps is not None and self.step >= self.total_steps)
                or (cfg.time_budget is not None and self.train_seconds >= cfg.time_budget)
                or (cfg.stop_after is not None and self.step >= cfg.stop_after))

    def resume(self) -> dict[str, Any] | None:
        """Continue from ``OUT/state.pt`` (``--resume``); the summary of a run that had already finished."""
        cfg, state_path = self.cfg, self.state_path
        if not self.resuming:
            if cfg.resume:
                log.warning("%s: nothing to resume, starting afresh", self.out)
            return None
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            saved_cfg = json.loads(state["config"])
        except Exception as exc:  # noqa: BLE001 - truncated, not a state file, written by something else
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ConfigError(f"{state_path}: cannot resume from it, it is damaged ({reason}); remove it to start afresh, or choose another --out") from None
        removed = removed_settings(saved_cfg)
        if removed:
            said = ", ".join(f"{k} {v!r}" for k, v in removed.items())
            raise ConfigError(f"--resume: the interrupted run used settings that this version no longer has ({said}); "
                              "it cannot be continued, start a new run")
        for key, default in (("target_rule", "magnitude"), ("loss", "l1"), ("recipe", None), ("patch_frames", None)):
            saved_cfg.setdefault(key, default)  # runs from before the option
        for key in ("data", "target", "preset", "skip", "channels", "dropout", "batch_size", "seed", "target_rule", "loss",
                    "recipe", "patch_frames"):
            have = list(saved_cfg[key]) if isinstance(saved_cfg.get(key), list) else saved_cfg.get(key)
            want = list(cfg.to_dict()[key]) if isinstance(cfg.to_dict()[key], tuple) else cfg.to_dict()[key]
            if have != want:
                raise ConfigError(f"--resume: {key} differs from the interrupted run ({have!r} there, {want!r} now)")
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.step, self.best, self.train_seconds = int(state["step"]), float(state["best"]), float(state["train_seconds"])
        self.initial = json.loads(state["init"]) if state.get("init") else None
        log.info("resuming %s at step %d", self.out, self.step)
        if self.finished():
            try:  # a finished run: nothing to train, and its summary stays as it is
                summary = json.loads((self.out / "summary.json").read_text())
                log.info("%s finished at step %d already; nothing to do", self.out, self.step)
                return summary
            except (OSError, ValueError):  # killed before its summary: written at the end
                pass
        return None

    def start(self) -> None:
        """Data-parallel wrapping, and the run's files: config.json, split.json, the metrics header."""
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.model, device_ids=[self.dev.index] if self.dev.type == "cuda" else None)
        self.model.train()
        if self.dist.rank == 0:
            (self.out / "config.json").write_text(self.cfg.to_json())
            (self.out / "split.json").write_text(json.dumps(self.split, indent=1))
            if not self.metrics_path.exists():
                with open(self.metrics_path, "w", newline="") as f:
                    csv.DictWriter(f, METRIC_FIELDS).writeheader()

    def train_step(self, batches) -> float:
        """One optimiser step on the next batch; its loss."""
        cfg, dev, step = self.cfg, self.dev, self.step
        ts = time.perf_counter()
        for g in self.optimiser.param_groups:
            g["lr"] = lr_at(cfg, step, self.total_steps)
        X, Y, w = self.sampler.features(*(t.to(dev, non_blocking=True) for t in next(batches)))
        td = time.perf_counter()
        torch.manual_seed((cfg.seed * 1_000_003 + self.dist.rank * 7919 + step) % (2**63))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            mask = self.net(X)
        loss = training_loss(cfg.loss, mask.float(), X, Y, w)
        _sync(dev)
        tf = time.perf_counter()
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        _sync(dev)
        te = time.perf_counter()
        self.timing["data"] += td - ts
        self.timing["forward"] += tf - td
        self.timing["backward"] += te - tf
        self.train_seconds += te - ts
        self.step += 1
        self.step_seconds = te - ts
        return loss.item()

    def training_facts(self, extra: dict[str, Any]) -> dict[str, Any]:
        dev, split = self.dev, self.split
        return {
            "vocalsep_version": __version__,
            "torch": torch.__version__,
            "machine": platform.machine(),
            "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "config": self.cfg.to_dict(),
            "split": {k: split[k] for k in ("dataset", "data", "train_groups", "valid_groups", "train_hours")},
            "world_size": self.dist.world,
            **({"init": self.initial} if self.initial else {}),
            **extra,
        }

    def save(self, row: dict[str, Any], is_best: bool) -> None:
        """last.safetensors (and best.safetensors), and the state that --resume reads."""
        cfg, preset = self.cfg, self.preset
        facts = self.training_facts({"step": self.step, "train_seconds": round(self.train_seconds, 1), "valid": row})
        save_checkpoint(self.out / "last.safetensors", self.model, target=cfg.target, preset=preset, training=facts)
        if is_best:
            save_checkpoint(self.out / "best.safetensors", self.model, target=cfg.target, preset=preset, training=facts)
        _save_state(self.state_path, {
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "step": self.step,
            "best": self.best,
            "train_seconds": self.train_seconds,
            "config": cfg.to_json(),
            **({"init": json.dumps(self.initial)} if self.initial else {}),
        })

    def validate_and_save(self, train_loss: float, rate: float) -> str:
        """Validate (rank 0), keep the best score, save, and append a row to metrics.csv; the log line."""
        cfg, step = self.cfg, self.step
        row = {"step": step, "epoch": round(step / self.steps_per_epoch, 3), "train_loss": float(f"{train_loss:.6g}"),
               "lr": lr_at(cfg, step - 1, self.total_steps), "patches_per_s": round(rate, 2),
               "train_seconds": round(self.train_seconds, 1), "wall": round(time.perf_counter() - self.t0, 1)}
        row.update(self.validate_fn(self.model, self.preset, cfg.target, self.valid, self.patches, cfg.valid_seconds) if self.valid else
                   {"valid_loss": float("nan"), "valid_nsdr": float("nan"), "valid_sdr": float("nan")})
        score = row["valid_nsdr"] if not math.isnan(row["valid_nsdr"]) else -row["valid_loss"] if not math.isnan(row["valid_loss"]) else -train_loss
        is_best = score > self.best
        self.best = max(self.best, score)
        self.save(row, is_best)
        with open(self.metrics_path, "a", newline="") as f:
            csv.DictWriter(f, METRIC_FIELDS).writerow(row)
        self.last_row = row
        return (f"step {step}: train loss {train_loss:.4f}, valid loss {row['valid_loss']:.4f}, "
                f"valid NSDR {row['valid_nsdr']:.2f} dB{' (best)' if is_best else ''}")

    def summary(self) -> dict[str, Any]:
        cfg, dist, step = self.cfg, self.dist, self.step
        return {
            "out": str(self.out),
            "steps": step,
            "train_seconds": round(self.train_seconds, 1),
            "data_seconds": round(self.data_seconds, 1),
            "patches_per_s": round(step * cfg.batch_size * dist.world / max(self.train_seconds, 1e-9), 2) if step else 0.0,
            "best_score": self.best,
            "last": self.last_row,
            "timing_seconds": {k: round(v, 1) for k, v in self.timing.items()},
            "world_size": dist.world,
        }


def fit(config: TrainConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train one model; returns a summary (also written to ``OUT/summary.json``).  ``on_step(step)``
    is called after every training step, with the number of steps done."""
    cfg, dist = config, _Dist()
    run = _Run(cfg, dist)
    done = run.resume()
    if done is not None:
        return done
    run.start()
    window_loss, window_n, window_t = 0.0, 0, 0.0
    bar = None
    if dist.rank == 0 and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=run.total_steps, initial=run.step, unit="step", dynamic_ncols=True)
    batches = _batches(run.sampler, run.step, run.total_steps, cfg.batch_size, cfg.workers, pin=run.dev.type == "cuda")
    while not dist.any(run.finished()):
        loss = run.train_step(batches)
        window_t += run.step_seconds
        if on_step is not None:
            on_step(run.step)
        window_loss += loss
        window_n += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", patches_s=f"{cfg.batch_size * dist.world / max(run.step_seconds, 1e-9):.1f}")
        if run.step % run.valid_every == 0 or run.finished():
            train_loss = dist.mean(window_loss / max(window_n, 1))
            rate = cfg.batch_size * dist.world * window_n / max(window_t, 1e-9)
            window_loss, window_n, window_t = 0.0, 0, 0.0
            if dist.rank == 0:
                msg = run.validate_and_save(train_loss, rate)
                (bar.write if bar is not None else log.info)(msg)
            dist.barrier()
    batches.close()  # stops the workers, if any
    if bar is not None:
        bar.close()
    summary = run.summary()
    if dist.rank == 0:
        if not (run.out / "last.safetensors").exists():  # stopped before any validation
            run.save({}, True)
        (run.out / "summary.json").write_text(json.dumps(summary, indent=1))
    dist.barrier()
    return summary
