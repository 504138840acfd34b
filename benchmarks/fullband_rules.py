#!/usr/bin/env python
"""Compare the rules that turn low-rate (8192 Hz) masks into full-band stems, with ideal masks.

The model of Jansson et al. (2017) sees the mixture at the preset's rate (8192
Hz for ``jansson2017``) and predicts soft masks on the lowest ``preset.bins``
bins of a 1024/768 STFT (0..4088 Hz).  Full-rate stems are then formed by one
of the documented rules of :class:`vocalsep.separator.SpectralFrontEnd`
(``fullband`` = ``"bandlimited"`` or ``"interpolate"``, with a ``high_band``
rule for the bins above the model and, for ``"interpolate"``, the full-rate
STFT size).  This script measures how much each rule can deliver at best, by
feeding the front end the IDEAL masks of the paper's set-up instead of a
network's masks:

    mask_t = clip(|Y_t| / |X|, 0, 1)  on the lowest ``preset.bins`` bins

with ``X`` the mixture's and ``Y_t`` the true stem's low-rate STFT (0/0 -> 0);
that is the minimiser of the paper's L1 loss ``|mask * |X| - |Y_t||`` over masks
in [0, 1].  Every channel is masked on its own.

Each rule then synthesises full-rate stems of the WHOLE clip (no
segmentation).  They are scored with BSS Eval v3
(``mir_eval.separation.bss_eval_sources``, references = true vocals and
accompaniment) channel by channel as mono signals; NSDR = SDR(estimate) -
SDR(mixture as the estimate).

Datasets (from ``--data``, default ``$VOCALSEP_DATA`` or ``../shared/data``
next to the repository):

- ``mir1k``: the clips of the singers given by ``--singers`` (voice-active
  clips only, from the ``vocal-nonvocal`` labels), mixed to mono as in the
  paper (accompaniment + voice at 0 dB), 16 kHz;
- ``musdb``: the 44.1 kHz stereo excerpt of MUSDB18 in ``musdb-sample``,
  separated in stereo, each channel scored as mono and averaged.

The ``interpolate`` rule is run on each full-rate STFT of ``--grids``; the
grid ``matched`` is the preset's own STFT scaled to the input's rate (2000/1500
at 16 kHz, 5512/4134 at 44.1 kHz: the same seconds per window, hop and bin as
the model).  It is not a single ``SeparationOptions`` setting (it depends on
the input's rate), so it is reported but never picked as "best".

Besides the rules themselves, the table has extra rows: the "naive"
reconstruction written out independently (8192 Hz estimate, resampled up; it
must equal ``bandlimited`` + ``zero``, and the JSON records the largest sample
difference), and, for the best ``interpolate`` configuration, the
mixture-consistent accompaniment ``mixture - vocals`` (a second table gives it
for every rule).  A last reference row, the ideal mask computed directly on the
full-rate STFT, shows what a full-rate model could reach; it is not a rule.

Rules are ranked by the mean over datasets of the mean vocal and accompaniment
SDR.

Run from the repository root::

    python benchmarks/fullband_rules.py            # table + JSON
    python benchmarks/fullband_rules.py --clips 5  # quick check
"""

from __future__ import annotations

import os

# The benchmark runs on a shared machine: one BLAS/OpenMP thread (set before numpy loads).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Iterable, Iterator, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vocalsep.audio import load, resample  # noqa: E402
from vocalsep.config import Preset, get_preset  # noqa: E402
from vocalsep.separator import HIGH_BAND_RULES, STEMS, SeparationOptions, SpectralFrontEnd  # noqa: E402
from vocalsep.spectral import STFT  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "out" / "fullband_rules.json"
DEFAULT_SINGERS = ("abjones", "tammy")
DEFAULT_GRIDS = ((1024, 256), (2048, 512), (4096, 1024), "matched")
MATCHED = "matched"  # the model's own STFT scaled to the input rate: same seconds per window, hop and bin
MUSDB_TRACK = "Music Delta - 80s Rock"
DATASETS = ("mir1k", "musdb")
NAIVE = "naive"
COMPLEMENT = "complement"
ORACLE = "oracle"


