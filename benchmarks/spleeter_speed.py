#!/usr/bin/env python
"""Speed and memory of ``vocalsep separate --model spleeter:2stems`` beside the official Spleeter CLI (not a test).

What it measures
----------------
1. **3 minutes, side by side**: the whole process, start-up included, of

   - ``vocalsep -q separate FILE -o OUT --force -m spleeter:2stems`` with
     ``--threads`` torch threads (default 2: "on 2 CPU cores"), and
   - the official ``spleeter separate -p spleeter:2stems -o OUT FILE``
     (spleeter 2.4.2, TensorFlow 2.12.1): its timings are read from
     ``--spleeter-timing`` (a JSON file written with ``/usr/bin/time -v``
     by the throwaway environment that made the parity fixture), or
     measured here with ``--run-spleeter CMD`` (the ``spleeter`` command of
     a throwaway Spleeter install),

   on the same file: ``--input``, or by default ``slow-motion-dream.mp3``
   (10.9 s) decoded and looped to exactly 180 s, 16-bit stereo 44.1 kHz,
   built in a temporary folder.  Wall time, CPU time, peak RSS of the child
   (``os.wait4``, through a small launcher so that this process's memory is
   not counted) and the machine's other load (``/proc/stat``).
2. **60 minutes, memory**: vocalsep on the same clip looped to 60 minutes
   (16-bit WAV in a temporary folder), with the child's RSS sampled every
   second: bounded memory means the RSS of the last minutes is that of the
   first.  The official Spleeter is not run on it: its CLI separates only the
   first 600 s unless ``-d`` is raised, and its memory grows with the input
   (the whole waveform, STFT and every 512-frame patch of both networks in
   one TensorFlow batch); the figure printed for it is a linear extrapolation
   of its two measured peaks, and says so.

Writes ``benchmarks/results/spleeter_speed.json`` and prints a table.

Usage::

    python benchmarks/spleeter_speed.py                       # 3 min x3, 60 min x1
    python benchmarks/spleeter_speed.py --repeat 1 --skip-60  # quick
    python benchmarks/spleeter_speed.py --run-spleeter PATH/TO/spleeter-env/bin/spleeter-cli
    python benchmarks/spleeter_speed.py --precision fp32 --json benchmarks/results/spleeter_speed_fp32.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("VOCALSEP_DATA", ROOT.parent / "shared" / "data"))
SOURCE = DATA / "mixtures" / "slow-motion-dream.mp3"
MB = 1e6
TARGET_SPEEDUP = 5.0

_spec = importlib.util.spec_from_file_location("separate_speed", Path(__file__).with_name("separate_speed.py"))
_ss = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ss)  # CpuSampler, loadavg, machine_info, vocalsep_command


def say(msg: str = "") -> None:
    print(msg, flush=True)


# A launcher that starts the command, tells its pid (for RSS sampling) and waits for it with wait4.
_LAUNCHER = """
import json, os, subprocess, sys, time
log = open(sys.argv[1], "wb")
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[3:], stdout=log, stderr=subprocess.STDOUT)
with open(sys.argv[2], "w") as f:
    f.write(str(p.pid))
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
kids = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
                  "maxrss_kib": ru.ru_maxrss, "tree_maxrss_kib": kids.ru_maxrss}))
"""


def _rss_kib(pid: int) -> int | None:
    """Resident memory of ``pid`` and its descendants (KiB), from /proc."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for t in Path(f"/proc/{p}/task").iterdir():
                children = Path(f"/proc/{p}/task/{t.name}/children")
                if children.exists():
                    todo += [int(c) for c in children.read_text().split()]
        except (OSError, ValueError):
            continue
    return total or None


