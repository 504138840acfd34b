#!/usr/bin/env python
"""Mining on a synthetic catalogue built from MIR-1K (not a test): precision, recall, alignment, target quality.

Builds a catalogue from ``--songs`` MIR-1K songs (the clips of a song joined,
cut to ``--seconds``; singers taken in turn) with
:func:`vocalsep.mining.synthetic.build_catalogue`: per song an original
(voice + accompaniment, FLAC; with ``--forms all``, the default, every third
title in another language or script), for 5 songs in 6 an instrumental (the
accompaniment shifted by up to +-3 s, a gain of -6 to +3 dB, MP3 at
``--bitrate`` kbit/s) titled in the real-world styles in turn (Instrumental
Mix/Version, Karaoke Version, Backing Track, Minus One, Off Vocal, Inst.,
Instr., MR, オフボーカル, カラオケ, インスト, 伴奏, 纯音乐, 반주, Spanish, French,
German, Portuguese, Italian, Russian forms...) and two distractors (live,
remix, a cappella, extended instrumental, copy of the original,
decoded-identical or re-encoded "instrumental", unrelated accompaniment under
a similar title, 1 % slower re-recording, the instrumental of a remix, a
TV-size edit, a TV-size instrumental, an a cappella and a live version
titled in other languages; ``--forms basic``: the first benchmark's 8 title
styles and 9 distractors).  Runs :func:`vocalsep.mining.mine` on it and
scores the mined ``pairs.csv`` against the truth:

- precision and recall of the pairs (a second pair for one song counts as wrong);
- offset error in ms (found - true) and gain error in dB;
- SDR (plain, 10 log10 |s|^2 / |s - s_hat|^2, no BSS Eval projection) of the
  derived vocal target max(|X| - |Y|, 0) with the mixture's phase (STFT 1024/768
  at 8192 Hz, mono) against the true voice: with the mined alignment, with the
  true alignment of the same files, and with the clean accompaniment (the
  ceiling of the rule).

``--titles-only`` measures the metadata stage alone on a larger catalogue
without audio (:func:`vocalsep.mining.synthetic.title_catalogue`:
``--artists`` artists x ``--songs-per-artist`` songs, the same title styles,
distractors of the same artist lasting about as long as the original, remix
and TV-size pairs): precision and recall of the candidate pairs.

    python benchmarks/mine_synthetic.py --songs 16 --seconds 60 --jobs 1
    python benchmarks/mine_synthetic.py --songs 0 --exclude-singers abjones,tammy --seconds 1000 --forms basic \
        --jobs 1 --out /work/exp/mine-all --json benchmarks/results/mine_synthetic_all.json
    python benchmarks/mine_synthetic.py --songs 0 --exclude-singers abjones,tammy --seconds 1000 \
        --jobs 1 --out /tmp/mine-forms --json benchmarks/results/mine_synthetic_forms.json
    python benchmarks/mine_synthetic.py --titles-only --artists 200 --json benchmarks/results/mine_titles.json

Prints a table and writes benchmarks/out/mine_synthetic.json (or ``--json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pick_songs(root: Path, count: int, seconds: float, rate: int, exclude=()):
    """``count`` MIR-1K songs (0: all), singers in turn, as Songs of at most ``seconds``.

    ``exclude``: singers left out (case-insensitive), e.g. the held-out
    evaluation singers.
    """
    from vocalsep.data import MIR1K
    from vocalsep.mining.synthetic import Song

    skip = {s.lower() for s in exclude}
    by_singer: dict[str, list] = {}
    for t in MIR1K(root).tracks:
        if t.group.lower() not in skip:
            by_singer.setdefault(t.group, []).append(t)
    order = [v[i] for i in range(max(len(v) for v in by_singer.values())) for v in by_singer.values() if i < len(v)]
    songs = []
    for t in order[:count] if count else order:
        x = t.load(rate)
        n = int(seconds * rate)
        songs.append(Song(t.name, t.group.capitalize(), x["vocals"][:, :n], x["accompaniment"][:, :n], rate))
    return songs


def summarise(scores: dict, report: dict, timing: dict, args) -> dict:
    per = scores["per_pair"]

    def stat(key, fn):
        return fn([p[key] for p in per]) if per else float("nan")

    return {
        "songs": args.song_count, "excluded_singers": args.exclude_singers, "seconds_per_song": args.seconds, "bitrate_kbps": args.bitrate, "seed": args.seed,
        "forms": args.forms,
        "catalogue_entries": report["counts"]["catalogue_entries"], "true_pairs": scores["expected"],
        "pairs_found": scores["pairs_found"], "precision": scores["precision"], "recall": scores["recall"],
        "offset_abs_error_ms_mean": stat("offset_error_ms", lambda v: statistics.fmean(abs(x) for x in v)),
        "offset_abs_error_ms_max": stat("offset_error_ms", lambda v: max(abs(x) for x in v)),
        "gain_error_db_median": stat("gain_error_db", statistics.median),
        "gain_error_db_max_abs": stat("gain_error_db", lambda v: max(abs(x) for x in v)),
        "sdr_mined_mean": stat("sdr_mined", statistics.fmean), "sdr_mined_median": stat("sdr_mined", statistics.median),
        "sdr_true_alignment_mean": stat("sdr_true_alignment", statistics.fmean),
        "sdr_clean_accompaniment_mean": stat("sdr_clean_accompaniment", statistics.fmean),
        "counts": report["counts"], "timing_s": timing, "wrong": scores["wrong"], "missed": scores["missed"], "per_pair": per,
    }


def table(s: dict) -> str:
    rows = [
        ("catalogue", f"{s['songs']} MIR-1K songs x {s['seconds_per_song']:g} s max, {s['catalogue_entries']} entries, {s['true_pairs']} true pairs"),
        ("pairs found / correct", f"{s['pairs_found']} / {round(s['precision'] * s['pairs_found'])}"),
        ("precision", f"{s['precision']:.3f}"), ("recall", f"{s['recall']:.3f}"),
        ("offset error, mean / max |found - true|", f"{s['offset_abs_error_ms_mean']:.3f} / {s['offset_abs_error_ms_max']:.3f} ms"),
        ("gain error, median / max |.|", f"{s['gain_error_db_median']:+.2f} / {s['gain_error_db_max_abs']:.2f} dB"),
        ("SDR of the derived vocal target, mined alignment (mean / median)", f"{s['sdr_mined_mean']:.2f} / {s['sdr_mined_median']:.2f} dB"),
        ("  same files, true alignment (mean)", f"{s['sdr_true_alignment_mean']:.2f} dB"),
        ("  clean accompaniment, the rule's ceiling (mean)", f"{s['sdr_clean_accompaniment_mean']:.2f} dB"),
        ("time: build catalogue / mine / score", " / ".join(f"{s['timing_s'][k]:.1f} s" for k in ("build", "mine", "score"))),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


def titles_only(args) -> dict:
    """The metadata stage alone on :func:`title_catalogue`: precision and recall of the candidate pairs, per seed and over all."""
    from vocalsep.mining import MatchConfig, find_candidates
    from vocalsep.mining.synthetic import score_candidates, title_catalogue

    runs = []
    for seed in range(args.seed, args.seed + args.seeds):
        t = time.perf_counter()
        entries, truth = title_catalogue(args.artists, args.songs_per_artist, seed=seed)
        result = find_candidates(entries, MatchConfig())
        scores = score_candidates(result.candidates, truth)
        titles = {e.index: e.title for e in entries}
        runs.append({"seed": seed, "entries": len(entries), **{k: scores[k] for k in ("candidates", "correct", "true_pairs", "precision", "recall")},
                     "wrong": scores["wrong"], "missed": [f"{titles[o]!r} + {titles[i]!r}" for o, i in scores["missed"]],
                     "seconds": time.perf_counter() - t})
    correct, found, true = (sum(r[k] for r in runs) for k in ("correct", "candidates", "true_pairs"))
    return {"mode": "titles-only", "artists": args.artists, "songs_per_artist": args.songs_per_artist, "seeds": [r["seed"] for r in runs],
            "entries": sum(r["entries"] for r in runs), "true_pairs": true, "candidates": found, "correct": correct,
            "precision": correct / found if found else float("nan"), "recall": correct / true if true else float("nan"), "runs": runs}


def titles_table(s: dict) -> str:
    lines = [f"metadata stage on {s['entries']} catalogue entries without audio ({s['artists']} artists x {s['songs_per_artist']} songs, seeds {s['seeds']})",
             "", "| seed | entries | true pairs | candidates | correct | precision | recall |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['seed']} | {r['entries']} | {r['true_pairs']} | {r['candidates']} | {r['correct']} | {r['precision']:.4f} | {r['recall']:.4f} |"
              for r in s["runs"]]
    lines += [f"| all | {s['entries']} | {s['true_pairs']} | {s['candidates']} | {s['correct']} | {s['precision']:.4f} | {s['recall']:.4f} |"]
    wrong = [w for r in s["runs"] for w in r["wrong"]]
    missed = [m for r in s["runs"] for m in r["missed"]]
    lines += ["", f"wrong candidates ({len(wrong)}): " + "; ".join(wrong[:10]), f"missed pairs ({len(missed)}): " + "; ".join(missed[:10])]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mir1k"), help="MIR-1K folder")
    ap.add_argument("--songs", type=int, default=16, help="number of songs; 0: all (after --exclude-singers)")
    ap.add_argument("--exclude-singers", type=lambda v: [s for s in v.split(",") if s], default=[], metavar="A,B",
                    help="MIR-1K singers left out of the catalogue, e.g. abjones,tammy (the held-out evaluation singers)")
    ap.add_argument("--seconds", type=float, default=60.0, help="cut each song to this many seconds")
    ap.add_argument("--bitrate", type=int, default=64, help="MP3 bitrate of the instrumentals, kbit/s")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "mine-synthetic"), help="catalogue and mined folder (audio: keep it out of the repo)")
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "out" / "mine_synthetic.json"), help="where the summary JSON goes")
    ap.add_argument("--forms", choices=["all", "basic"], default="all",
                    help="title styles and distractors: all (real-world forms, several languages and scripts) or basic (the first benchmark's)")
    ap.add_argument("--titles-only", action="store_true", help="the metadata stage alone, on a catalogue without audio (fast)")
    ap.add_argument("--artists", type=int, default=200, help="--titles-only: number of artists")
    ap.add_argument("--songs-per-artist", type=int, default=6, help="--titles-only: songs per artist")
    ap.add_argument("--seeds", type=int, default=3, help="--titles-only: catalogues (seeds --seed, --seed + 1, ...)")
    args = ap.parse_args(argv)
    if args.titles_only:
        summary = titles_only(args)
        print(titles_table(summary))
        dest = Path(args.json)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(summary, indent=1, ensure_ascii=False))
        print(f"\nwritten {dest}")
        return 0
    from vocalsep.mining import MineConfig, mine
    from vocalsep.mining.synthetic import build_catalogue, score_mining

    if not Path(args.data).is_dir():
        print(f"no MIR-1K at {args.data}", file=sys.stderr)
        return 2
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    timing = {}
    t = time.perf_counter()
    songs = pick_songs(Path(args.data), args.songs, args.seconds, 16000, args.exclude_singers)
    args.song_count = len(songs)
    truth = build_catalogue(songs, out / "catalogue", seed=args.seed, bitrate=args.bitrate, forms=args.forms)
    timing["build"] = time.perf_counter() - t
    t = time.perf_counter()
    report = mine(MineConfig(str(out / "catalogue" / "catalog.csv"), str(out / "mined"), jobs=args.jobs))
    timing["mine"] = time.perf_counter() - t
    t = time.perf_counter()
    scores = score_mining(out / "mined", truth)
    timing["score"] = time.perf_counter() - t
    summary = summarise(scores, report, timing, args)
    print(table(summary))
    print("\nstages: " + ", ".join(f"{k} {v}" for k, v in report["counts"].items()))
    dest = Path(args.json)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(summary, indent=1))
    print(f"\nwritten {dest}; report {out / 'mined' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
