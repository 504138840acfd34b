#!/usr/bin/env python
"""Speed and memory benchmark of ``vocalsep separate`` (not a test).

What it measures
----------------
1. **End to end**: the real command line, ``vocalsep -q separate FILE -o
   OUTDIR -m MODEL --force`` (16-bit WAV, the default; ``-q`` must come before
   ``separate``, the subcommand rejects it), run as a child process on a
   3-minute and a 60-minute stereo 44.1 kHz MP3 (``--durations``).  Wall time,
   x real time (audio seconds / wall seconds), the child's CPU time and the
   peak RSS of the whole child process, start-up included (``os.wait4`` on
   the child's own pid, so each run has its own ``ru_maxrss``; the child is
   started by a tiny launcher process, because exec() would otherwise copy
   this process's own peak RSS into the child's figure).  The outputs are
   deleted after each run unless ``--keep``.
2. **Start-up**: a child that only imports vocalsep and loads the model, for
   the fixed time and memory every run pays.
3. **Model only**: in process, the U-Net forward passes alone (both models,
   ``torch.inference_mode``, batch = 2 channels, segments of the separator's
   ``segment_frames``) over the equivalent of 3 minutes of stereo audio.
4. **Stages**: one in-process separation of the shortest file (the
   separator's default options, as the CLI uses them), with small timing
   wrappers around the decoder, the resamplers, the STFTs, the models, the
   mask interpolation, the high-band gain, the inverse STFTs and the writer;
   each is booked as exclusive time under the analysis or the synthesis that
   called it.  Nothing in ``src/`` is changed; the wrappers are removed
   afterwards.  It is the first separation in this process, as in the CLI.

The machine's other load (CPU seconds busy outside the measured process, from
``/proc/stat``) is recorded for every measurement; ``--wait-idle S`` waits up
to S seconds for a quiet machine before each one.

The inputs are built by looping ``slow-motion-dream.mp3`` (10.9 s) from the
shared data folder and encoding, block by block, to MP3; they are cached in
``benchmarks/out/`` and reused.  Without ``--model`` and without an installed
default model, randomly initialised jansson2017 checkpoints are written to
``benchmarks/out/random-model/``: speed does not depend on the weights.

Targets (PASS/FAIL): >= 50x real time end to end on the 3-minute file,
>= 150x real time for the model part, peak RSS < 1 GB (10^9 bytes) on the
60-minute file, and 60-minute peak RSS <= 1.5x the 3-minute peak RSS.

Usage::

    python benchmarks/separate_speed.py                  # 3 and 60 minutes
    python benchmarks/separate_speed.py --durations 3 --repeat 3 --threads 2
    python benchmarks/separate_speed.py --repeat 2 --wait-idle 120   # on a shared machine
    python benchmarks/separate_speed.py --fullband interpolate       # the other full-band rule
    python benchmarks/separate_speed.py --shifts 3 --json benchmarks/out/separate_speed_shifts3.json  # 3 framings
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
DATA = Path(os.environ.get("VOCALSEP_DATA", ROOT.parent / "shared" / "data"))
SOURCE = DATA / "mixtures" / "slow-motion-dream.mp3"
MB = 1e6  # RSS is reported in MB = 10^6 bytes; "1 GB" below is 10^9 bytes

TARGET_E2E_X = 50.0  # x real time, end to end, 3-minute file
TARGET_MODEL_X = 150.0  # x real time, U-Net forward passes only
TARGET_RSS_MB = 1000.0  # peak RSS of the 60-minute run
TARGET_RSS_RATIO = 1.5  # 60-minute peak RSS / 3-minute peak RSS


def say(msg: str = "") -> None:
    print(msg, flush=True)


# -- machine and load ---------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


class CpuSampler:
    """System-wide CPU seconds (busy and steal) between start() and stop(), from /proc/stat.

    Busy time not spent by our own child is other work on the machine: the
    evidence of whether the timing was taken on a loaded machine.
    """

    def __init__(self) -> None:
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start_vals: list[int] | None = None

    @staticmethod
    def _read() -> list[int] | None:
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()
            return [int(v) for v in fields[1:]]
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        self.start_vals = self._read()

    def stop(self) -> dict[str, float] | None:
        end = self._read()
        if self.start_vals is None or end is None:
            return None
        d = [b - a for a, b in zip(self.start_vals, end)]
        d += [0] * (8 - len(d))
        user, nice, system, idle, iowait, irq, softirq, steal = d[:8]
        busy = user + nice + system + irq + softirq
        return {"busy_cpu_s": busy / self.tick, "steal_s": steal / self.tick, "idle_s": (idle + iowait) / self.tick}


@contextlib.contextmanager
def own_load():
    """Yields a dict filled on exit: this process's CPU seconds and the machine's other load meanwhile."""
    import resource

    info: dict[str, float] = {}
    sampler = CpuSampler()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    sampler.start()
    t0 = time.perf_counter()
    try:
        yield info
    finally:
        wall = time.perf_counter() - t0
        sys_cpu = sampler.stop()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        info.update(wall_s=wall, cpu_s=cpu)
        if sys_cpu is not None and wall > 0:
            info["other_cpu_s"] = max(0.0, sys_cpu["busy_cpu_s"] - cpu)
            info["other_load"] = info["other_cpu_s"] / wall
            info["steal_s"] = sys_cpu["steal_s"]


def wait_idle(max_s: float, threshold: float = 0.2) -> dict | None:
    """Wait up to ``max_s`` seconds for the other load on the machine to fall below ``threshold`` CPUs (1-s samples)."""
    if max_s <= 0:
        return None
    t0 = time.perf_counter()
    other = float("nan")
    while True:
        with own_load() as info:
            time.sleep(1.0)
        other = info.get("other_load", 0.0)
        waited = time.perf_counter() - t0
        if other < threshold or waited >= max_s:
            if waited > 1.5 or other >= threshold:
                say(f"    waited {waited:.0f} s for an idle machine: other load now {other:.2f} CPUs"
                    + ("" if other < threshold else " (gave up waiting)"))
            return {"waited_s": round(waited, 1), "other_load": round(other, 3), "idle": other < threshold}


def git_state() -> str | None:
    """The commit measured, and whether src/ had uncommitted changes (src/ changes under this benchmark's feet)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + (" (src/ modified)" if dirty else "")) or None


def machine_info(threads: int | None) -> dict:
    import torch

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    try:
        mem_total = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1]) * 1024
    except (OSError, StopIteration, ValueError):
        mem_total = None
    try:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        uptime = None
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "memory_gb": None if mem_total is None else round(mem_total / 1e9, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "threads_option": threads,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
        "loadavg_at_start": loadavg(),
        "git": git_state(),
        "uptime_at_start": uptime,
    }