# --------------------------------------------------------------------- data
@dataclass
class Clip:
    """One evaluation item: the mixture and its true stems, ``(channels, samples)`` float32 at ``sample_rate``."""

    name: str
    dataset: str
    sample_rate: int
    mixture: np.ndarray
    stems: dict[str, np.ndarray]  # {"vocals": ..., "accompaniment": ...}


def default_data_dir() -> Path:
    env = os.environ.get("VOCALSEP_DATA")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


def voiced_frames(label_file: Path) -> int:
    """Number of voice-present frames in a MIR-1K ``.vocal`` file (one 0/1 label per 20 ms frame)."""
    return sum(1 for line in label_file.read_text().split("\n") if line.strip() and int(float(line.split()[0])) > 0)


def mir1k_files(data: Path, singers: Sequence[str], max_clips: int | None, min_voiced: int) -> list[Path]:
    """The MIR-1K clips of ``singers`` (sorted by name) with at least ``min_voiced`` voiced frames."""
    audio_dir, labels_dir = data / "mir1k" / "audio", data / "mir1k" / "vocal-nonvocal"
    files = []
    for path in sorted(audio_dir.glob("*.flac")):
        singer = path.stem.split("_")[0]
        if singer.lower() not in {s.lower() for s in singers}:
            continue
        label = labels_dir / f"{path.stem}.vocal"
        if not label.exists():
            raise SystemExit(f"error: no vocal/non-vocal label {label} for {path.name}")
        if voiced_frames(label) >= min_voiced:
            files.append(path)
    return files[:max_clips] if max_clips else files


def load_mir1k_clip(path: Path) -> Clip:
    """MIR-1K stereo file (left = accompaniment, right = voice) -> mono mixture at 0 dB, as in the paper."""
    audio, sr = load(path)
    if audio.shape[0] != 2:
        raise SystemExit(f"error: {path} has {audio.shape[0]} channel(s); MIR-1K clips are stereo")
    acc, voice = audio[0:1], audio[1:2]
    return Clip(path.stem, "mir1k", sr, acc + voice, {"vocals": voice, "accompaniment": acc})


def load_musdb_clip(data: Path) -> Clip:
    folder = data / "musdb-sample" / MUSDB_TRACK
    mix, sr = load(folder / "mixture.flac")
    stems = {}
    for target in STEMS:
        y, sr_t = load(folder / f"{target}.flac")
        if sr_t != sr or y.shape != mix.shape:
            raise SystemExit(f"error: {folder}/{target}.flac does not match the mixture's rate/shape")
        stems[target] = y
    return Clip(MUSDB_TRACK, "musdb", sr, mix, stems)


def check_data(data: Path, datasets: Sequence[str]) -> None:
    """Exit with a clear message when a requested dataset is absent."""
    need = {
        "mir1k": [data / "mir1k" / "audio", data / "mir1k" / "vocal-nonvocal"],
        "musdb": [data / "musdb-sample" / MUSDB_TRACK / f"{n}.flac" for n in ("mixture", *STEMS)],
    }
    missing = [str(p) for d in datasets for p in need[d] if not p.exists()]
    if missing:
        raise SystemExit(
            "error: benchmark data not found:\n  " + "\n  ".join(missing)
            + "\nGive the shared data folder with --data or $VOCALSEP_DATA (see its README.md), "
            "or pick other datasets with --datasets."
        )


# -------------------------------------------------------------- ideal masks
def ideal_mask(mixture_spec: torch.Tensor, stem_spec: torch.Tensor, bins: int | None = None) -> torch.Tensor:
    """``clip(|Y| / |X|, 0, 1)`` on the lowest ``bins`` bins (all if None); 0 where ``|X| == 0``."""
    x = mixture_spec[..., :bins, :].abs() if bins else mixture_spec.abs()
    y = stem_spec[..., :bins, :].abs() if bins else stem_spec.abs()
    safe = torch.where(x > 0, x, torch.ones_like(x))
    return torch.where(x > 0, (y / safe).clamp(0.0, 1.0), torch.zeros_like(x))