def run(cmd: list[str], env: dict[str, str], log: Path, sample_s: float | None = None, nice: int = 0) -> dict:
    """Run ``cmd`` as a child (at ``nice`` more than this process): wall and CPU time, peak RSS (wait4),
    the machine's other load, and (``sample_s``) the RSS of the child's process tree every ``sample_s`` seconds."""
    sampler = _ss.CpuSampler()
    load_before = _ss.loadavg()
    pid_file = Path(tempfile.mkstemp(prefix="bench-pid-")[1])
    pid_file.write_text("")
    samples: list[tuple[float, float]] = []
    sampler.start()
    t0 = time.perf_counter()
    if nice:  # nice(1) execs the command: the pid, and so wait4's figures, stay the command's
        cmd = ["nice", "-n", str(nice), *cmd]
    launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(log), str(pid_file), *cmd], stdout=subprocess.PIPE, env=env, cwd=ROOT)
    stop = threading.Event()

    def poll():
        pid = None
        while not stop.is_set():
            if pid is None:
                text = pid_file.read_text().strip()
                pid = int(text) if text else None
            if pid is not None:
                rss = _rss_kib(pid)
                if rss:
                    samples.append((round(time.perf_counter() - t0, 2), round(rss * 1024 / MB, 1)))
            stop.wait(sample_s or 1.0)

    thread = threading.Thread(target=poll, daemon=True)
    if sample_s:
        thread.start()
    out, _ = launcher.communicate()
    stop.set()
    if sample_s:
        thread.join()
    outer = time.perf_counter() - t0
    sys_cpu = sampler.stop()
    pid_file.unlink(missing_ok=True)
    ru = json.loads(out)
    cpu = ru["user_s"] + ru["sys_s"]
    r = {"rc": ru["rc"], "wall_s": round(ru["wall_s"], 2), "cpu_s": round(cpu, 2), "user_s": ru["user_s"], "sys_s": ru["sys_s"],
         "peak_rss_mb": round(ru["maxrss_kib"] * 1024 / MB, 1), "load_before": load_before, "load_after": _ss.loadavg()}
    if sys_cpu is not None and outer > 0:
        r["other_load"] = round(max(0.0, sys_cpu["busy_cpu_s"] - cpu) / outer, 2)
    if samples:
        r["rss_samples_mb"] = samples
    r["log_tail"] = log.read_text(errors="replace")[-1500:] if log.exists() else ""
    return r