# -- inputs --------------------------------------------------------------------

def input_path(minutes: float) -> Path:
    return OUT / f"loop-{minutes:g}min.mp3"


def build_input(minutes: float, clip: np.ndarray, rate: int) -> dict:
    """Loop ``clip`` to ``minutes`` and encode to MP3, streaming; reuse a cached file of the right length."""
    from vocalsep.audio import AudioReader, AudioWriter

    path = input_path(minutes)
    want = int(round(minutes * 60 * rate))
    if path.exists():
        try:
            r = AudioReader(path)
            if r.sample_rate == rate and r.channels == clip.shape[0] and r.frames is not None and abs(r.frames - want) < rate:
                return {"minutes": minutes, "path": str(path), "rate": rate, "frames": r.frames, "seconds": r.frames / rate, "built": False, "build_s": 0.0}
            say(f"  cached {path.name} has the wrong length or format; rebuilding")
        except Exception as exc:  # noqa: BLE001 - a bad cache file is rebuilt
            say(f"  cached {path.name} unreadable ({exc}); rebuilding")
    say(f"  building {path.name} ({minutes:g} min) by looping {SOURCE.name} ...")
    t0 = time.perf_counter()
    # blocks of whole clips (~44 s): memory holds one block, never the whole file
    block = np.tile(clip, (1, 4))
    written = 0
    with AudioWriter(path, rate, clip.shape[0], fmt="mp3") as w:  # atomic: a partial file never appears
        while written < want:
            n = min(block.shape[1], want - written)
            w.write(block[:, :n])
            written += n
        clipped = w.clipped
    dt = time.perf_counter() - t0
    r = AudioReader(path)
    say(f"    {written / rate:.0f} s written in {dt:.1f} s ({written / rate / dt:.0f}x real time); "
        f"{clipped} samples clipped to [-1, 1] (MP3 decoding overshoot of the source)")
    return {"minutes": minutes, "path": str(path), "rate": rate, "frames": r.frames, "seconds": (r.frames or written) / rate, "built": True, "build_s": round(dt, 2)}


# -- model -----------------------------------------------------------------------

def choose_model(given: list[str] | None, vocalsep_cmd: list[str]) -> dict:
    """The model to run: --model, the installed default, or random jansson2017 checkpoints."""
    if given:
        return {"args": given, "source": "given", "note": f"--model {' '.join(given)}"}
    res = subprocess.run(vocalsep_cmd + ["models"], capture_output=True, text=True)
    if res.returncode == 0 and any("(default)" in line for line in res.stdout.splitlines()):
        return {"args": ["default"], "source": "installed default", "note": "the installed default model"}
    folder = OUT / "random-model"
    make_random_model(folder)
    return {
        "args": [str(folder)],
        "source": "random",
        "note": f"no default model installed: RANDOMLY INITIALISED jansson2017 checkpoints in {folder.relative_to(ROOT)} "
                "(speed does not depend on the weights; the stems are meaningless)",
    }