def ideal_low_rate_masks(clip: Clip, preset: Preset) -> dict[str, torch.Tensor]:
    """The ideal masks ``{target: (channels, bins, frames)}`` at the preset's rate and STFT."""
    stft = STFT(preset.n_fft, preset.hop)

    def spec(y: np.ndarray) -> torch.Tensor:
        return stft.forward(torch.from_numpy(resample(y, clip.sample_rate, preset.sample_rate)))

    mix = spec(clip.mixture)
    return {t: ideal_mask(mix, spec(y), preset.bins) for t, y in clip.stems.items()}


# ---------------------------------------------------------------- the rules
@dataclass(frozen=True)
class Rule:
    """A named way of forming full-band stems; ``options`` is None for the extra rows."""

    name: str
    kind: str  # "front-end", "naive" or "oracle"
    options: SeparationOptions | None = None
    n_fft: int | None = None  # for "oracle"
    hop: int | None = None
    matched: bool = False  # interpolate onto the model's STFT scaled to the input rate (resolved per clip)

    def describe(self) -> dict:
        d = {"name": self.name, "kind": self.kind}
        if self.options is not None:
            o = self.options
            d["options"] = {"fullband": o.fullband, "high_band": o.high_band, "edge_hz": o.edge_hz}
            if o.fullband == "interpolate":
                grid = MATCHED if self.matched else {"fullband_n_fft": o.fullband_n_fft, "fullband_hop": o.fullband_hop}
                d["options"]["grid"] = grid
        if self.n_fft is not None:
            d.update(n_fft=self.n_fft, hop=self.hop)
        return d


def rule_name(options: SeparationOptions, matched: bool = False) -> str:
    if options.fullband == "bandlimited":
        return f"bandlimited high={options.high_band}"
    grid = MATCHED if matched else f"{options.fullband_n_fft}/{options.fullband_hop}"
    return f"interpolate {grid} high={options.high_band}"


def matched_grid(preset: Preset, sample_rate: int) -> tuple[int, int]:
    """The preset's STFT scaled to ``sample_rate`` (exact when the ratio allows, e.g. 2000/1500 at 16 kHz)."""
    scale = sample_rate / preset.sample_rate
    n_fft = int(round(preset.n_fft * scale))
    return n_fft, min(n_fft, max(1, int(round(preset.hop * scale))))


def make_rules(preset: Preset, grids: Iterable[tuple[int, int] | str], high_bands: Sequence[str], edge_hz: float,
               oracle_grid: tuple[int, int] | str) -> list[Rule]:
    """The naive row, ``bandlimited`` and ``interpolate`` x ``high_bands`` (x ``grids``), and the full-rate oracle."""
    rules = [Rule(f"{NAIVE}: {preset.sample_rate} Hz estimate resampled up", NAIVE)]
    for high in high_bands:
        o = SeparationOptions(fullband="bandlimited", high_band=high, edge_hz=edge_hz)
        rules.append(Rule(rule_name(o), "front-end", o))
    for grid in grids:
        matched = grid == MATCHED
        n_fft, hop = (SeparationOptions().fullband_n_fft, SeparationOptions().fullband_hop) if matched else grid
        for high in high_bands:
            o = SeparationOptions(fullband="interpolate", fullband_n_fft=n_fft, fullband_hop=hop, high_band=high, edge_hz=edge_hz)
            rules.append(Rule(rule_name(o, matched), "front-end", o, matched=matched))
    if oracle_grid == MATCHED:
        rules.append(Rule(f"{ORACLE}: ideal mask at the full rate, STFT {MATCHED} (reference)", ORACLE, matched=True))
    else:
        rules.append(Rule(f"{ORACLE}: ideal mask at the full rate, STFT {oracle_grid[0]}/{oracle_grid[1]} (reference)", ORACLE, n_fft=oracle_grid[0], hop=oracle_grid[1]))
    return rules


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return x[..., :n] if x.shape[-1] >= n else np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])


