#!/usr/bin/env python
"""Peak memory of ``vocalsep web`` separating 3-minute songs with 2 workers (not a test).

The shared song (``slow-motion-dream.mp3``, 10.9 s, from ``../shared/data`` or ``$VOCALSEP_DATA``)
is looped to ``--minutes`` and encoded to MP3 in a temporary folder.  The real command,
``vocalsep web --workers N --data TMP --port 0``, runs in a process of its own with the installed
default model (or ``--model``); once its workers have loaded their models and its memory is
steady, ``--songs`` copies of the file are uploaded at the same moment over HTTP, and the script
waits until every job is done.  The server's resident memory (``VmRSS`` of ``/proc/PID/status``)
is sampled every 50 ms, and its peak (``VmHWM``: the kernel's own high-water mark, so no peak
between two samples is missed) is read before the uploads and after the jobs.

Prints a table and writes JSON to the path given.  The issue's target: a peak below 1.5 GB
(1.5 x 10^9 bytes).

Usage::

    python benchmarks/web_memory.py benchmarks/out/web_memory.json
    python benchmarks/web_memory.py out.json --songs 6 --workers 2 --minutes 3 --model fine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("VOCALSEP_DATA", ROOT.parent / "shared" / "data"))
SOURCE = DATA / "mixtures" / "slow-motion-dream.mp3"
MB = 1e6
TARGET_PEAK_MB = 1500.0


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024 / MB
    return out


def looped_mp3(path: Path, minutes: float) -> float:
    """The shared song looped to ``minutes``, encoded to MP3 at ``path``; returns its length in seconds."""
    import numpy as np

    from vocalsep.audio import AudioWriter, load

    clip, rate = load(SOURCE)
    want = int(round(minutes * 60 * rate))
    block = np.tile(clip, (1, 4))
    written = 0
    with AudioWriter(path, rate, clip.shape[0], fmt="mp3") as w:
        while written < want:
            n = min(block.shape[1], want - written)
            w.write(block[:, :n])
            written += n
    return written / rate


def start_server(data: Path, workers: int, model: str | None) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "vocalsep", "web", "--data", str(data), "--port", "0", "--workers", str(workers), "--max-queue", "100"]
    if model:
        cmd += ["--model", model]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        say("  server: " + line.rstrip())
        if "vocalsep: open " in line:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # keep the pipe drained
            return proc, line.split("vocalsep: open ", 1)[1].strip()
    raise SystemExit(f"the server did not start (exit code {proc.wait()})")


def upload(url: str, path: Path) -> str:
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: audio/mpeg\r\n\r\n").encode()
    body = head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "api/jobs", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())["id"]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", metavar="OUT.json", help="where the results go")
    parser.add_argument("--songs", type=int, default=4, help="songs uploaded at once (default: 4, two per worker)")
    parser.add_argument("--workers", type=int, default=2, help="the server's --workers (default: 2)")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of each song (default: 3)")
    parser.add_argument("--model", default=None, help="the server's --model (default: the installed default model)")
    args = parser.parse_args()
    if not SOURCE.is_file():
        raise SystemExit(f"{SOURCE} is missing: set VOCALSEP_DATA or put the shared data at ../shared/data")

    with tempfile.TemporaryDirectory(prefix="vocalsep-web-memory-") as tmp:
        tmp = Path(tmp)
        song = tmp / f"loop-{args.minutes:g}min.mp3"
        seconds = looped_mp3(song, args.minutes)
        size = song.stat().st_size
        say(f"input: {song.name}, {seconds:.0f} s, {size / MB:.1f} MB")
        proc, url = start_server(tmp / "data", args.workers, args.model)
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        t0 = time.perf_counter()

        def sample() -> None:
            while not stop.is_set():
                try:
                    samples.append((time.perf_counter() - t0, memory(proc.pid)["VmRSS"]))
                except (OSError, KeyError):
                    return
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()
        try:
            # the workers load their models in the background: wait until the memory is steady for 2 s
            steady = time.perf_counter()
            last = memory(proc.pid)["VmRSS"]
            while time.perf_counter() - steady < 2.0 and time.perf_counter() - t0 < 120:
                time.sleep(0.2)
                now = memory(proc.pid)["VmRSS"]
                if abs(now - last) > 2.0:
                    steady = time.perf_counter()
                last = now
            idle = memory(proc.pid)
            say(f"idle with the models loaded: RSS {idle['VmRSS']:.0f} MB, peak so far {idle['VmHWM']:.0f} MB")
            start = time.perf_counter()
            ids: list[str] = []
            threads = [threading.Thread(target=lambda: ids.append(upload(url, song))) for _ in range(args.songs)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            uploaded = time.perf_counter() - start
            while True:
                jobs = [get(url + f"api/jobs/{i}") for i in ids]
                if all(j["status"] in ("done", "failed") for j in jobs):
                    break
                time.sleep(0.2)
            wall = time.perf_counter() - start
            after = memory(proc.pid)
        finally:
            stop.set()
            proc.terminate()
            proc.wait(timeout=60)

    failed = [j for j in jobs if j["status"] != "done"]
    peak = after["VmHWM"]
    sampled_peak = max(v for _, v in samples)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": f"vocalsep web --workers {args.workers}" + (f" --model {args.model}" if args.model else ""),
        "songs": args.songs, "song_seconds": round(seconds, 2), "song_mb": round(size / MB, 2),
        "workers": args.workers,
        "idle_rss_mb": round(idle["VmRSS"], 1), "peak_rss_mb": round(peak, 1), "sampled_peak_rss_mb": round(sampled_peak, 1),
        "rss_after_mb": round(after["VmRSS"], 1),
        "upload_s": round(uploaded, 2), "wall_s": round(wall, 2), "x_real_time": round(args.songs * seconds / wall, 1),
        "failed": [j["error"] for j in failed],
        "target_peak_mb": TARGET_PEAK_MB, "pass": peak < TARGET_PEAK_MB and not failed,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg": [round(v, 2) for v in os.getloadavg()]},
        "rss_timeline": [[round(t, 2), round(v, 1)] for t, v in samples[::4]],
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"| songs | length | workers | idle RSS | peak RSS | wall | x real time | target < {TARGET_PEAK_MB:.0f} MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print(f"| {args.songs} | {seconds / 60:.1f} min | {args.workers} | {idle['VmRSS']:.0f} MB | {peak:.0f} MB | {wall:.1f} s | "
          f"{result['x_real_time']:.1f}x | {'PASS' if result['pass'] else 'FAIL'} |")
    if failed:
        print(f"{len(failed)} job(s) failed: {failed[0]['error']}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