def make_random_model(folder: Path) -> None:
    import torch

    from vocalsep.checkpoint import load_checkpoint, save_checkpoint
    from vocalsep.config import get_preset
    from vocalsep.model import UNet

    preset = get_preset("jansson2017")
    folder.mkdir(parents=True, exist_ok=True)
    for seed, target in enumerate(("vocals", "accompaniment")):
        path = folder / f"{target}.safetensors"
        if path.exists():
            try:
                ck = load_checkpoint(path)
                if ck.target == target and ck.preset == preset:
                    continue
            except Exception:  # noqa: BLE001 - rewrite a stale file
                pass
        torch.manual_seed(seed)
        save_checkpoint(path, UNet(preset.unet).eval(), target=target, preset=preset,
                        training={"note": "random initialisation for benchmarks/separate_speed.py; not trained"})


# -- child processes ---------------------------------------------------------------

def vocalsep_command() -> list[str]:
    exe = Path(sys.executable).parent / "vocalsep"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("vocalsep")
    return [found] if found else [sys.executable, "-m", "vocalsep"]


def child_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VOCALSEP_PROGRESS", None)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


# A tiny process that starts the measured command, waits for it with wait4 and
# prints its own rusage as JSON.  It is needed for a correct peak RSS: on Linux
# exec() records the high-water RSS of the mm being replaced into the new
# program's ru_maxrss, and a child forked (or vforked) straight from this
# benchmark would carry this process's peak (~0.8 GB after the in-process
# separation) into its own figure.  The launcher is small when it forks, so the
# measured child's ru_maxrss is its own.
_LAUNCHER = """
import json, os, subprocess, sys, time
log = open(sys.argv[1], "wb")
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
                  "maxrss_kib": ru.ru_maxrss, "minflt": ru.ru_minflt, "majflt": ru.ru_majflt}))
"""


def run_child(cmd: list[str], env: dict[str, str], log_path: Path) -> dict:
    """Run ``cmd``: its own wall time, CPU time and peak RSS (os.wait4 on its pid), and the machine's other load meanwhile.

    The command is started by a small launcher process (see ``_LAUNCHER``) so
    that its ``ru_maxrss`` is not inflated by this process's memory.
    """
    sampler = CpuSampler()
    load_before = loadavg()
    sampler.start()
    t0 = time.perf_counter()
    launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(log_path), *cmd], stdout=subprocess.PIPE, env=env, cwd=ROOT)
    out, _ = launcher.communicate()
    outer_wall = time.perf_counter() - t0
    sys_cpu = sampler.stop()
    try:
        ru = json.loads(out)
    except ValueError:
        raise RuntimeError(f"benchmark launcher failed (exit {launcher.returncode}): {out[-500:]!r}") from None
    wall = ru["wall_s"]
    cpu = ru["user_s"] + ru["sys_s"]
    result = {
        "rc": ru["rc"],
        "wall_s": wall,
        "cpu_s": cpu,
        "user_s": ru["user_s"],
        "sys_s": ru["sys_s"],
        "peak_rss_mb": ru["maxrss_kib"] * 1024 / MB,  # Linux: ru_maxrss is in KiB
        "minor_faults": ru["minflt"],
        "major_faults": ru["majflt"],
        "load_before": load_before,
        "load_after": loadavg(),
    }
    if sys_cpu is not None and outer_wall > 0:
        # busy CPU seconds on the whole machine that were not our child: other jobs (this process sleeps meanwhile)
        result["other_cpu_s"] = max(0.0, sys_cpu["busy_cpu_s"] - cpu)
        result["other_load"] = result["other_cpu_s"] / outer_wall
        result["steal_s"] = sys_cpu["steal_s"]
    result["log_tail"] = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    return result


def startup_cost(model_args: list[str], env: dict[str, str]) -> dict:
    code = (
        "import sys\n"
        "from vocalsep.separator import Separator\n"
        "Separator.from_pretrained(sys.argv[1:] if len(sys.argv) > 2 else sys.argv[1])\n"
    )
    return run_child([sys.executable, "-c", code, *model_args], env, OUT / "startup.log")


def output_frames(outdir: Path) -> dict[str, int]:
    import soundfile as sf

    return {p.stem: sf.info(str(p)).frames for p in sorted(outdir.rglob("*.wav"))}


def cli_command(cmd0: list[str], path: str, outdir, model_args: list[str], extra: list[str] = ()) -> list[str]:
    """``vocalsep -q separate FILE -o OUTDIR --force -m MODEL...`` (WAV 16-bit, the default).

    ``-q`` goes before the subcommand: it is an option of the top-level
    parser only, and ``vocalsep separate ... -q`` is rejected (exit code 2).
    """
    cmd = cmd0 + ["-q", "separate", str(path), "-o", str(outdir), "--force"]
    for m in model_args:
        cmd += ["-m", m]
    return cmd + list(extra)


