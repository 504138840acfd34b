"""``vocalsep train``: a U-Net (or the paper's baseline) for one target."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .._cli_base import EXIT_OK, UsageError, need_extra
from ..stems import STEMS


def add_train_parser(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("train", parents=[common], help="train a U-Net for one target", description="Train a U-Net (or the paper's baseline) for one target. "
                       "Data-parallel: torchrun --nproc-per-node N $(which vocalsep) train ...")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="dataset folder, .stem.mp4 file or pair manifest (.csv); with --recipe, the data folder its paths start from "
                        "(required, except with --resume, which then takes the run's own settings from --out)")
    p.add_argument("--dataset", choices=["mir1k", "stems", "musdb", "pairs"], default=None, help="dataset layout (default: guessed from PATH)")
    p.add_argument("--recipe", default=None, metavar="FILE.json",
                   help="a training mixture of several sources and their shares (docs/training.md); needed by stereo presets")
    p.add_argument("--patch-frames", type=int, default=None, metavar="N", help="frames per training patch with --recipe (default: the preset's)")
    p.add_argument("--target", choices=list(STEMS), default="vocals")
    p.add_argument("--preset", default="jansson2017",
                   help="signal-processing preset: jansson2017 (the paper's: 8192 Hz, window 1024, hop 768), jansson2017-hop384 "
                   "(the same with half the hop), jansson2017-44k, spleeter or spleeter-ratio (44.1 kHz stereo; with --recipe) "
                   "(default: jansson2017)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoints, metrics.csv, split.json")
    p.add_argument("--no-skip", dest="skip", action="store_false", help="train the paper's baseline (no skip connections)")
    p.add_argument("--channels", type=lambda t: tuple(int(c) for c in t.split(",")), default=None, help="override the U-Net channels, e.g. 8,16,32")
    p.add_argument("--dropout", type=float, default=None, help="decoder dropout (default: the preset's, 0.5 as in the paper)")
    p.add_argument("--target-rule", choices=["magnitude", "phase-sensitive"], default="magnitude",
                   help="what mask x |X| learns: the source's magnitude (the paper's, default) or its part in phase with the mixture, "
                        "|Y| cos(angle(Y) - angle(X)) in [0, |X|] (Erdogan et al. 2015)")
    p.add_argument("--loss", choices=["l1", "sdr"], default="l1",
                   help="training loss: l1 the paper's |mask x X - Y| / max(X) (default), "
                        "sdr minus each patch's signal-to-distortion ratio in dB (validation loss stays L1)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: bfloat16 autocast for the convolutions (for CPUs with bfloat16 instructions) (default: fp32)")
    p.add_argument("--device", default="cpu", metavar="cpu|cuda|cuda:N",
                   help="where the network trains (default: cpu); patches are still prepared on the CPU")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-min", type=float, default=1e-5, help="the learning rate at the end of the cosine schedule (default: 1e-5)")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--stop-after", type=int, default=None, metavar="STEP",
                   help="end this stage at STEP, keeping the schedule of --steps; continue later with --resume")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="steps between validations (default: training audio / patch / batch)")
    p.add_argument("--valid-groups", type=lambda t: tuple(x for x in t.split(",") if x), default=(), metavar="A,B", help="singers or tracks held out for validation")
    p.add_argument("--valid-fraction", type=float, default=0.2, help="share of tracks held out when --valid-groups is not given")
    p.add_argument("--valid-seconds", type=float, default=60.0, help="seconds of each validation track scored (default 60)")
    p.add_argument("--remix", type=float, default=0.5, help="probability of remixing a voice over another track's accompaniment")
    p.add_argument("--init", default=None, metavar="MODEL",
                   help="start from the weights of this model (a file, a folder or a registered name such as spleeter:2stems: "
                        "its network for --target; the same network) instead of random ones: fine-tuning")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="processes preparing batches ahead (default 0: in the training process; on a GPU the sampler is the bottleneck, use several)")
    p.add_argument("--cache-dir", default=None, help="feature cache (default: beside --out)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out: with the same options, or with none but --out (its config.json "
                        "gives them; --stop-after and the options given still apply)")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help="more settings, by the names of a run's config.json (e.g. warmup_steps, epochs, time_budget); "
                        "an option given here wins")
    p.set_defaults(func=cmd_train, parser=p)


def cmd_train(args) -> int:
    from ..training import TrainConfig, fit

    saved = _saved_run(args) if args.data is None else {}
    if not (args.recipe or saved.get("recipe")):  # validation on whole tracks scores with BSS Eval (scipy); a recipe's does not
        need_extra("train", "train")

    given = {  # the command line's settings, by TrainConfig's names
        "data": args.data, "out": args.out, "dataset": args.dataset, "recipe": args.recipe, "patch_frames": args.patch_frames,
        "target": args.target, "preset": args.preset, "skip": args.skip, "channels": args.channels, "dropout": args.dropout,
        "target_rule": args.target_rule, "loss": args.loss, "precision": args.precision, "device": args.device,
        "batch_size": args.batch_size, "lr": args.lr, "lr_min": args.lr_min, "steps": args.steps, "stop_after": args.stop_after,
        "steps_per_epoch": args.steps_per_epoch, "valid_groups": args.valid_groups, "valid_fraction": args.valid_fraction,
        "valid_seconds": args.valid_seconds,
        "augment": {"remix": args.remix}, "init": args.init, "seed": args.seed, "threads": args.threads,
        "workers": args.workers, "cache_dir": args.cache_dir, "resume": args.resume,
    }
    settings = _config_file(args.config, args) if args.config else {}
    try:
        cfg = TrainConfig.from_dict({**given, **saved, **settings, **_explicit(given, args), "data": args.data or saved["data"],
                                     "out": args.out, "progress": not args.quiet and sys.stderr.isatty()})
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    logging.getLogger("vocalsep").setLevel(logging.INFO if not args.quiet else logging.ERROR)
    summary = fit(cfg)
    if not args.quiet and int(os.environ.get("RANK", "0")) == 0:
        last = summary.get("last") or {}
        print(f"vocalsep: trained {summary['steps']} steps in {summary['train_seconds']:.0f} s "
              f"({summary['patches_per_s']:.1f} patches/s); last validation NSDR {last.get('valid_nsdr', float('nan')):.2f} dB; "
              f"best model {Path(summary['out']) / 'best.safetensors'}", file=sys.stderr)
    return EXIT_OK


def _saved_run(args) -> dict:
    """``--resume`` without ``--data``: the interrupted run's settings from its ``config.json``, less those of
    one invocation (where this stage stops, the progress bar)."""
    if not args.resume:
        raise UsageError("train: --data is required (or --resume, to continue the run in --out with its own settings)")
    path = Path(args.out) / "config.json"
    if not path.is_file():
        raise UsageError(f"--resume: {args.out} holds no run to continue (no config.json); give --data and the run's options")
    saved = _config_file(str(path), args)
    if not saved.get("data"):
        raise UsageError(f"--resume: {path} names no data; give --data and the run's options")
    for key in ("out", "resume", "stop_after", "progress"):
        saved.pop(key, None)
    return saved


def _explicit(given: dict, args) -> dict:
    """The settings of ``given`` whose option the user typed, whatever its value (one typed equal to its
    default still wins over --config and over a resumed run's config.json)."""
    typed = _typed(args)
    dest = {"augment": "remix"}
    return {key: value for key, value in given.items() if dest.get(key, key) in typed}


def _typed(args) -> set[str]:
    """The destinations of the options on the command line: ``train``'s arguments parsed again with every
    default suppressed, so that only what was typed lands in the namespace."""
    argv = getattr(args, "argv", None)
    if argv is None:  # called without vocalsep.cli.main: a value other than its default counts as typed
        defaults = {a.dest: a.default for a in args.parser._actions}
        return {d for d in defaults if getattr(args, d, None) != defaults[d]}
    rest = argv[next(i for i, t in enumerate(argv) if not t.startswith("-")) + 1:]  # after the command's name
    actions = args.parser._actions
    defaults = [a.default for a in actions]
    required = [a.required for a in actions]
    try:
        for a in actions:
            a.default, a.required = argparse.SUPPRESS, False
        found, _ = args.parser.parse_known_args(rest)
    finally:
        for a, d, r in zip(actions, defaults, required):
            a.default, a.required = d, r
    return set(vars(found))


def _config_file(path: str, args) -> dict:
    """``--config FILE.json``: settings by TrainConfig's names (a JSON object, as a run's config.json
    has them); they replace the command line's defaults, and the options the user gave replace them."""
    import json

    from ..training import TrainConfig

    try:
        settings = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--config {path}: cannot read it ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(settings, dict):
        raise UsageError(f"--config {path}: not a JSON object of settings")
    known = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UsageError(f"--config {path}: unknown settings {', '.join(unknown)}")
    return settings