def naive_stems(clip: Clip, preset: Preset, masks: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The paper's output written out by hand: mask x mixture at 8192 Hz, inverse STFT, resampled up.

    The top (Nyquist) bin(s) the model does not see get mask 0.
    """
    stft = STFT(preset.n_fft, preset.hop)
    low = resample(clip.mixture, clip.sample_rate, preset.sample_rate)
    spec = stft.forward(torch.from_numpy(low))
    out = {}
    for target, mask in masks.items():
        full_mask = torch.nn.functional.pad(mask, (0, 0, 0, spec.shape[-2] - mask.shape[-2]))
        est_low = stft.inverse(spec * full_mask, low.shape[-1]).numpy()
        out[target] = _fit(resample(est_low, preset.sample_rate, clip.sample_rate), clip.mixture.shape[-1])
    return out


def oracle_stems(clip: Clip, n_fft: int, hop: int) -> dict[str, np.ndarray]:
    """Ideal masks computed on the full-rate STFT itself (what a full-band model could reach)."""
    stft = STFT(n_fft, hop)
    n = clip.mixture.shape[-1]
    mix = stft.forward(torch.from_numpy(clip.mixture))
    return {t: stft.inverse(mix * ideal_mask(mix, stft.forward(torch.from_numpy(y))), n).numpy() for t, y in clip.stems.items()}


def front_end_stems(clip: Clip, preset: Preset, options: SeparationOptions, masks: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Full-rate stems from low-rate masks by the front end's rule, on the whole clip."""
    front = SpectralFrontEnd(preset, options, torch.device("cpu"))
    x = np.ascontiguousarray(clip.mixture, dtype=np.float32)
    low, spec = front.analyse(x, clip.sample_rate)
    return front.synthesise(x, clip.sample_rate, low, spec, masks)


def rule_stems(rule: Rule, clip: Clip, preset: Preset, masks: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    if rule.kind == NAIVE:
        return naive_stems(clip, preset, masks)
    if rule.kind == ORACLE:
        return oracle_stems(clip, *(matched_grid(preset, clip.sample_rate) if rule.matched else (rule.n_fft, rule.hop)))
    options = rule.options
    if rule.matched:
        n_fft, hop = matched_grid(preset, clip.sample_rate)
        options = replace(options, fullband_n_fft=n_fft, fullband_hop=hop)
    return front_end_stems(clip, preset, options, masks)


# ------------------------------------------------------------------ scoring
def sdr(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """BSS Eval v3 SDR of each mono estimate ``(sources, n)`` against ``references`` (same order, no permutation)."""
    from mir_eval.separation import bss_eval_sources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # bss_eval_sources is deprecated in mir_eval 0.8
        return bss_eval_sources(references.astype(np.float64), estimates.astype(np.float64), compute_permutation=False)[0]


def snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Plain signal-to-error ratio in dB: no allowed distortion, so a missing band counts in full."""
    err = float(np.sum((reference.astype(np.float64) - estimate) ** 2))
    return math.inf if err == 0 else 10.0 * math.log10(float(np.sum(reference.astype(np.float64) ** 2)) / err)


def score_stems(clip: Clip, stems: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """``{"sdr": {stem: dB}, "snr": {stem: dB}}``, each the mean over channels of the per-channel (mono) score.

    ``stems`` has the targets and optionally ``"complement"`` (mixture - vocals), scored as accompaniment.
    """
    refs = np.stack([clip.stems[t] for t in STEMS], axis=1)  # (channels, sources, n)
    est = np.stack([stems[t] for t in STEMS], axis=1)
    sdrs: dict[str, list[float]] = {}
    snrs: dict[str, list[float]] = {}
    for c in range(refs.shape[0]):
        for t, v in zip(STEMS, sdr(refs[c], est[c])):
            sdrs.setdefault(t, []).append(float(v))
            snrs.setdefault(t, []).append(snr(clip.stems[t][c], stems[t][c]))
        if COMPLEMENT in stems:
            comp = np.stack([stems["vocals"][c], stems[COMPLEMENT][c]])
            sdrs.setdefault(COMPLEMENT, []).append(float(sdr(refs[c], comp)[1]))
            snrs.setdefault(COMPLEMENT, []).append(snr(clip.stems["accompaniment"][c], stems[COMPLEMENT][c]))
    return {"sdr": {k: float(np.mean(v)) for k, v in sdrs.items()}, "snr": {k: float(np.mean(v)) for k, v in snrs.items()}}


def evaluate_clip(clip: Clip, preset: Preset, rules: Sequence[Rule]) -> dict:
    """Scores of the mixture (as the estimate) and of every rule's stems for one clip."""
    masks = ideal_low_rate_masks(clip, preset)
    mixture_as_estimate = {t: clip.mixture for t in STEMS}
    result = {"clip": clip.name, "seconds": clip.mixture.shape[-1] / clip.sample_rate, "mixture": score_stems(clip, mixture_as_estimate), "rules": {}}
    kept = {}
    for rule in rules:
        stems = rule_stems(rule, clip, preset, masks)
        if rule.kind == NAIVE or (rule.options is not None and rule.options.fullband == "bandlimited" and rule.options.high_band == "zero"):
            kept[rule.kind] = stems
        if rule.kind == "front-end":
            stems[COMPLEMENT] = clip.mixture - stems["vocals"]
        result["rules"][rule.name] = score_stems(clip, stems)
    if len(kept) == 2:  # the naive path written out must be the front end's bandlimited + zero
        result["naive_vs_bandlimited_zero_max_abs"] = max(float(np.abs(kept[NAIVE][t] - kept["front-end"][t]).max()) for t in STEMS)
    return result


# -------------------------------------------------------------- aggregation
def summarise(per_clip: Sequence[dict], rules: Sequence[Rule]) -> dict[str, dict[str, float]]:
    """Means over clips per rule and stem: ``sdr_*``, ``nsdr_*`` (SDR - SDR of the mixture), ``snr_*``."""
    summary = {}
    for rule in rules:
        row = {}
        for k in per_clip[0]["rules"][rule.name]["sdr"]:
            target = "accompaniment" if k == COMPLEMENT else k
            s = np.array([c["rules"][rule.name]["sdr"][k] for c in per_clip])
            m = np.array([c["mixture"]["sdr"][target] for c in per_clip])
            row[f"sdr_{k}"] = float(np.mean(s))
            row[f"nsdr_{k}"] = float(np.mean(s - m))
            row[f"snr_{k}"] = float(np.mean([c["rules"][rule.name]["snr"][k] for c in per_clip]))
        summary[rule.name] = row
    return summary


def overall(summaries: Mapping[str, Mapping[str, dict]], name: str) -> float:
    """Ranking score: mean over datasets of the mean of the vocal and accompaniment SDR."""
    return float(np.mean([np.mean([s[name]["sdr_vocals"], s[name]["sdr_accompaniment"]]) for s in summaries.values()]))


def best_rule(summaries: Mapping[str, Mapping[str, dict]], rules: Sequence[Rule], fullband: str | None = None) -> Rule | None:
    """The best front-end rule by :func:`overall`, among settable options (not ``matched``), of one ``fullband`` kind if given."""
    cands = [r for r in rules if r.kind == "front-end" and not r.matched and fullband in (None, r.options.fullband)]
    return max(cands, key=lambda r: overall(summaries, r.name)) if cands else None


METRICS = (("SDR vocals", "sdr_vocals"), ("SDR acc.", "sdr_{acc}"), ("NSDR vocals", "nsdr_vocals"), ("NSDR acc.", "nsdr_{acc}"))
SNR_METRICS = (("SNR vocals", "snr_vocals"), ("SNR acc.", "snr_{acc}"))


def header(datasets: Sequence[str], wide: bool, metrics: Sequence[tuple[str, str]] = METRICS) -> list[str]:
    if not wide:
        return ["rule", "dataset", *(m for m, _ in metrics)]
    return ["rule", *(f"{d} {m}" for d in datasets for m, _ in metrics)]


def table_rows(summaries: Mapping[str, Mapping[str, dict]], rules: Sequence[Rule], complement: bool = False, wide: bool = False,
               metrics: Sequence[tuple[str, str]] = METRICS) -> list[list[str]]:
    """Rows of the Markdown table (one per rule and dataset, or per rule if ``wide``);
    with ``complement``, the accompaniment is mixture - vocals."""
    acc = COMPLEMENT if complement else "accompaniment"
    suffix = " + accompaniment = mixture - vocals" if complement else ""

    def cells(dataset: str, rule: Rule) -> list[str]:
        r = summaries[dataset][rule.name]
        return [f"{r[key.format(acc=acc)]:.2f}" for _, key in metrics]

    if wide:
        return [[rule.name + suffix, *(c for d in summaries for c in cells(d, rule))] for rule in rules]
    return [[rule.name + suffix, d, *cells(d, rule)] for rule in rules for d in summaries]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Text columns (those whose first cell is not a number) left-aligned, numbers right-aligned."""
    def numeric(i: int) -> bool:
        try:
            float(rows[0][i])
            return True
        except (ValueError, IndexError):
            return False

    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---:" if numeric(i) else "---" for i in range(len(header))) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------- main
def parse_grid(text: str) -> tuple[int, int] | str:
    if text == MATCHED:
        return MATCHED
    try:
        n_fft, hop = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N_FFT/HOP (e.g. 2048/512) or {MATCHED!r}, not {text!r}") from None
    if not 0 < hop <= n_fft:
        raise argparse.ArgumentTypeError(f"hop must be in (0, n_fft]: {text!r}")
    return n_fft, hop


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Writes a JSON report (--out) and prints a Markdown table.")
    p.add_argument("--data", type=Path, default=default_data_dir(), help="shared data folder (default: $VOCALSEP_DATA or ../shared/data next to the repository)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default: {DEFAULT_OUT.relative_to(REPO)})")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {DATASETS}")
    p.add_argument("--singers", default=",".join(DEFAULT_SINGERS), help="MIR-1K singers whose clips are used (default: %(default)s)")
    p.add_argument("--clips", type=int, default=0, help="at most this many MIR-1K clips, first by name (0: all of the singers' clips)")
    p.add_argument("--min-voiced", type=int, default=1, help="MIR-1K clips need at least this many voiced 20 ms frames (default: %(default)s)")
    p.add_argument("--preset", default="jansson2017", help="the low-rate preset (default: %(default)s)")
    p.add_argument("--grids", type=parse_grid, nargs="+", default=list(DEFAULT_GRIDS), metavar="N_FFT/HOP",
                   help="full-rate STFTs for the interpolate rule; 'matched' = the preset's STFT scaled to the input rate (default: "
                   + " ".join(g if isinstance(g, str) else f"{g[0]}/{g[1]}" for g in DEFAULT_GRIDS) + ")")
    p.add_argument("--high-bands", default=",".join(HIGH_BAND_RULES), help="high-band rules to compare (default: %(default)s)")
    p.add_argument("--edge-hz", type=float, default=SeparationOptions().edge_hz, help="the edge rule's band, in Hz (default: %(default)s)")
    p.add_argument("--oracle-grid", type=parse_grid, default=(SeparationOptions().fullband_n_fft, SeparationOptions().fullband_hop), metavar="N_FFT/HOP",
                   help="STFT of the full-rate ideal-mask reference row (default: the front end's default)")
    p.add_argument("--wide", action="store_true", help="print one table row per rule, the datasets side by side")
    args = p.parse_args(argv)
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    args.singers = [s.strip() for s in args.singers.split(",") if s.strip()]
    args.high_bands = [h.strip() for h in args.high_bands.split(",") if h.strip()]
    for d in args.datasets:
        if d not in DATASETS:
            p.error(f"unknown dataset {d!r}; known: {', '.join(DATASETS)}")
    for h in args.high_bands:
        if h not in HIGH_BAND_RULES:
            p.error(f"unknown high-band rule {h!r}; known: {', '.join(HIGH_BAND_RULES)}")
    if args.clips < 0:
        p.error("--clips must be >= 0")
    return args


def clips_of(dataset: str, args: argparse.Namespace) -> Iterator[Clip]:
    if dataset == "musdb":
        yield load_musdb_clip(args.data)
        return
    files = mir1k_files(args.data, args.singers, args.clips or None, args.min_voiced)
    if not files:
        raise SystemExit(f"error: no MIR-1K clips of singers {args.singers} with >= {args.min_voiced} voiced frames in {args.data / 'mir1k'}")
    for path in files:
        yield load_mir1k_clip(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    check_data(args.data, args.datasets)
    preset = get_preset(args.preset)
    rules = make_rules(preset, args.grids, args.high_bands, args.edge_hz, args.oracle_grid)
    start = time.perf_counter()
    per_clip: dict[str, list[dict]] = {}
    timings: dict[str, float] = {}
    with torch.inference_mode():
        for dataset in args.datasets:
            t0 = time.perf_counter()
            per_clip[dataset] = []
            for clip in clips_of(dataset, args):
                per_clip[dataset].append(evaluate_clip(clip, preset, rules))
                print(f"[{time.perf_counter() - start:7.1f} s] {dataset} {clip.name}", file=sys.stderr, flush=True)
            timings[dataset] = time.perf_counter() - t0
    summaries = {d: summarise(v, rules) for d, v in per_clip.items()}
    best = best_rule(summaries, rules)
    best_interp = best_rule(summaries, rules, "interpolate")
    front_end = [r for r in rules if r.kind == "front-end"]
    ranked = sorted(front_end, key=lambda r: overall(summaries, r.name), reverse=True)

    head = header(list(summaries), args.wide)
    rows = (table_rows(summaries, [r for r in rules if r.kind != ORACLE], wide=args.wide)
            + table_rows(summaries, [best_interp] if best_interp else [], complement=True, wide=args.wide)
            + table_rows(summaries, [r for r in rules if r.kind == ORACLE], wide=args.wide))
    print(markdown_table(head, rows))
    print()
    print("With accompaniment = mixture - vocals (SeparationOptions(complement=True)) for every rule:")
    print()
    print(markdown_table(head, table_rows(summaries, front_end, complement=True, wide=args.wide)))
    print()
    print("Plain SNR (no allowed distortion filter; a missing band counts in full):")
    print()
    snr_rules = [r for r in rules if r.kind != ORACLE]
    snr_rows = (table_rows(summaries, snr_rules, wide=args.wide, metrics=SNR_METRICS)
                + table_rows(summaries, [best_interp] if best_interp else [], complement=True, wide=args.wide, metrics=SNR_METRICS)
                + table_rows(summaries, [r for r in rules if r.kind == ORACLE], wide=args.wide, metrics=SNR_METRICS))
    print(markdown_table(header(list(summaries), args.wide, SNR_METRICS), snr_rows))
    print()
    counts = ", ".join(f"{d}: {len(v)} clip(s), {sum(c['seconds'] for c in v):.0f} s" for d, v in per_clip.items())
    print(f"clips: {counts}; runtime {time.perf_counter() - start:.0f} s")
    print("ranking (mean over datasets of the mean vocal/accompaniment SDR):")
    for r in ranked:
        print(f"  {overall(summaries, r.name):6.2f} dB  {r.name}")

    report = {
        "description": "full-band rules with ideal low-rate masks; SDR = BSS Eval v3 (mir_eval.separation.bss_eval_sources), mean over clips of the mean over channels; NSDR = SDR - SDR(mixture); SNR = plain signal-to-error ratio",
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "preset": preset.to_dict(),
        "data": str(args.data),
        "datasets": {d: {"clips": [c["clip"] for c in v], "seconds": sum(c["seconds"] for c in v)} for d, v in per_clip.items()},
        "singers": args.singers if "mir1k" in args.datasets else None,
        "rules": [r.describe() for r in rules],
        "summary": summaries,
        "ranking": [{"rule": r.name, "score_db": overall(summaries, r.name)} for r in ranked],
        "best": best.name if best else None,
        "best_interpolate": best_interp.name if best_interp else None,
        "per_clip": per_clip,
        "runtime_s": {"total": time.perf_counter() - start, **timings},
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__, "mir_eval": _version("mir_eval"), "threads": torch.get_num_threads()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=_json_default))
    print(f"wrote {args.out}")
    return 0


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001
        return None


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