def cli_extra(args) -> list[str]:
    extra = ["--fullband", args.fullband] if args.fullband else []
    return (extra + (["--shifts", str(args.shifts)] if args.shifts else [])
            + (["--wiener", str(args.wiener)] if args.wiener is not None else []))


def end_to_end(item: dict, model_args: list[str], args, env: dict[str, str], cmd0: list[str]) -> dict:
    minutes = item["minutes"]
    outdir = OUT / f"separated-{minutes:g}min"
    runs = []
    for i in range(args.repeat):
        if outdir.exists():
            shutil.rmtree(outdir)
        cmd = cli_command(cmd0, item["path"], outdir, model_args, cli_extra(args))
        idle = wait_idle(args.wait_idle)
        say(f"  {minutes:g} min, run {i + 1}/{args.repeat}: vocalsep {' '.join(cmd[len(cmd0):])}")
        r = run_child(cmd, env, OUT / f"separate-{minutes:g}min.log")
        frames = output_frames(outdir) if outdir.exists() else {}
        r["output_frames"] = frames
        r["wait_idle"] = idle
        r["ok"] = r["rc"] == 0 and set(frames) == {"vocals", "accompaniment"} and len(set(frames.values())) == 1
        seconds = (next(iter(frames.values())) / item["rate"]) if frames else item["seconds"]  # the exact decoded length
        r["x_realtime"] = seconds / r["wall_s"]
        say(f"    rc {r['rc']}, {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, {r['x_realtime']:.1f}x real time, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB, other load {r.get('other_load', float('nan')):.2f} CPUs")
        if not r["ok"]:
            say("    FAILED or incomplete outputs; child log:\n" + r["log_tail"])
        if not args.keep or i < args.repeat - 1:
            shutil.rmtree(outdir, ignore_errors=True)
        del r["log_tail"]
        runs.append(r)
    walls = [r["wall_s"] for r in runs]
    audio_s = item["seconds"]
    if runs and runs[-1]["output_frames"]:
        audio_s = next(iter(runs[-1]["output_frames"].values())) / item["rate"]
    med = statistics.median(walls)
    return {
        "minutes": minutes,
        "audio_s": audio_s,
        "ok": all(r["ok"] for r in runs),
        "wall_s": med,
        "wall_s_best": min(walls),
        "x_realtime": audio_s / med,
        "x_realtime_best": audio_s / min(walls),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "runs": runs,
        "kept": str(outdir) if args.keep else None,
    }


# -- in-process: model only and stages --------------------------------------------

