"""``vocalsep separate``: audio files into stems, one after another or in ``--jobs`` worker processes."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from .._argtypes import count, nonneg_seconds, positive_seconds, stems
from .._cli_base import EXIT_FAILED, EXIT_OK, UsageError
from .._memory import keep_freed_memory
from ..config import HIGH_BAND_RULES
from ..stems import STEMS
from ._common import add_separation_options, configure_logging, separation_options, terminate


def add_separate_parser(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("separate", parents=[common], help="separate audio files into stems", description="Separate audio files into stems.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, or folders (searched recursively)")
    p.add_argument("-o", "--outdir", default="separated", help="output folder (default: ./separated)")
    p.add_argument("-m", "--model", action="append", metavar="NAME|PATH",
                   help="registered model name, a .safetensors model file or a folder of them; repeat to combine a vocal and an accompaniment model "
                   "(default: the installed default model; 'vocalsep models' lists the installed ones)")
    p.add_argument("--stems", type=stems, default=list(STEMS), help=f"comma-separated stems to write (default: {','.join(STEMS)})")
    p.add_argument("--format", dest="fmt", choices=["wav", "flac", "mp3"], default="wav", help="output format (default: wav)")
    p.add_argument("--bit-depth", choices=["16", "24", "32", "float"], default="16", help="sample format of WAV/FLAC outputs (FLAC: 16 or 24; MP3 has none) (default: 16)")
    p.add_argument("--offset", type=nonneg_seconds, default=0.0, metavar="S", help="start this many seconds into each input")
    p.add_argument("--duration", type=positive_seconds, default=None, metavar="S", help="separate at most this many seconds")
    p.add_argument("--stream", type=int, default=0, metavar="N", help="audio stream of multi-stream files (MUSDB18 .stem.mp4: 0 = mixture)")
    p.add_argument("--filename", default="{track}/{stem}.{ext}", help="output path template inside OUTDIR, with the fields {track}, {stem} and {ext} only (default: {track}/{stem}.{ext})")
    add_separation_options(p)
    p.add_argument("--high-band", choices=HIGH_BAND_RULES, default=None, 
                   help="mask above the modelled band: edge, each frame's mean mask over the top 1 kHz of the modelled band; "
                   "zero, nothing above it (default: the model's preset's: edge for jansson2017 and spleeter-ratio, zero for spleeter)")
    p.add_argument("--complement", action="store_true", help="mixture-consistent stems: accompaniment = mixture - vocals")
    p.add_argument("-j", "--jobs", type=count, default=1, metavar="N", help="files separated in parallel (default: 1)")
    p.add_argument("--threads", type=count, default=None, metavar="N", help="torch threads (default: all cores, shared among --jobs)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_separate)


def collect_inputs(items: list[str], skip=None) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to separate (folders searched recursively, in sorted order) and (item, reason) for bad items.

    ``skip(path)`` says which files found in folders are not inputs (vocalsep's own outputs)."""
    from ..audio import is_audio_file

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


def _load_separator(args):
    from ..errors import ModelError
    from ..separator import Separator

    try:
        return Separator.from_pretrained(args.model or "default", separation_options(args), device=args.device)
    except ModelError as exc:
        raise UsageError(str(exc)) from None


def _separate_one(sep, path: Path, args, inputs: list[Path], progress=None) -> tuple[str, str]:
    """('done'|'skipped'|'failed', message) for one input."""
    from ..errors import VocalsepError

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


def _worker_init(args, threads: int, parent: int, ignore_sigint: bool = False) -> None:
    import torch

    from .._workers import die_with_parent

    die_with_parent(parent)
    signal.signal(signal.SIGTERM, _worker_terminate)
    # Ctrl-C reaches the whole process group: the main process reports it.  A main process started
    # with SIGINT ignored (a background job of a script, nohup) goes on, and so must its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else _worker_terminate)
    keep_freed_memory()  # as in the main process
    torch.set_num_threads(threads)
    configure_logging(args.verbose, True)
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
        terminate(signum, frame)  # raises the first time; ignores the next signals
        return
    os._exit(143)


def _new_output_dirs(f: Path, args) -> list[Path]:
    from .._atomic import missing_dirs
    from ..separator import output_paths

    return missing_dirs({p.parent for p in output_paths(f, args.outdir, args.stems, args.fmt, args.filename).values()},
                        Path(args.outdir).resolve())


def _discard_lost_outputs(f: Path, args, made: list[Path]) -> None:
    """What a worker killed while separating ``f`` left: its temporary files and the folders it made."""
    from .._atomic import remove_empty, remove_stale
    from ..separator import output_paths

    for p in output_paths(f, args.outdir, args.stems, args.fmt, args.filename).values():
        remove_stale(p)
    remove_empty(made)


def cmd_separate(args) -> int:
    from .._atomic import file_in_the_way
    from ..audio import check_format
    from ..errors import OutputError
    from ..separator import is_output, output_paths

    keep_freed_memory()
    start = time.perf_counter()
    try:  # check the template and the format before any work
        output_paths("track.wav", args.outdir, args.stems, args.fmt, args.filename)
        check_format(args.fmt, args.bit_depth)
    except OutputError as exc:
        raise UsageError(str(exc)) from None
    blocking = file_in_the_way(args.outdir)
    if blocking is not None:
        raise UsageError(f"-o {args.outdir}: {blocking} is a file, not a folder")
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
        from ..audio import AudioReader
        from ..errors import AudioError

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
        from .._workers import stop_workers

        from concurrent.futures.process import BrokenProcessPool

        ignore_sigint = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        made = {f: _new_output_dirs(f, args) for f in unique}  # what a worker that dies may leave empty
        lost: list[Path] = []
        with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_worker_init,
                                 initargs=(args, threads, os.getpid(), ignore_sigint)) as pool:
            try:
                futures = {pool.submit(_worker_run, f, unique): f for f in unique}
                with tqdm(total=len(unique), unit="file", disable=not show) as bar:
                    from concurrent.futures import as_completed

                    for fut in as_completed(futures):
                        f = futures[fut]
                        try:
                            status, msg = fut.result()
                        except BrokenProcessPool:  # a worker was killed (out of memory, a signal to it alone)
                            lost.append(f)
                            status, msg = "failed", f"{f}: not separated: a worker process ended without finishing (killed, or out of memory?)"
                        if status == "failed":
                            tqdm.write(f"vocalsep: error: {msg}", file=sys.stderr)
                        results.append((f, status, msg))
                        bar.update(1)
            except BaseException:
                stop_workers(pool)
                raise
        for f in lost:  # the dead worker could not remove its temporary files: they are stale now
            _discard_lost_outputs(f, args, made[f])
    if not outdir_existed and Path(args.outdir).is_dir() and not any(Path(args.outdir).iterdir()):
        Path(args.outdir).rmdir()  # every input failed: no empty output folder either
    done = sum(1 for r in results if r[1] == "done")
    skipped = sum(1 for r in results if r[1] == "skipped")
    failed = sum(1 for r in results if r[1] == "failed") + len(bad)
    elapsed = time.perf_counter() - start
    if not args.quiet:
        print(f"vocalsep: {done} separated, {skipped} skipped, {failed} failed in {elapsed:.1f} s -> {args.outdir}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
