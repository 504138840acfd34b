"""The ``vocalsep`` command line: a thin face over the library.

Heavy imports (PyTorch, decoders) happen inside the command that needs them,
so ``vocalsep --help`` answers at once.  Exit codes: 0 all inputs done,
1 some inputs failed (each named with its reason), 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ._cli_base import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, need_extra
from ._version import __version__
from .stems import STEMS

log = logging.getLogger("vocalsep")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: what is being written is discarded (exit code 143)."""


_SIGNALLED = {"terminated": False}


def _terminate(signum, frame):
    if _SIGNALLED["terminated"]:  # once: a second SIGTERM must not cut the clean-up short
        return
    _SIGNALLED["terminated"] = True
    raise Terminated()


def _stems(text: str) -> list[str]:
    stems = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in stems if s not in STEMS]
    if bad or not stems:
        raise argparse.ArgumentTypeError(f"unknown stem(s) {bad or text!r}; choose from {', '.join(STEMS)}")
    return stems


def _nonneg(text: str) -> float:
    v = float(text)
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a non-negative number of seconds")
    return v


def _positive(text: str) -> float:
    v = float(text)
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return v


def _shifts(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if not 1 <= v <= 16:
        raise argparse.ArgumentTypeError(f"--shifts must be a whole number from 1 to 16, not {text!r}")
    return v


def _wiener(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if not 0 <= v <= 10:
        raise argparse.ArgumentTypeError(f"--wiener must be a whole number of EM iterations from 0 to 10, not {text!r}")
    return v


def _jobs(text: str) -> int:
    """A whole number of at least 1 (--jobs, --threads, --limit, --rate): argparse names the option."""
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vocalsep",
        description="Separate songs into singing voice and accompaniment with the U-Net of Jansson et al. (ISMIR 2017).",
    )
    parser.add_argument("--version", action="version", version=f"vocalsep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar, errors only")
    # -v/-q are accepted after the command too; SUPPRESS keeps the top-level value when absent
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more detail")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar, errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("separate", parents=[common], help="separate audio files into stems", description="Separate audio files into stems.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, or folders (searched recursively)")
    p.add_argument("-o", "--outdir", default="separated", help="output folder (default: ./separated)")
    p.add_argument("-m", "--model", action="append", metavar="NAME|PATH",
                   help="registered model name, a .safetensors model file or a folder of them; repeat to combine a vocal and an accompaniment model "
                   "(default: the installed default model; 'vocalsep models' lists the installed ones)")
    p.add_argument("--stems", type=_stems, default=list(STEMS), help=f"comma-separated stems to write (default: {','.join(STEMS)})")
    p.add_argument("--format", dest="fmt", choices=["wav", "flac", "mp3"], default="wav", help="output format (default: wav)")
    p.add_argument("--bit-depth", choices=["16", "24", "32", "float"], default="16", help="sample format of WAV/FLAC outputs (default: 16)")
    p.add_argument("--offset", type=_nonneg, default=0.0, metavar="S", help="start this many seconds into each input")
    p.add_argument("--duration", type=_positive, default=None, metavar="S", help="separate at most this many seconds")
    p.add_argument("--stream", type=int, default=0, metavar="N", help="audio stream of multi-stream files (MUSDB18 .stem.mp4: 0 = mixture)")
    p.add_argument("--filename", default="{track}/{stem}.{ext}", help="output path template inside OUTDIR, with the fields {track}, {stem} and {ext} only (default: {track}/{stem}.{ext})")
    p.add_argument("--fullband", choices=["interpolate", "bandlimited"], default=None, help="how full-band stems are formed from the model's masks of its modelled band: interpolate the masks onto "
                   "the input's own STFT, or bandlimited, invert at the model's rate and resample (default: the model's preset's: interpolate "
                   "for jansson2017, bandlimited for jansson2017-hop384 and the spleeter presets)")
    p.add_argument("--high-band", choices=["edge", "zero"], default=None,
                   help="mask above the modelled band: edge, each frame's mean mask over the top 1 kHz of the modelled band; "
                   "zero, nothing above it (default: the model's preset's: edge for jansson2017 and spleeter-ratio, zero for spleeter)")
    p.add_argument("--complement", action="store_true", help="mixture-consistent stems: accompaniment = mixture - vocals")
    p.add_argument("--combine", choices=["independent", "average", "ratio", "ratio2"], default=None,
                   help="how a vocal and an accompaniment model's masks are combined (default: the preset's; average for jansson2017)")
    p.add_argument("--pad", choices=["wrap"], default=None,
                   help="how a segment shorter than the network's input is padded: wrap repeats it from its start (the only rule, the default)")
    p.add_argument("--shifts", type=_shifts, default=None, metavar="N",
                   help="separate each segment N times, delayed by 1/N of the model's hop each time, and average the stems "
                   "(N times the network work); with N > 1 the full-band rule is bandlimited unless --fullband says otherwise "
                   "(default: 1)")
    p.add_argument("--wiener", type=_wiener, default=None, metavar="N",
                   help="refine the two networks' stems with a multichannel Wiener filter and N EM iterations (norbert, as "
                   "Open-Unmix does; needs the bandlimited full-band rule and pip install 'vocalsep[wiener]') (default: off)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                   help="number format of the networks: bf16 is faster on CPUs with bfloat16 instructions and changes the stems "
                   "slightly; auto: bf16 where the CPU has them (default: the model's preset's: fp32 for jansson2017, auto for spleeter)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the network runs (default: cpu)")
    p.add_argument("-j", "--jobs", type=_jobs, default=1, metavar="N", help="files separated in parallel (default: 1)")
    p.add_argument("--threads", type=_jobs, default=None, metavar="N", help="torch threads (default: all cores, shared among --jobs)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_separate)

    p = sub.add_parser("info", parents=[common], help="print a model's facts", description="Print a model's facts.")
    p.add_argument("model", metavar="MODEL", help="registered model name, model file or folder")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", parents=[common], help="list the installed models", description="List the installed models.")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", parents=[common], help="train a U-Net for one target", description="Train a U-Net (or the paper's baseline) for one target. "
                       "Data-parallel: torchrun --nproc-per-node N $(which vocalsep) train ...")
    p.add_argument("--data", required=True, metavar="PATH",
                   help="dataset folder, .stem.mp4 file or pair manifest (.csv); with --recipe, the data folder its paths start from")
    p.add_argument("--dataset", choices=["mir1k", "stems", "musdb", "pairs"], default=None, help="dataset layout (default: guessed from PATH)")
    p.add_argument("--recipe", default=None, metavar="FILE.json",
                   help="a training mixture of several sources and their shares (docs/training.md); needed by stereo presets")
    p.add_argument("--patch-frames", type=int, default=None, metavar="N", help="frames per training patch with --recipe (default: the preset's)")
    p.add_argument("--target", choices=list(STEMS), default="vocals")
    p.add_argument("--preset", default="jansson2017",
                   help="signal-processing preset: jansson2017 (the paper's: 8192 Hz, window 1024, hop 768), jansson2017-hop384 "
                   "(the same with half the hop) or spleeter (44.1 kHz stereo, Spleeter's network; with --recipe) (default: jansson2017)")
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
    p.add_argument("--warmup-steps", type=int, default=100, help="steps of linear learning-rate warm-up (default: 100)")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--epochs", type=float, default=None, help="stop after this many epochs")
    p.add_argument("--time-budget", type=float, default=None, metavar="S", help="stop after this many seconds of training")
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
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", parents=[common], help="score systems against references: BSS Eval, NSDR, the paper's tables and figures",
                       description="Score separation systems on a dataset with references: SDR, SIR, SAR (and ISR), NSDR per track, "
                       "the paper's tables, box plots and mask images. A rerun with the same --out skips finished tracks.")
    p.add_argument("--data", required=True, metavar="PATH", help="dataset folder or .stem.mp4 file with references")
    p.add_argument("--dataset", choices=["mir1k", "stems", "musdb"], default=None, help="dataset layout (default: guessed from PATH)")
    p.add_argument("--system", dest="systems", action="append", required=True, metavar="SPEC",
                   help="NAME=MODEL (name, .safetensors file or folder), NAME=ESTIMATES_DIR (TRACK/{vocals,accompaniment}.wav), "
                   "'mixture' or 'oracle'; repeat for each system")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: tracks/, scores.csv, summary.md, summary.json, figures/")
    p.add_argument("--metric", choices=["v3", "museval"], default="v3",
                   help="v3: BSS Eval v3 sources on the mono mixture, whole track, means (the paper's; default); "
                   "museval: BSS Eval v4 images, 1 s windows, medians (SiSEC's)")
    p.add_argument("--singers", type=_names, default=(), metavar="A,B", help="only these groups: MIR-1K singers (for other layouts the group is the track)")
    p.add_argument("--tracks", type=_names, default=(), metavar="A,B", help="only these tracks (MIR-1K: clip names such as abjones_1_01)")
    p.add_argument("--limit", type=_jobs, default=None, metavar="N", help="at most N tracks (after the filters)")
    p.add_argument("--rate", type=_jobs, default=None, metavar="HZ", help="rate the references and estimates are compared at (default: 16000 for MIR-1K, else 44100)")
    p.add_argument("--preset", default="jansson2017", help="preset of the oracle's ideal masks and of the mask images: jansson2017 or jansson2017-hop384 (default: jansson2017)")
    p.add_argument("--fullband", choices=["interpolate", "bandlimited"], default=None, help="full-band rule of the model systems and the oracle (default: the separator's)")
    p.add_argument("--combine", choices=["independent", "average", "ratio", "ratio2"], default=None,
                   help="mask combination rule of the model systems (default: each model's preset's)")
    p.add_argument("--pad", choices=["wrap"], default=None, help="how the model systems pad a short segment: wrap repeats it from its start (the only rule, the default)")
    p.add_argument("--shifts", type=_shifts, default=None, metavar="N",
                   help="framings averaged per segment by the model systems and the oracle (default: 1)")
    p.add_argument("-j", "--jobs", type=_jobs, default=None, metavar="N", help="tracks scored in parallel processes (default: all cores)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None, help="number format of the model systems' networks (default: each preset's)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the model systems run (default: cpu)")
    p.add_argument("--mask-systems", type=_names, default=(), metavar="A,B", help="the systems whose masks the mask image shows (default: the first two that are not 'mixture')")
    p.add_argument("--figure-track", default=None, metavar="TRACK", help="the track of the mask image (default: the first scored one)")
    p.add_argument("--excerpt", type=_positive, default=10.0, metavar="S", help="seconds of the mask image (default: 10)")
    p.add_argument("--report", default=None, metavar="FILE.md", help="also write a report with the tables and figures (copied into a folder beside it), e.g. docs/results.md")
    p.add_argument("-f", "--force", action="store_true", help="score everything again, ignoring finished tracks in --out")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("mine", parents=[common], help="find (original, instrumental) training pairs in a catalogue",
                       description="Find (original, instrumental) pairs of the same recording in a catalogue, as in the paper: candidates by "
                       "metadata (artist, fuzzy title with an instrumental marker, duration), exact duplicates pruned by a decoded-content "
                       "hash, then each pair aligned (offset to the sample, gain) and verified from the audio. Writes OUT/pairs.csv "
                       "(for 'vocalsep train --dataset pairs'), OUT/report.md and OUT/report.json. A rerun with the same --out reuses "
                       "finished results.")
    p.add_argument("catalog", metavar="CATALOG", help="a CSV or JSON lines file (artist, title, path, optional duration, album, isrc), or a folder of tagged audio files")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: pairs.csv, report.md, report.json, .work/ (stored results)")
    p.add_argument("--duration-tolerance", type=_nonneg, default=2.0, metavar="S", help="largest duration difference of a pair (default: 2 s)")
    p.add_argument("--title-threshold", type=_score100, default=90.0, metavar="N", help="smallest fuzzy title similarity, 0-100 (default: 90)")
    p.add_argument("--marker", action="append", default=[], metavar="TEXT", help="another instrumental marker, e.g. 'backing version'; in parentheses, '(MR)', only a whole qualifier; repeatable")
    p.add_argument("--only-markers", action="store_true", help="use only the --marker phrases, not the built-in ones")
    p.add_argument("--allow", type=_names, default=(), metavar="TAGS",
                   help="look-alike tags that do not prevent a pair: live, remix, acoustic, acappella, edit, demo, remaster")
    p.add_argument("--max-offset", type=_positive, default=10.0, metavar="S", help="largest offset searched between the two files (default: 10 s)")
    p.add_argument("--max-residual-db", type=float, default=-15.0, metavar="DB",
                   help="highest residual (original - gain x instrumental) outside vocal regions, relative to the original, in dB (default: %(default)s)")
    p.add_argument("--min-vocal-activity", type=float, default=0.03, metavar="X", help="smallest share of frames with voice (default: 0.03)")
    p.add_argument("--min-confidence", type=float, default=0.5, metavar="X", help="pairs below this confidence are rejected (default: 0.5)")
    p.add_argument("-j", "--jobs", type=_jobs, default=None, metavar="N", help="worker processes (default: all cores)")
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="run the audio work on a Ray cluster: 'auto', 'local' or ray://HOST:PORT (needs vocalsep[ray])")
    p.add_argument("-f", "--force", action="store_true", help="recompute everything, ignoring stored results in --out")
    p.set_defaults(func=cmd_mine)
    from .spleeter.cli import add_import_parser

    add_import_parser(sub, common)
    from .listen.cli import add_listen_parser

    add_listen_parser(sub, common)
    from .web.cli import add_web_parser

    add_web_parser(sub, common)
    return parser