def load_separator(model_args: list[str], threads: int | None, fullband: str | None = None, shifts: int | None = None,
                   wiener: int | None = None):
    """The separator the CLI would build: default options, except ``--fullband``, ``--shifts`` and ``--wiener`` if given."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from vocalsep.separator import SeparationOptions, Separator

    options = SeparationOptions(**{k: v for k, v in (("fullband", fullband), ("shifts", shifts)) if v},
                                **({"wiener": wiener} if wiener is not None else {}))
    return Separator.from_pretrained(model_args if len(model_args) > 1 else model_args[0], options)


def model_only(sep, clip: np.ndarray, rate: int, repeat: int, minutes: float = 3.0) -> dict:
    """Time the U-Net forward passes alone over ``minutes`` of stereo audio (real magnitudes)."""
    import torch

    p = sep.preset
    seg_samples, _ = sep.segment_samples(rate)
    seg_samples += 4 * p.hop * rate // p.sample_rate  # a little more, then crop to exactly segment_frames
    x = np.tile(clip, (1, math.ceil(seg_samples / clip.shape[1])))[:, :seg_samples]
    with torch.inference_mode():
        low, spec = sep.front.analyse(x, rate)
        spec = spec[..., : sep.segment_frames]
        mag = sep.front.model_input(spec[:, : p.bins].abs())  # the networks' input for one segment, as the separator makes it
    seg_seconds = spec.shape[-1] * p.hop / p.sample_rate  # audio one forward pass covers
    n_seg = math.ceil(minutes * 60 / seg_seconds)
    audio_s = n_seg * seg_seconds
    models = list(sep._networks().items())  # in the separator's precision
    with torch.inference_mode():
        t0 = time.perf_counter()
        for _, m in models:  # warm-up: oneDNN picks and caches its kernels on the first call
            m(mag)
        warmup = time.perf_counter() - t0
        times = []
        per_model = {t: [] for t, _ in models}
        for _ in range(repeat):
            t_run = time.perf_counter()
            for _ in range(n_seg):
                for t, m in models:
                    t1 = time.perf_counter()
                    m(mag)
                    per_model[t].append(time.perf_counter() - t1)
            times.append(time.perf_counter() - t_run)
    med = statistics.median(times)
    return {
        "input_shape": list(mag.shape),
        "segment_frames": sep.segment_frames,
        "segment_s": seg_seconds,
        "segments": n_seg,
        "models": [t for t, _ in models],
        "audio_s": audio_s,
        "warmup_s": warmup,
        "time_s": med,
        "time_s_best": min(times),
        "forward_ms": {t: 1000 * statistics.median(v) for t, v in per_model.items()},
        "x_realtime": audio_s / med,
        "x_realtime_best": audio_s / min(times),
        "threads": torch.get_num_threads(),
        "precision": sep.precision,  # the networks' number format here (auto: bf16 only where the CPU has it)
    }


class StageTimer:
    """Exclusive time of wrapped callables (own time minus that of wrapped callees).

    Each call is booked under ``(context, name)``: ``context`` is the nearest
    enclosing call named in ``contexts`` (``analyse``/``synthesise``), so that
    a resampler or STFT is attributed to the analysis or to the synthesis that
    called it.  The wrappers are removed by :meth:`undo`.
    """

    def __init__(self, contexts: tuple[str, ...] = ("analyse", "synthesise")) -> None:
        self.contexts = contexts
        self.excl: dict[tuple[str | None, str], float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list] = []  # [name, time spent in wrapped callees]
        self._undo: list = []

    def _enter(self, name: str) -> float:
        self._stack.append([name, 0.0])
        return time.perf_counter()

    def _exit(self, t0: float) -> None:
        dt = time.perf_counter() - t0
        name, inner = self._stack.pop()
        context = next((n for n, _ in reversed(self._stack) if n in self.contexts), None)
        key = (context, name)
        self.excl[key] = self.excl.get(key, 0.0) + dt - inner
        self.calls[name] = self.calls.get(name, 0) + 1
        if self._stack:
            self._stack[-1][1] += dt

    def wrap(self, owner, attr: str, name: str) -> None:
        """Time ``owner.attr``: a class's method, a module's function or an instance's bound method."""
        own = vars(owner)
        had_own = attr in own  # False for a method an instance gets from its class
        orig = own[attr] if isinstance(owner, type) else getattr(owner, attr)  # a class: the plain function, so it still binds

        def timed(*a, **k):
            t0 = self._enter(name)
            try:
                return orig(*a, **k)
            finally:
                self._exit(t0)

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, orig, had_own))

    def wrap_generator(self, cls: type, attr: str, name: str) -> None:
        """Time each step of a generator method (the time to produce each item)."""
        func = vars(cls)[attr]

        def timed_gen(*a, **k):
            gen = func(*a, **k)
            try:
                while True:
                    t0 = self._enter(name)
                    try:
                        item = next(gen)
                    except StopIteration:
                        return
                    finally:
                        self._exit(t0)
                    yield item
            finally:
                gen.close()

        setattr(cls, attr, timed_gen)
        self._undo.append((cls, attr, func, True))

    def hook_module(self, module, name: str) -> None:
        starts: list[float] = []
        h1 = module.register_forward_pre_hook(lambda mod, inp: starts.append(self._enter(name)))
        h2 = module.register_forward_hook(lambda mod, inp, out: self._exit(starts.pop()))
        self._undo += [(h1, None, None, None), (h2, None, None, None)]

    def undo(self) -> None:
        for owner, attr, orig, had_own in reversed(self._undo):
            if attr is None:
                owner.remove()
            elif had_own:
                setattr(owner, attr, orig)
            else:
                delattr(owner, attr)
        self._undo.clear()


_STAGE_LABELS = {
    "probe": "probe (open file)",
    "decode": "decode (MP3 -> float, 1 block per MP3 frame)",
    "analyse": "glue",
    "resample": "resample (soxr HQ)",
    "stft_low": "STFT {n_fft}/{hop} @ {rate} Hz",
    "istft_low": "inverse STFT {n_fft}/{hop} @ {rate} Hz",
    "magnitude": "magnitude",
    "stft_full": "STFT (full band) @ input rate",
    "istft_full": "inverse STFT (full band) @ input rate",
    "interp": "mask interpolation",
    "high_gain": "high-band gain (np.interp per sample)",
    "fit": "crop/pad",
    "synthesise": "mask x spectrogram, additions, copies",
    "segment": "segment: complement, dict glue",
    "write": "write WAV blocks (clip check, int16)",
    "commit": "commit (close, rename)",
}


