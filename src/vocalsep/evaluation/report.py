"""Aggregation, tables, figures and the report of an evaluation run.

- Tables like the paper's Tables 2 and 3: per source, each system's mean
  NSDR, SIR and SAR (``v3``; with the duration-weighted GNSDR) or median SDR,
  SIR, ISR, SAR and NSDR (``museval``).
- Tables like Tables 4 and 5: per source, each system's NSDR mean, standard
  deviation (sample, n - 1), minimum, maximum and median over tracks.
- A box plot like Figure 2: NSDR per track, one box per system, one panel per
  source.
- A mask image like Figure 3: on one excerpt, the mixture's spectrogram at the
  preset's resolution and the *effective* vocal mask of two systems,
  ``clip(|V_est| / |X|, 0, 1)`` on that grid (for a model this is its soft
  mask up to the full-band rule; it is defined for any system, including
  other tools' outputs).

Only tracks and systems with status ``scored`` enter a statistic; the counts
of excluded tracks and of undefined or failed system runs are reported next to
it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from ..stems import STEMS
from .io import SCORE_FIELDS, csv_text, json_safe, safe_name, score_rows, write_text
from .metrics import VARIANTS
from .scoring import TrackScorer

MASK_SECONDS_DEFAULT = 10.0


def _stats(values: list[float]) -> dict:
    a = np.asarray(values, np.float64)
    if a.size == 0:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None, "median": None}
    return {"n": int(a.size), "mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else None,
            "min": float(a.min()), "max": float(a.max()), "median": float(np.median(a))}


def summarise(cfg, setup: dict, specs, results: list[dict], failures) -> dict:
    """Statistics per system and source over the scored tracks (see the module doc)."""
    scored = [r for r in results if r["status"] != "excluded"]
    stats: dict = {}
    for spec in specs:
        per_target = {}
        for s in STEMS:
            runs = [(r, r["systems"].get(spec.name)) for r in scored]
            ok = [(r, x) for r, x in runs if x is not None and x["status"] == "scored"]
            entry = {"tracks": len(ok), "undefined": sum(1 for _, x in runs if x is not None and x["status"] == "undefined"),
                     "failed": sum(1 for _, x in runs if x is None or x["status"] == "failed")}
            for m in SCORE_FIELDS:
                vals = [x["targets"][s][m] for _, x in ok if x["targets"][s].get(m) is not None]
                if vals:
                    entry[m] = _stats(vals)
            if ok:
                w = np.array([r["seconds"] for r, _ in ok])
                nsdr = np.array([x["targets"][s]["nsdr"] for _, x in ok])
                entry["gnsdr"] = float(np.sum(w * nsdr) / w.sum())
            per_target[s] = entry
        stats[spec.name] = per_target
    return {
        "setup": setup,
        "variant": VARIANTS[cfg.metric],
        "command": cfg.command,
        "systems": [{"name": s.name, "kind": s.kind, "value": s.value} for s in specs],
        "tracks": {
            "listed": len(results), "scored": len(scored),
            "seconds": float(sum(r["seconds"] for r in scored)),
            "excluded": [{"track": r["track"], "reason": r["reason"]} for r in results if r["status"] == "excluded"],
        },
        "stats": stats,
        "failures": [{"track": t, "system": s, "reason": why} for t, s, why in failures],
    }


# -- Markdown

def _f(x, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def tables_markdown(summary: dict) -> str:
    """The paper-style tables of a summary, as Markdown."""
    metric = summary["setup"]["metric"]
    stats = summary["stats"]
    parts = []
    for s in STEMS:
        if metric == "v3":
            header = ["system", "mean NSDR (dB)", "mean SIR (dB)", "mean SAR (dB)", "GNSDR (dB)", "tracks"]
            rows = [[name, _f(e.get("nsdr", {}).get("mean")), _f(e.get("sir", {}).get("mean")), _f(e.get("sar", {}).get("mean")),
                     _f(e.get("gnsdr")), _count(e)] for name, d in stats.items() for e in [d[s]]]
            title = f"**{s.capitalize()}: mean NSDR, SIR and SAR** (like the paper's Tables 2 and 3)"
        else:
            header = ["system", "median SDR (dB)", "median SIR (dB)", "median ISR (dB)", "median SAR (dB)", "median NSDR (dB)", "tracks"]
            rows = [[name, *(_f(e.get(m, {}).get("median")) for m in ("sdr", "sir", "isr", "sar", "nsdr")), _count(e)]
                    for name, d in stats.items() for e in [d[s]]]
            title = f"**{s.capitalize()}: median over tracks of the per-track median over 1 s windows** (SiSEC style)"
        parts.append(title + "\n\n" + _table(header, rows))
    for s in STEMS:
        header = ["system", "mean", "SD", "min", "max", "median", "tracks"]
        rows = []
        for name, d in stats.items():
            n = d[s].get("nsdr", {})
            rows.append([name, *(_f(n.get(k)) for k in ("mean", "sd", "min", "max", "median")), _count(d[s])])
        parts.append(f"**{s.capitalize()}: NSDR over tracks (dB)** (like the paper's Tables 4 and 5)\n\n" + _table(header, rows))
    return "\n\n".join(parts) + "\n"


def _count(e: dict) -> str:
    extra = [f"{e[k]} {k}" for k in ("undefined", "failed") if e.get(k)]
    return str(e["tracks"]) + (f" ({', '.join(extra)})" if extra else "")


def markdown(summary: dict, figures: dict[str, str], title: str = "Evaluation") -> str:
    """The whole summary as Markdown; ``figures`` maps a caption to a relative image path."""
    setup, tr = summary["setup"], summary["tracks"]
    lines = [f"# {title}", ""]
    if summary.get("command"):
        lines += ["Produced by:", "", "```", summary["command"], "```", ""]
    lines += [
        f"- data: `{setup['data']}` ({setup['dataset']}), evaluated at {setup['rate']} Hz",
        f"- metric: {summary['variant']}",
        f"- tracks: {tr['scored']} scored ({tr['seconds'] / 60:.1f} min), {len(tr['excluded'])} excluded",
        "- systems: " + ", ".join(f"`{s['name']}` ({s['kind']}{': ' + s['value'] if s['value'] else ''})" for s in summary["systems"]),
        "",
        tables_markdown(summary),
    ]
    for caption, path in figures.items():
        lines += [f"**{caption}**", "", f"![{caption}]({path})", ""]
    if tr["excluded"]:
        reasons: dict[str, int] = {}
        for e in tr["excluded"]:
            key = e["reason"].split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
        lines += ["Excluded tracks: " + "; ".join(f"{k}: {v}" for k, v in reasons.items()) + " (each listed in summary.json).", ""]
    if summary["failures"]:
        lines += [f"Failed system runs: {len(summary['failures'])}; the first: {summary['failures'][0]['reason']}", ""]
    t = summary.get("timing")
    if t:
        lines += [
            (f"Time: {t['wall']:.1f} s wall clock with {t['jobs']} process(es); summed over processes: "
             f"loading {t['loading']:.1f} s, separation {t['separation']:.1f} s, scoring {t['scoring']:.1f} s; "
             f"writing track files {t['writing']:.1f} s; tables and figures {t['figures']:.1f} s."),
            "",
        ]
    return "\n".join(lines)


# -- figures

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def boxplot(results: list[dict], systems: list[str], path: Path, metric: str) -> Path:
    """NSDR per track, one box per system, one panel per source (like the paper's Figure 2)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(STEMS), figsize=(4 + 1.1 * len(systems) * len(STEMS), 4.5), sharey=True, squeeze=False)
    for ax, s in zip(axes[0], STEMS):
        data, labels = [], []
        for name in systems:
            vals = [r["systems"][name]["targets"][s]["nsdr"] for r in results
                    if r["status"] != "excluded" and r["systems"].get(name, {}).get("status") == "scored"]
            vals = [v for v in vals if math.isfinite(v)]
            data.append(vals or [np.nan])
            labels.append(f"{name}\n(n={len(vals)})")
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(labels) + 1), labels)
        ax.axhline(0.0, color="0.6", linewidth=0.8, linestyle="--")
        ax.set_title(s.capitalize())
        ax.set_xlabel("system")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("NSDR (dB)")
    variant = "BSS Eval v3 sources" if metric == "v3" else "BSS Eval v4 images, median over 1 s windows"
    fig.suptitle(f"NSDR per track ({variant}); triangle = mean")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    tmp = path.with_name(f".{path.name}.part")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(tmp, dpi=120, format="png")
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C or a full disk: no half-written figure left
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