def _score100(text: str) -> float:
    v = float(text)
    if not 0 < v <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} must be a similarity in (0, 100]")
    return v


def _names(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return names


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="vocalsep: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for usage errors
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _configure_logging(args.verbose, args.quiet)
    from .errors import VocalsepError

    _SIGNALLED["terminated"] = False
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() else None
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"vocalsep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except VocalsepError as exc:
        print(f"vocalsep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print("vocalsep: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("vocalsep: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (vocalsep info default | head): stop quietly
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is written to the closed pipe
        except OSError:
            pass
        return 141  # 128 + SIGPIPE, as a shell reports it
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The ``vocalsep`` command (and ``python -m vocalsep``): :func:`main`, then a quick exit.

    When :func:`main` returns, every output is written, closed and renamed into
    place; what is left is the interpreter's clean-up, which frees PyTorch's
    tensors, modules and thread pools one by one, so the process ends with
    :func:`os._exit` after flushing the streams and logging.  An interrupted run (130, 143) exits normally, so
    that multiprocessing releases what a stopped worker pool held.
    :func:`main` itself returns normally (for tests and for callers from Python).
    """
    rc = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            pass
    if rc in (130, 143):  # interrupted: a normal exit, so that multiprocessing releases what a stopped worker pool held
        sys.exit(rc)
    os._exit(rc)


# -- separate

def collect_inputs(items: list[str], skip=None) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to separate (folders searched recursively, in sorted order) and (item, reason) for bad items.

    ``skip(path)`` says which files found in folders are not inputs (vocalsep's own outputs)."""
    from .audio import is_audio_file

    files: list[Path] = []
    bad: list[tuple[str, str]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            audio = sorted(f for f in p.rglob("*") if f.is_file() and is_audio_file(f) and not f.name.startswith("."))
            found = [f for f in audio if skip is None or not skip(f)]
            if not audio:
                bad.append((item, "folder contains no audio files"))
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            bad.append((item, "no such file or folder"))
    unique = list(dict.fromkeys(files))
    return unique, bad


def _separator_options(args):
    from .separator import SeparationOptions

    changes = {}
    if args.fullband:
        changes["fullband"] = args.fullband
    if args.high_band:
        changes["high_band"] = args.high_band
    if args.complement:
        changes["complement"] = True
    if args.combine:
        changes["combine"] = args.combine
    if args.pad:
        changes["pad"] = args.pad
    if args.shifts:
        changes["shifts"] = args.shifts
    if getattr(args, "wiener", None) is not None:
        changes["wiener"] = args.wiener
    return SeparationOptions(**changes, precision=args.precision)


def _load_separator(args):
    from .errors import ModelError
    from .separator import Separator

    try:
        return Separator.from_pretrained(args.model or "default", _separator_options(args), device=args.device)
    except ModelError as exc:
        raise UsageError(str(exc)) from None


def _separate_one(sep, path: Path, args, inputs: list[Path], progress=None) -> tuple[str, str]:
    """('done'|'skipped'|'failed', message) for one input."""
    from .errors import VocalsepError

    try:
        written = sep.separate_file(
            path, args.outdir, stems=args.stems, fmt=args.fmt, bit_depth=args.bit_depth, filename=args.filename,
            offset=args.offset, duration=args.duration, stream=args.stream, force=args.force, progress=progress,
            protected=inputs,
        )
    except VocalsepError as exc:  # an output's error names the output file: say which input it was for
        return "failed", str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"
    except (OSError, RuntimeError, ValueError) as exc:
        return "failed", f"{path}: {type(exc).__name__}: {exc}"
    if not written:
        return "skipped", f"{path}: outputs exist (use --force to overwrite)"
    return "done", ", ".join(str(p) for p in written.values())


_WORKER = {}


def _worker_init(args, threads: int, parent: int) -> None:
    import torch

    from ._workers import die_with_parent

    die_with_parent(parent)
    signal.signal(signal.SIGTERM, _worker_terminate)
    signal.signal(signal.SIGINT, _worker_terminate)  # Ctrl-C reaches the whole process group: the main process reports it
    torch.set_num_threads(threads)
    _configure_logging(args.verbose, True)
    _WORKER["sep"] = _load_separator(args)
    _WORKER["args"] = args


def _worker_run(path: Path, inputs: list[Path]):
    _WORKER["busy"] = True
    try:
        return _separate_one(_WORKER["sep"], path, _WORKER["args"], inputs)
    except KeyboardInterrupt:  # SIGINT or SIGTERM: the outputs are discarded; take no further file
        os._exit(130)
    finally:
        _WORKER["busy"] = False


def _worker_terminate(signum, frame):
    """SIGTERM or SIGINT in a worker: discard the file being written, or end at once (no traceback)."""
    if _WORKER.get("busy"):
        _terminate(signum, frame)  # raises the first time; ignores the next signals
        return
    os._exit(143)


def _keep_freed_memory() -> None:
    """Ask glibc to reuse freed memory instead of unmapping it: separation allocates
    the same large spectrograms segment after segment, and memory returned to the
    kernel would be mapped and faulted in afresh each time."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)  # the largest glibc accepts
    libc.mallopt(m_trim_threshold, 1 << 30)
    libc.mallopt(m_top_pad, 64 << 20)


def cmd_separate(args) -> int:
    from .audio import check_format
    from .errors import OutputError
    from .separator import is_output, output_paths

    _keep_freed_memory()
    start = time.perf_counter()
    try:  # check the template and the format before any work
        output_paths("track.wav", args.outdir, args.stems, args.fmt, args.filename)
        check_format(args.fmt, args.bit_depth)
    except OutputError as exc:
        raise UsageError(str(exc)) from None
    outdir_existed = Path(args.outdir).exists()
    # what vocalsep wrote under OUTDIR (an earlier run's stems) is never an input
    files, bad = collect_inputs(args.inputs, skip=lambda f: is_output(f, args.outdir, args.filename))
    for item, reason in bad:
        print(f"vocalsep: error: {item}: {reason}", file=sys.stderr)
    # two inputs must not write the same outputs
    seen: dict[Path, Path] = {}
    unique: list[Path] = []
    for f in files:
        try:
            target = output_paths(f, args.outdir, args.stems[:1], args.fmt, args.filename)[args.stems[0]]
        except OutputError as exc:  # this input's name, or a link where its output goes: this input alone fails
            bad.append((str(f), str(exc)))
            print(f"vocalsep: error: {exc}", file=sys.stderr)
            continue
        if target in seen:
            bad.append((str(f), f"its outputs would collide with those of {seen[target]}; use --filename with more detail"))
            print(f"vocalsep: error: {f}: its outputs would collide with those of {seen[target]}", file=sys.stderr)
            continue
        seen[target] = f
        unique.append(f)
    if not unique:
        if not bad:
            raise UsageError("no input files")
        return EXIT_FAILED
    results: list[tuple[Path, str, str]] = []
    show = not args.quiet and sys.stderr.isatty() or os.environ.get("VOCALSEP_PROGRESS") == "1"
    from tqdm import tqdm

    if args.jobs == 1 or len(unique) == 1:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        sep = _load_separator(args)
        from .audio import AudioReader
        from .errors import AudioError

        for f in unique:
            try:
                total = AudioReader(f, stream=args.stream, offset=args.offset, duration=args.duration).frames
            except AudioError:
                total = None
            with tqdm(total=total, desc=f.name[:30], unit="sample", unit_scale=True, disable=not show, leave=False) as bar:
                status, msg = _separate_one(sep, f, args, unique, progress=bar.update)
            if status == "failed":
                print(f"vocalsep: error: {msg}", file=sys.stderr)
            elif args.verbose:
                print(f"vocalsep: {status}: {msg}", file=sys.stderr)
            results.append((f, status, msg))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        _load_separator(args)  # fail fast on a bad model, before starting workers
        threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
        ctx = mp.get_context("spawn")
        from ._workers import stop_workers

        with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_worker_init, initargs=(args, threads, os.getpid())) as pool:
            try:
                futures = {pool.submit(_worker_run, f, unique): f for f in unique}
                with tqdm(total=len(unique), unit="file", disable=not show) as bar:
                    from concurrent.futures import as_completed

                    for fut in as_completed(futures):
                        f = futures[fut]
                        status, msg = fut.result()
                        if status == "failed":
                            tqdm.write(f"vocalsep: error: {msg}", file=sys.stderr)
                        results.append((f, status, msg))
                        bar.update(1)
            except BaseException:
                stop_workers(pool)
                raise
    if not outdir_existed and Path(args.outdir).is_dir() and not any(Path(args.outdir).iterdir()):
        Path(args.outdir).rmdir()  # every input failed: no empty output folder either
    done = sum(1 for r in results if r[1] == "done")
    skipped = sum(1 for r in results if r[1] == "skipped")
    failed = sum(1 for r in results if r[1] == "failed") + len(bad)
    elapsed = time.perf_counter() - start
    if not args.quiet:
        print(f"vocalsep: {done} separated, {skipped} skipped, {failed} failed in {elapsed:.1f} s -> {args.outdir}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


# -- info / models

def cmd_info(args) -> int:
    import hashlib
    import json

    from .checkpoint import load_checkpoint
    from .model import count_parameters
    from .models import resolve_model

    name, paths = resolve_model(args.model)
    print(f"model: {name}")
    for path in paths:
        ck = load_checkpoint(path)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        p = ck.preset
        print(f"\n{path}")
        print(f"  target:        {ck.target}")
        print(f"  preset:        {p.name}: {p.sample_rate} Hz, STFT {p.n_fft}/{p.hop}, {p.bins} bins (0-{p.max_frequency:.0f} Hz), patches of {p.patch_frames} frames")
        print(f"  separation:    combine {p.combine}, full band {p.fullband}, high band {p.high_band}, precision {p.precision}")
        u = p.unet
        print(f"  network:       {'U-Net' if u.skip else 'baseline encoder-decoder (no skips)'}, channels {list(u.channels)}, kernel {u.kernel_size}, stride {u.stride}, input norm {u.input_norm}")
        print(f"  parameters:    {count_parameters(ck.model):,}")
        print(f"  file:          {Path(path).stat().st_size / 1e6:.1f} MB, sha256 {digest}..., written by vocalsep {ck.version}")
        if ck.training:
            print("  training:      " + json.dumps(ck.training, sort_keys=True, indent=None)[:2000])
        else:
            print("  training:      (no training facts recorded)")
    return EXIT_OK


def cmd_train(args) -> int:
    if not args.recipe:  # validation on whole tracks scores with BSS Eval (scipy); a recipe's validation does not
        need_extra("train", "train")
    from .training import Augment, TrainConfig, fit

    try:
        cfg = TrainConfig(
            data=args.data, out=args.out, dataset=args.dataset, recipe=args.recipe, patch_frames=args.patch_frames, target=args.target, preset=args.preset, skip=args.skip,
            channels=args.channels, dropout=args.dropout, target_rule=args.target_rule, loss=args.loss, precision=args.precision, device=args.device, batch_size=args.batch_size, lr=args.lr, lr_min=args.lr_min,
            warmup_steps=args.warmup_steps, steps=args.steps, epochs=args.epochs, time_budget=args.time_budget, stop_after=args.stop_after,
            steps_per_epoch=args.steps_per_epoch, valid_groups=args.valid_groups, valid_fraction=args.valid_fraction,
            valid_seconds=args.valid_seconds,
            augment=Augment(remix=args.remix),
            init=args.init, seed=args.seed, threads=args.threads, workers=args.workers, cache_dir=args.cache_dir, resume=args.resume,
            progress=not args.quiet and sys.stderr.isatty(),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    logging.getLogger("vocalsep").setLevel(logging.INFO if not args.quiet else logging.ERROR)
    summary = fit(cfg)
    if not args.quiet and int(os.environ.get("RANK", "0")) == 0:
        last = summary.get("last") or {}
        print(f"vocalsep: trained {summary['steps']} steps in {summary['train_seconds']:.0f} s "
              f"({summary['patches_per_s']:.1f} patches/s); last validation NSDR {last.get('valid_nsdr', float('nan')):.2f} dB; "
              f"best model {Path(summary['out']) / 'best.safetensors'}", file=sys.stderr)
    return EXIT_OK


def _evaluate_command(args) -> str:
    """The command line that reproduces this evaluation, spelled out in full."""
    import shlex

    parts = ["vocalsep", "evaluate", "--data", args.data]
    if args.dataset:
        parts += ["--dataset", args.dataset]
    for s in args.systems:
        parts += ["--system", s]
    parts += ["--out", args.out, "--metric", args.metric]
    for flag, value in (("--singers", args.singers), ("--tracks", args.tracks), ("--mask-systems", args.mask_systems)):
        if value:
            parts += [flag, ",".join(value)]
    for flag, value in (("--limit", args.limit), ("--rate", args.rate), ("--fullband", args.fullband), ("--combine", args.combine), ("--pad", args.pad), ("--shifts", args.shifts), ("--figure-track", args.figure_track),
                        ("--precision", args.precision),
                        ("--report", args.report)):
        if value is not None:
            parts += [flag, str(value)]
    if args.preset != "jansson2017":
        parts += ["--preset", args.preset]
    if args.excerpt != 10.0:
        parts += ["--excerpt", str(args.excerpt)]
    return shlex.join(parts)


def cmd_evaluate(args) -> int:
    need_extra("evaluate", "eval")
    from .errors import ModelError
    from .evaluation.report import tables_markdown
    from .evaluation.run import EvalConfig, evaluate

    show = not args.quiet and sys.stderr.isatty() or os.environ.get("VOCALSEP_PROGRESS") == "1"
    cfg = EvalConfig(
        data=args.data, systems=tuple(args.systems), out=args.out, dataset=args.dataset, metric=args.metric,
        groups=args.singers, tracks=args.tracks, limit=args.limit, rate=args.rate, preset=args.preset, fullband=args.fullband, combine=args.combine,
        pad=args.pad, shifts=args.shifts, precision=args.precision, jobs=args.jobs, device=args.device, force=args.force, progress=show, report=args.report,
        mask_systems=args.mask_systems, figure_track=args.figure_track, excerpt=args.excerpt, command=_evaluate_command(args),
    )
    try:
        summary = evaluate(cfg)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    if not args.quiet:
        print(tables_markdown(summary))
        t, tr = summary["timing"], summary["tracks"]
        print(f"vocalsep: {tr['scored']} tracks scored, {len(tr['excluded'])} excluded, {len(summary['failures'])} failed system runs "
              f"in {t['wall']:.1f} s (separation {t['separation']:.1f} s, scoring {t['scoring']:.1f} s, writing {t['writing']:.1f} s, "
              f"figures {t['figures']:.1f} s) -> {Path(args.out) / 'summary.md'}", file=sys.stderr)
    return EXIT_FAILED if summary["failures"] else EXIT_OK


def cmd_mine(args) -> int:
    need_extra("mine", "mine")
    from .errors import ConfigError
    from .mining import AlignConfig, MatchConfig, MineConfig, mine
    from .mining.match import parse_markers
    from .mining.run import print_summary

    if not Path(args.catalog).exists():
        raise UsageError(f"{args.catalog}: no such catalogue (a CSV or JSON lines file, or a folder of audio files)")
    if args.only_markers and not args.marker:
        raise UsageError("--only-markers needs at least one --marker")
    try:
        cfg = MineConfig(
            catalog=args.catalog, out=args.out,
            match=MatchConfig(markers=parse_markers(args.marker, args.only_markers), allow=frozenset(args.allow),
                              duration_tolerance=args.duration_tolerance, title_threshold=args.title_threshold),
            align=AlignConfig(max_offset=args.max_offset, max_residual_db=args.max_residual_db,
                              min_vocal_activity=args.min_vocal_activity, min_confidence=args.min_confidence),
            jobs=args.jobs, ray=args.ray, force=args.force,
            progress=not args.quiet and sys.stderr.isatty() or os.environ.get("VOCALSEP_PROGRESS") == "1",
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    report = mine(cfg)
    for problem in report["problems"]:
        print(f"vocalsep: error: {problem}", file=sys.stderr)
    for r in report["rejected"]:
        if r["failed"] and r["stage"] == "audio":
            print(f"vocalsep: error: {r['reason']}", file=sys.stderr)
    if not args.quiet:
        print_summary(report)
    return EXIT_FAILED if report["failed"] else EXIT_OK


def cmd_models(args) -> int:
    from .models import DEFAULT_MODEL, available_models

    found = available_models()
    if not found:
        print("no models are installed in this vocalsep build")
        return EXIT_OK
    for name, files in found.items():
        mark = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name}{mark}: " + ", ".join(f.name for f in files))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