def build_loop(path: Path, seconds: float) -> Path:
    """``slow-motion-dream.mp3`` decoded and looped to ``seconds``, 16-bit stereo WAV, written block by block."""
    import soundfile as sf

    from vocalsep.audio import load

    clip, rate = load(SOURCE)
    want = round(seconds * rate)
    block = np.tile(clip, (1, 8))
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=clip.shape[0], subtype="PCM_16") as f:
        done = 0
        while done < want:
            n = min(block.shape[1], want - done)
            f.write(np.clip(block[:, :n], -1, 1).T)
            done += n
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, default=None, help="the 3-minute WAV file both tools separate (default: the shared song looped to 180 s, built in a temporary folder)")
    ap.add_argument("--model", default="spleeter:2stems", help="vocalsep model (default spleeter:2stems)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the vocalsep child (default 2)")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="vocalsep's --precision (default auto, the spleeter preset's own)")
    ap.add_argument("--repeat", type=int, default=3, help="runs on the 3-minute file (median reported)")
    ap.add_argument("--spleeter-timing", type=Path, default=None, help="earlier timings of the official Spleeter (JSON) to compare with, instead of --run-spleeter")
    ap.add_argument("--run-spleeter", metavar="CMD", default=None, help="also time this Spleeter CLI on the 3-minute file (e.g. spleeter-cli)")
    ap.add_argument("--skip-60", action="store_true", help="skip the 60-minute memory run")
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the long run (default 60)")
    ap.add_argument("--nice-long", type=int, default=0, metavar="N", help="run the long (memory) run N nice levels lower (its time is not compared)")
    ap.add_argument("--omp-wait-policy", choices=["ACTIVE", "PASSIVE"], default=None,
                    help="OMP_WAIT_POLICY of the vocalsep child (default: unset, OpenMP's own: threads spin while waiting, "
                    "which costs CPU time when other jobs share the cores)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "spleeter_speed.json")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="vocalsep-spleeter-bench-"))
    env = dict(os.environ)
    env.pop("VOCALSEP_PROGRESS", None)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    env.pop("OMP_WAIT_POLICY", None)
    if args.omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    res: dict = {"benchmark": "spleeter_speed", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": _ss.machine_info(args.threads),
                 "nice": os.nice(0), "model": args.model, "threads": args.threads, "precision": args.precision, "omp_wait_policy": args.omp_wait_policy}
    cmd0 = _ss.vocalsep_command()
    try:
        # the model is converted into the cache before timing (a one-time cost, not part of a run)
        subprocess.run(cmd0 + ["info", args.model], env=env, capture_output=True, check=True)
        short = args.input
        if short is None or not short.is_file():
            say(f"{short or 'no --input'}: building the 3-minute loop in {tmp}")
            short = build_loop(tmp / "bench-3min.wav", 180.0)
        import soundfile as sf

        info = sf.info(str(short))
        res["input_3min"] = {"path": str(short), "seconds": info.frames / info.samplerate, "format": f"{info.format} {info.subtype}"}
        say(f"3-minute file: {short} ({info.frames / info.samplerate:.1f} s); vocalsep, {args.threads} threads, nice {res['nice']}, "
            f"OMP_WAIT_POLICY {args.omp_wait_policy or '(unset)'}")
        runs = []
        for i in range(args.repeat):
            out = tmp / "out3"
            cmd = cmd0 + ["-q", "separate", str(short), "-o", str(out), "--force", "-m", args.model, "--threads", str(args.threads), "--precision", args.precision]
            r = run(cmd, env, tmp / "vocalsep-3min.log")
            ok = r["rc"] == 0 and all((out / short.stem / f"{s}.wav").is_file() for s in ("vocals", "accompaniment"))
            r["ok"] = ok
            say(f"  run {i + 1}: rc {r['rc']}, {r['wall_s']:.2f} s wall, {r['cpu_s']:.1f} s CPU, peak RSS {r['peak_rss_mb']:.0f} MB, other load {r.get('other_load')}")
            if not ok:
                say(r["log_tail"])
            r.pop("log_tail")
            shutil.rmtree(out, ignore_errors=True)
            runs.append(r)
        walls = [r["wall_s"] for r in runs]
        res["vocalsep_3min"] = {"runs": runs, "median_wall_s": statistics.median(walls), "min_wall_s": min(walls),
                                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
                                "command": " ".join(["vocalsep", "-q", "separate", "FILE", "-o", "OUT", "--force", "-m", args.model, "--threads", str(args.threads), "--precision", args.precision])}

        spl = None
        if args.run_spleeter:
            sruns = []
            for i in range(args.repeat):
                out = tmp / "spl"
                r = run([args.run_spleeter, "separate", "-p", "spleeter:2stems", "-o", str(out), str(short)], dict(os.environ), tmp / "spleeter.log")
                r.pop("log_tail")
                say(f"  spleeter run {i + 1}: rc {r['rc']}, {r['wall_s']:.2f} s wall, peak RSS {r['peak_rss_mb']:.0f} MB")
                shutil.rmtree(out, ignore_errors=True)
                sruns.append(r)
            spl = {"source": f"measured here: {args.run_spleeter}", "median_wall_s": statistics.median(r["wall_s"] for r in sruns),
                   "min_wall_s": min(r["wall_s"] for r in sruns), "peak_rss_mb": max(r["peak_rss_mb"] for r in sruns), "runs": sruns}
        elif args.spleeter_timing is not None and args.spleeter_timing.is_file():
            t = json.loads(args.spleeter_timing.read_text())
            runs_s = t["runs"]["bench-3min"]
            walls_s = [r["wall_s"] for r in runs_s]
            spl = {"source": f"{args.spleeter_timing} ({t.get('command')}; {t.get('priority', '')})", "median_wall_s": statistics.median(walls_s),
                   "min_wall_s": min(walls_s), "peak_rss_mb": max(r["max_rss_kb"] * 1024 / MB for r in runs_s),
                   "cpu_s": statistics.median(r["user_s"] + r["sys_s"] for r in runs_s),
                   "other_load": [r.get("other_processes_mean_cores") for r in runs_s], "versions": t.get("versions"),
                   "short_file_rss_mb": max(r["max_rss_kb"] * 1024 / MB for r in t["runs"].get("slow-motion-dream-whole", [])) if t["runs"].get("slow-motion-dream-whole") else None}
        res["spleeter_3min"] = spl

        if not args.skip_60:
            long = build_loop(tmp / f"loop-{args.minutes:g}min.wav", args.minutes * 60)
            out = tmp / "out60"
            say(f"{args.minutes:g}-minute file: {long} ({long.stat().st_size / 1e6:.0f} MB); vocalsep, RSS sampled every second ...")
            cmd = cmd0 + ["-q", "separate", str(long), "-o", str(out), "--force", "-m", args.model, "--threads", str(args.threads), "--precision", args.precision]
            r = run(cmd, env, tmp / "vocalsep-60min.log", sample_s=1.0, nice=args.nice_long)
            r["nice"] = res["nice"] + args.nice_long
            frames = {s: sf.info(str(out / long.stem / f"{s}.wav")).frames for s in ("vocals", "accompaniment") if (out / long.stem / f"{s}.wav").is_file()}
            r["ok"] = r["rc"] == 0 and len(frames) == 2 and set(frames.values()) == {sf.info(str(long)).frames}
            r["output_frames"] = frames
            if not r["ok"]:
                say(r["log_tail"])
            r.pop("log_tail")
            s = r.get("rss_samples_mb", [])
            if s:
                n = max(1, len(s) // 12)
                r["rss_first_twelfth_max_mb"] = max(v for _, v in s[:n])
                r["rss_last_twelfth_max_mb"] = max(v for _, v in s[-n:])
            res["vocalsep_long"] = {"minutes": args.minutes, **r}
            say(f"  rc {r['rc']}, {r['wall_s']:.1f} s wall, peak RSS {r['peak_rss_mb']:.0f} MB"
                + (f" (RSS max in the first twelfth {r['rss_first_twelfth_max_mb']:.0f} MB, last twelfth {r['rss_last_twelfth_max_mb']:.0f} MB)" if s else ""))
            shutil.rmtree(out, ignore_errors=True)
            long.unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # -- report
    v = res["vocalsep_3min"]
    audio = res["input_3min"]["seconds"]
    say()
    say("=" * 100)
    m = res["machine"]
    say(f"machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']}; load average at start {m['loadavg_at_start']}")
    say(f"{'system':<44} {'file':>7} {'wall s (median)':>15} {'best':>7} {'x RT':>6} {'CPU s':>7} {'peak RSS MB':>11} {'other load':>11}")
    other_v = statistics.median(r.get("other_load", float("nan")) for r in v["runs"])
    say(f"{'vocalsep ' + args.model + f' ({args.threads} threads, {args.precision}' + (f', {args.omp_wait_policy}' if args.omp_wait_policy else '') + ')':<44} {'3 min':>7} {v['median_wall_s']:15.2f} {v['min_wall_s']:7.2f} "
        f"{audio / v['median_wall_s']:6.1f} {v['median_cpu_s']:7.1f} {v['peak_rss_mb']:11.0f} {other_v:11.2f}")
    if spl:
        other_s = statistics.median(x for x in spl.get("other_load", [float("nan")]) if x is not None) if spl.get("other_load") else float("nan")
        say(f"{'official Spleeter 2.4.2 CLI (TF 2.12.1)':<44} {'3 min':>7} {spl['median_wall_s']:15.2f} {spl['min_wall_s']:7.2f} "
            f"{audio / spl['median_wall_s']:6.1f} {spl.get('cpu_s', float('nan')):7.1f} {spl['peak_rss_mb']:11.0f} {other_s:11.2f}")
        speed_med = spl["median_wall_s"] / v["median_wall_s"]
        speed_best = spl["min_wall_s"] / v["min_wall_s"]
        res["speedup"] = {"median": round(speed_med, 2), "best": round(speed_best, 2), "target": TARGET_SPEEDUP,
                          "pass": speed_med >= TARGET_SPEEDUP}
        say(f"speed-up, whole process on the 3-minute file: {speed_med:.1f}x (medians), {speed_best:.1f}x (best runs); "
            f"target >= {TARGET_SPEEDUP:g}x: {'PASS' if speed_med >= TARGET_SPEEDUP else 'FAIL'}")
    lg = res.get("vocalsep_long")
    if lg:
        say(f"{'vocalsep ' + args.model:<44} {lg['minutes']:>5g} m {lg['wall_s']:15.2f} {'-':>7} {lg['minutes'] * 60 / lg['wall_s']:6.1f} "
            f"{lg['cpu_s']:7.1f} {lg['peak_rss_mb']:11.0f} {lg.get('other_load', float('nan')):11.2f}")
        bounded = lg["ok"] and lg["peak_rss_mb"] <= 1.5 * v["peak_rss_mb"]
        res["memory_bounded"] = {"peak_60_over_3": round(lg["peak_rss_mb"] / v["peak_rss_mb"], 2), "pass": bounded}
        say(f"memory bounded: peak RSS {lg['minutes']:g} min / 3 min = {lg['peak_rss_mb'] / v['peak_rss_mb']:.2f} (<= 1.5: {'PASS' if bounded else 'FAIL'})")
        if spl and spl.get("short_file_rss_mb"):
            slope = (spl["peak_rss_mb"] - spl["short_file_rss_mb"]) / (180.0 - 10.88)
            est600 = spl["peak_rss_mb"] + slope * (600 - 180)
            est_long = spl["peak_rss_mb"] + slope * (lg["minutes"] * 60 - 180)
            res["spleeter_long_estimate"] = {"rss_mb_per_audio_s": round(slope, 1), "rss_600s_mb": round(est600), "rss_long_mb": round(est_long),
                                             "note": "linear extrapolation of the two measured peaks (10.9 s and 180 s); not measured"}
            say(f"official Spleeter, not run on {lg['minutes']:g} min: its CLI stops at 600 s unless -d is raised; its peak RSS grows "
                f"~{slope:.0f} MB per second of audio (measured 10.9 s and 180 s), i.e. ~{est600 / 1000:.0f} GB at 600 s and "
                f"~{est_long / 1000:.0f} GB at {lg['minutes']:g} min (extrapolated)")
    say("=" * 100)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2, default=str) + "\n")
    say(f"wrote {args.json}")
    ok = all(r["ok"] for r in v["runs"]) and (not lg or lg["ok"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