def stage_breakdown(sep, path: str, seconds: float) -> dict:
    """One in-process separation of ``path`` (WAV 16-bit, the separator's default options), timed stage by stage."""
    import vocalsep.separator as S
    from vocalsep.audio import AudioReader, AudioWriter

    st = StageTimer()
    outdir = OUT / "stages-tmp"
    shutil.rmtree(outdir, ignore_errors=True)
    front = sep.front
    try:
        st.wrap(AudioReader, "__init__", "probe")
        st.wrap_generator(AudioReader, "blocks", "decode")
        for attr, name in (("resample", "resample"), ("interpolate_mask", "interp"), ("_fit", "fit")):
            if hasattr(S, attr):
                st.wrap(S, attr, name)
        for attr, name in (("analyse", "analyse"), ("magnitude", "magnitude"), ("synthesise", "synthesise"), ("_high_gain", "high_gain")):
            if hasattr(front, attr):
                st.wrap(front, attr, name)
        for stft, tag in ((getattr(front, "low_stft", None), "low"), (getattr(front, "full_stft", None), "full")):
            if stft is not None:
                st.wrap(stft, "forward", f"stft_{tag}")
                st.wrap(stft, "inverse", f"istft_{tag}")
        for target, m in sep._networks().items():  # the networks that run, in the separator's precision
            st.hook_module(m, f"model: {target}")
        st.wrap(AudioWriter, "write", "write")
        st.wrap(AudioWriter, "commit", "commit")
        st.wrap(sep, "_separate_segment", "segment")
        t0 = time.perf_counter()
        sep.separate_file(path, outdir, fmt="wav", bit_depth="16", force=True)
        total = time.perf_counter() - t0
    finally:
        st.undo()
        shutil.rmtree(outdir, ignore_errors=True)

    def group(context: str | None, name: str) -> str:
        if name in ("probe", "decode"):
            return "decode"
        if context == "analyse" or name in ("analyse", "magnitude"):
            return "resample + STFT analysis"
        if name.startswith("model: "):
            return "model"
        if context == "synthesise" or name in ("synthesise", "high_gain"):
            return "full-band synthesis / iSTFT"
        if name in ("write", "commit"):
            return "write"
        return "other (overlap-add, glue)"

    order = ["decode", "resample + STFT analysis", "model", "full-band synthesis / iSTFT", "write", "other (overlap-add, glue)"]
    grouped = dict.fromkeys(order, 0.0)
    fine: dict[str, float] = {}
    for (context, name), v in sorted(st.excl.items(), key=lambda kv: order.index(group(*kv[0]))):
        g = group(context, name)
        grouped[g] += v
        label = name if name.startswith("model: ") else _STAGE_LABELS.get(name, name)
        label = label.format(n_fft=sep.preset.n_fft, hop=sep.preset.hop, rate=sep.preset.sample_rate)
        prefix = {"resample + STFT analysis": "analysis: ", "full-band synthesis / iSTFT": "synthesis: "}.get(g, "")
        fine[prefix + label] = fine.get(prefix + label, 0.0) + v
    rest = total - sum(st.excl.values())  # overlap-add, peak check, the generator glue in separate_file
    grouped["other (overlap-add, glue)"] += rest
    fine["overlap-add, peak check, other"] = rest
    return {
        "file": path,
        "audio_s": seconds,
        "options": dataclasses.asdict(sep.options),
        "total_s": total,
        "x_realtime": seconds / total,
        "segments": st.calls.get("segment", 0),
        "decode_blocks": st.calls.get("decode", 0),
        "grouped_s": grouped,
        "fine_s": fine,
        "calls": dict(st.calls),
    }


# -- report -------------------------------------------------------------------------

def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "PASS" if ok else "FAIL"


def targets(e2e: list[dict], mo: dict | None) -> list[dict]:
    rows = []
    short = min(e2e, key=lambda r: r["minutes"]) if e2e else None
    long = max(e2e, key=lambda r: r["minutes"]) if e2e else None

    def note(r, want):
        return "" if r is None or r["minutes"] == want else f" (target is for {want:g} min; measured on {r['minutes']:g} min)"

    if short is not None:
        rows.append({"target": f"end to end >= {TARGET_E2E_X:g}x real time, {short['minutes']:g}-min file" + note(short, 3),
                     "value": round(short["x_realtime"], 1), "pass": bool(short["ok"] and short["x_realtime"] >= TARGET_E2E_X)})
    if mo is not None:
        rows.append({"target": f"model only >= {TARGET_MODEL_X:g}x real time", "value": round(mo["x_realtime"], 1),
                     "pass": mo["x_realtime"] >= TARGET_MODEL_X})
    if long is not None:
        rows.append({"target": f"peak RSS < {TARGET_RSS_MB:g} MB (1 GB), {long['minutes']:g}-min file" + note(long, 60),
                     "value": round(long["peak_rss_mb"]), "pass": bool(long["ok"] and long["peak_rss_mb"] < TARGET_RSS_MB)})
    if short is not None and long is not None and long is not short:
        ratio = long["peak_rss_mb"] / short["peak_rss_mb"]
        rows.append({"target": f"peak RSS {long['minutes']:g} min <= {TARGET_RSS_RATIO:g}x {short['minutes']:g} min",
                     "value": round(ratio, 2), "pass": bool(long["ok"] and short["ok"] and ratio <= TARGET_RSS_RATIO)})
    return rows