def mask_figure(cfg, systems: list[str], track: str, path: Path) -> Path:
    """The mixture's spectrogram and two systems' effective vocal masks on one excerpt (like Figure 3)."""
    import dataclasses

    import torch

    from ..config import get_preset
    from ..separator import SeparationOptions, SpectralFrontEnd
    from .systems import EstimatesSystem, parse_systems, ratio_masks

    wanted = [s for s in parse_systems(cfg.systems) if s.name in systems]
    scorer = TrackScorer(dataclasses.replace(cfg, systems=tuple(_spec_text(s) for s in wanted), tracks=(track,), groups=(), limit=None))
    whole = scorer.signals(track)
    n = min(whole[0].shape[-1], int(cfg.excerpt * scorer.rate))
    mixture, refs = whole[0][:, :n], {k: v[:, :n] for k, v in whole[1].items()}
    front = SpectralFrontEnd(get_preset(cfg.preset), SeparationOptions(), torch.device("cpu"))
    mono = mixture.mean(axis=0, keepdims=True).astype(np.float32)
    _, spec = front.analyse(mono, scorer.rate)
    estimates = {}
    for name in systems:
        system = scorer.systems[name]
        if isinstance(system, EstimatesSystem):  # its files hold the whole track: read against the whole track, then cut
            vocals = system.estimate(track, *whole, scorer.rate)["vocals"][:, :n]
        else:
            vocals = system.estimate(track, mixture, refs, scorer.rate)["vocals"]
        estimates[name] = vocals.mean(axis=0, keepdims=True)
    masks = ratio_masks(front, spec, estimates, scorer.rate)
    p = front.preset
    bins = p.bins
    mag = spec[0, :bins].abs().numpy()
    db = 20 * np.log10(mag + 1e-9)
    seconds = mag.shape[1] * p.hop / p.sample_rate
    extent = (0.0, seconds, 0.0, bins * p.sample_rate / p.n_fft)
    plt = _pyplot()
    fig, axes = plt.subplots(1 + len(systems), 1, figsize=(9, 2.6 * (1 + len(systems))), sharex=True, squeeze=False)
    ax = axes[0][0]
    im = ax.imshow(db, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=db.max() - 80, vmax=db.max())
    fig.colorbar(im, ax=ax, label="magnitude (dB)")
    ax.set_title(f"Mixture spectrogram: {track} (first {n / scorer.rate:.1f} s, {p.sample_rate} Hz, STFT {p.n_fft}/{p.hop})")
    for ax, name in zip((a[0] for a in axes[1:]), systems):
        im = ax.imshow(masks[name][0].numpy(), origin="lower", aspect="auto", extent=extent, cmap="viridis", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, label="vocal mask")
        ax.set_title(f"{name}: effective vocal mask clip(|V_est| / |X|, 0, 1)")
    for a in axes[:, 0]:
        a.set_ylabel("frequency (Hz)")
    axes[-1][0].set_xlabel("time (s)")
    fig.tight_layout()
    return _save(fig, path)