def print_report(res: dict) -> None:
    m = res["machine"]
    say()
    say("=" * 78)
    say(f"machine: {m['cpu']}, {m['cpu_count']} CPUs (affinity {m['cpu_affinity']}), torch {m['torch']}, "
        f"{m['torch_threads']} torch threads{'' if not m['threads_option'] else ' (--threads)'}")
    say(f"load average at start: {m['loadavg_at_start']}")
    say(f"model: {res['model']['note']}")
    say(f"code: git {m.get('git')}; separator options: {res.get('options')}")
    say()
    if res.get("startup") or res["end_to_end"]:
        say(f"{'file':>8} {'audio s':>8} {'wall s':>8} {'best s':>8} {'x RT':>7} {'x RT best':>9} {'CPU s':>7} {'peak RSS MB':>11} {'other load':>10}  ok")
    su = res.get("startup")
    if su:
        say(f"{'start-up':>8} {'-':>8} {su['wall_s']:8.2f} {'-':>8} {'-':>7} {'-':>9} {su['cpu_s']:7.2f} {su['peak_rss_mb']:11.0f} "
            f"{su.get('other_load', float('nan')):10.2f}  {'yes' if su['rc'] == 0 else 'NO'}")
    for r in res["end_to_end"]:
        other = statistics.median(x.get("other_load", float("nan")) for x in r["runs"])
        say(f"{r['minutes']:>5g}min {r['audio_s']:8.1f} {r['wall_s']:8.1f} {r['wall_s_best']:8.1f} {r['x_realtime']:7.1f} "
            f"{r['x_realtime_best']:9.1f} {r['cpu_s']:7.1f} {r['peak_rss_mb']:11.0f} {other:10.2f}  {'yes' if r['ok'] else 'NO'}")
    mo = res.get("model_only")
    if mo:
        say()
        say(f"model only: {len(mo['models'])} model(s) x {mo['segments']} segments of {mo['input_shape']} "
            f"({mo['segment_s']:.1f} s each, {mo['audio_s']:.0f} s of stereo audio): {mo['time_s']:.2f} s -> "
            f"{mo['x_realtime']:.0f}x real time (best {mo['x_realtime_best']:.0f}x); per forward "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in mo["forward_ms"].items()) + f"; warm-up {mo['warmup_s']:.2f} s")
    sb = res.get("stages")
    if sb:
        say()
        say(f"stages of one in-process separation of {Path(sb['file']).name} ({sb['audio_s']:.0f} s, {sb['segments']} segments, "
            f"{sb['decode_blocks']} decoded blocks): {sb['total_s']:.2f} s = {sb['x_realtime']:.0f}x real time")
        for k, v in sb["grouped_s"].items():
            say(f"  {k:<34} {v:7.2f} s  {100 * v / sb['total_s']:5.1f} %")
        say("  in detail:")
        for k, v in sb["fine_s"].items():
            say(f"    {k:<32} {v:7.3f} s  {100 * v / sb['total_s']:5.1f} %")
    say()
    busy = res.get("busy") or {}
    if busy:
        worst = max(busy.values())
        say(f"other load (CPUs busy with other work while measuring, out of {m['cpu_count']}): "
            + ", ".join(f"{k} {v:.2f}" for k, v in busy.items()))
        if worst > 0.2:
            say(f"  WARNING: the machine was busy (up to {worst:.2f} CPUs of other work): timings are pessimistic")
        say(f"load average at start {m['loadavg_at_start']}, at end {m.get('loadavg_at_end')}")
    for t in res["targets"]:
        say(f"  {verdict(t['pass']):4}  {t['target']}: {t['value']}")
    say("=" * 78)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--durations", type=float, nargs="+", default=[3.0, 60.0], metavar="MIN", help="input lengths in minutes (default: 3 60)")
    ap.add_argument("--model", action="append", metavar="NAME|PATH", help="model name, file or folder (repeatable, as vocalsep -m); default: the installed default, else random checkpoints")
    ap.add_argument("--repeat", type=int, default=1, help="runs per file and model-only repeats (default 1); the median is reported")
    ap.add_argument("--threads", type=int, default=None, help="torch threads, in process and for the CLI (via OMP_NUM_THREADS/MKL_NUM_THREADS); default: torch's own")
    ap.add_argument("--keep", action="store_true", help="keep the separated outputs of the last run under benchmarks/out/")
    ap.add_argument("--json", type=Path, default=OUT / "separate_speed.json", help="where to write the results (default benchmarks/out/separate_speed.json)")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                    help="before each measurement wait up to S seconds for other load on the machine to drop below 0.2 CPUs (default 0: don't wait)")
    ap.add_argument("--fullband", choices=["interpolate", "bandlimited"], default=None,
                    help="pass --fullband to the CLI and use it in process (default: the separator's own default)")
    ap.add_argument("--shifts", type=int, default=None, metavar="N",
                    help="pass --shifts N to the CLI and use it in process (default: the separator's own, 1)")
    ap.add_argument("--wiener", type=int, default=None, metavar="N",
                    help="pass --wiener N to the CLI and use it in process (default: the separator's own)")
    ap.add_argument("--skip-cli", action="store_true", help="skip the end-to-end command-line runs")
    ap.add_argument("--skip-inprocess", action="store_true", help="skip model-only and stage timings")
    args = ap.parse_args(argv)
    if args.repeat < 1 or any(not d > 0 for d in args.durations) or (args.threads is not None and args.threads < 1):
        ap.error("--repeat, --threads and --durations must be positive")
    if not SOURCE.is_file():
        say(f"missing {SOURCE}: set VOCALSEP_DATA to the shared data folder")
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    if args.threads:  # before torch starts its thread pool
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    from vocalsep.audio import load

    logging.basicConfig(level=logging.ERROR, format="vocalsep: %(message)s")
    durations = sorted(dict.fromkeys(args.durations))
    res: dict = {"benchmark": "separate_speed", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(args.threads)}
    say(f"load average {res['machine']['loadavg_at_start']} on {res['machine']['cpu_count']} CPUs")
    cmd0 = vocalsep_command()
    env = child_env(args.threads)

    say("inputs:")
    clip, rate = load(SOURCE)
    if clip.shape[0] != 2 or rate != 44100:
        say(f"  note: {SOURCE.name} is {clip.shape[0]} ch at {rate} Hz, not stereo 44.1 kHz")
    res["source"] = {"path": str(SOURCE), "seconds": clip.shape[1] / rate, "channels": clip.shape[0], "rate": rate}
    res["inputs"] = [build_input(d, clip, rate) for d in durations]
    for item in res["inputs"]:
        say(f"  {Path(item['path']).name}: {item['seconds']:.1f} s{' (cached)' if not item['built'] else ''}")

    model = choose_model(args.model, cmd0)
    res["model"] = model
    say(f"model: {model['note']}")
    res["settings"] = {"repeat": args.repeat, "threads": args.threads, "command": cli_command(cmd0, "FILE", "OUTDIR", model["args"], cli_extra(args)),
                       "fullband": args.fullband or "(the CLI's default)", "shifts": args.shifts or "(the CLI's default, 1)",
                       "wiener": "(the CLI's default)" if args.wiener is None else args.wiener,
                       "wait_idle_s": args.wait_idle, "output": "WAV 16-bit (default)"}

    if not args.skip_inprocess:
        say("in process:")
        sep = load_separator(model["args"], args.threads, args.fullband, args.shifts, args.wiener)
        res["options"] = dataclasses.asdict(sep.options)
        idle_mo = wait_idle(args.wait_idle)
        with own_load() as load_mo:
            res["model_only"] = model_only(sep, clip, rate, args.repeat)
        res["model_only"]["load"] = load_mo
        res["model_only"]["wait_idle"] = idle_mo
        say(f"  model only: {res['model_only']['x_realtime']:.0f}x real time, other load {load_mo.get('other_load', float('nan')):.2f} CPUs")
        short = res["inputs"][0]
        say(f"  stage breakdown on {Path(short['path']).name} ...")
        idle_st = wait_idle(args.wait_idle)
        with own_load() as load_st:
            res["stages"] = stage_breakdown(sep, short["path"], short["seconds"])
        res["stages"]["load"] = load_st
        res["stages"]["wait_idle"] = idle_st
        say(f"    {res['stages']['x_realtime']:.0f}x real time, other load {load_st.get('other_load', float('nan')):.2f} CPUs")
    res["end_to_end"] = []
    if not args.skip_cli:
        say("start-up (import + model load in a child):")
        idle_su = wait_idle(args.wait_idle)
        res["startup"] = su = startup_cost(model["args"], env)
        su["wait_idle"] = idle_su
        su.pop("log_tail", None)
        say(f"  {su['wall_s']:.2f} s, peak RSS {su['peak_rss_mb']:.0f} MB")
        say("end to end (vocalsep separate as a child process):")
        for item in res["inputs"]:
            res["end_to_end"].append(end_to_end(item, model["args"], args, env, cmd0))

    res["machine"]["loadavg_at_end"] = loadavg()
    res["targets"] = targets(res["end_to_end"], res.get("model_only"))
    busy = {}
    if res.get("startup") and "other_load" in res["startup"]:
        busy["start-up"] = res["startup"]["other_load"]
    for r in res["end_to_end"]:
        vals = [x["other_load"] for x in r["runs"] if "other_load" in x]
        if vals:
            busy[f"{r['minutes']:g} min"] = max(vals)
    for key in ("model_only", "stages"):
        if res.get(key) and "other_load" in res[key].get("load", {}):
            busy[key.replace("_", " ")] = res[key]["load"]["other_load"]
    res["busy"] = {k: round(v, 3) for k, v in busy.items()}
    print_report(res)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2, default=str) + "\n")
    say(f"wrote {args.json}")
    return 0 if all(r["ok"] for r in res["end_to_end"]) else 1


if __name__ == "__main__":
    sys.exit(main())