def _spec_text(spec) -> str:
    return spec.name if spec.kind in ("mixture", "oracle") else f"{spec.name}={spec.value}"


def _mask_choice(cfg, summary: dict, results: list[dict]) -> tuple[list[str], str | None]:
    names = [s["name"] for s in summary["systems"]]
    if cfg.mask_systems:
        unknown = [n for n in cfg.mask_systems if n not in names]
        if unknown:
            from ..errors import ConfigError

            raise ConfigError(f"mask systems {unknown} are not among the evaluated systems ({', '.join(names)})")
        chosen = list(cfg.mask_systems)
    else:
        chosen = [s["name"] for s in summary["systems"] if s["kind"] != "mixture"][:2]
    if not chosen:
        return [], None
    if cfg.figure_track:
        return chosen, cfg.figure_track
    for r in results:
        if r["status"] != "excluded" and all(r["systems"].get(n, {}).get("status") == "scored" for n in chosen):
            return chosen, r["track"]
    return chosen, None


# -- all outputs

def write_outputs(cfg, out: Path, summary: dict, results: list[dict], timing) -> None:
    """scores.csv, summary.json, summary.md, figures/ and (with ``cfg.report``) the report."""
    import time

    t0 = time.perf_counter()
    names = [s["name"] for s in summary["systems"]]
    rows = [row for r in results for row in score_rows(r, names)]
    write_text(out / "scores.csv", csv_text(rows))
    figures: dict[str, Path] = {}
    if summary["tracks"]["scored"]:
        figures["NSDR per track (like the paper's Figure 2)"] = boxplot(results, names, out / "figures" / "nsdr_boxplot.png", cfg.metric)
    chosen, track = _mask_choice(cfg, summary, results)
    if track is not None:
        path = out / "figures" / f"masks_{safe_name(track)}.png"
        figures[f"Effective vocal masks of {' and '.join(chosen)} on {track} (like the paper's Figure 3)"] = mask_figure(cfg, chosen, track, path)
    timing.figures = time.perf_counter() - t0
    jobs = min(cfg.jobs or os.cpu_count() or 1, max(1, summary["tracks"]["listed"]))
    summary["timing"] = {"wall": timing.wall, "jobs": jobs, "loading": timing.loading, "separation": timing.separation,
                         "scoring": timing.scoring, "writing": timing.writing, "figures": timing.figures,
                         "per_system": timing.per_system}
    summary["figures"] = {k: v.relative_to(out).as_posix() for k, v in figures.items()}
    write_text(out / "summary.json", json.dumps(json_safe(summary), indent=1))
    write_text(out / "summary.md", markdown(summary, summary["figures"]))
    if cfg.report:
        write_report(Path(cfg.report), summary, figures)


def write_report(report: Path, summary: dict, figures: dict[str, Path]) -> Path:
    """The summary as a document at ``report``, its figures copied into a folder beside it
    (``docs/results.md`` -> ``docs/results/``) and linked with relative paths."""
    folder = report.parent / report.stem
    links = {}
    for caption, src in figures.items():
        dst = folder / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        links[caption] = dst.relative_to(report.parent).as_posix()
    return write_text(report, markdown(summary, links, title="Results: " + ", ".join(s["name"] for s in summary["systems"])))
