"""``vocalsep listen report``: the study's results, like the paper's Figure 5.

Who counts: a participant who failed any control (a rating outside a control
clip's acceptable range in the *current* study file) is *disqualified*: their
answers are kept in the raw CSV and left out of every statistic.  By default
only participants who answered every question count (so every one of them
passed every control); ``include_incomplete`` also counts the answers of
participants who stopped early without failing a control.  Control items never
enter the statistics.

Per system and question the unit is the participant (one participant's ratings of several
excerpts are not independent): n, mean of the participants' means, SD, 95 % confidence interval
(t, n - 1), the ratings' own spread and median; each defined in docs/listening-test.md.

Paired tests: for each question and pair of systems, the Wilcoxon signed-rank
test (``scipy.stats.wilcoxon``: two-sided, zero differences dropped,
``method="auto"``) on the participants' mean ratings of the two systems, over
the participants who rated both; with the matched-pairs rank-biserial
correlation as effect size and Holm-adjusted p-values over all the report's
tests.  Ratings are on the Likert scale 1 = first label ("Poor") to
len(scale) = last label ("Perfect").
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np

from .._atomic import file_in_the_way, write_text
from ..errors import ConfigError
from .store import Store, judge
from .study import DB_FILE, Study, load_study

ERROR_BARS = ("sd", "ci")


# -- who counts

def participant_status(study: Study, store: Store, include_incomplete: bool = False) -> list[dict]:
    """Every participant with ``status`` (finished / incomplete / disqualified), ``included`` and the reason."""
    people = store.participants()
    verdict = judge(study, store.ratings())
    total = len(study.items)
    out = []
    for p in people:
        dq = verdict.get(p["id"])
        finished = p["answered"] >= total
        status = "disqualified" if dq else "finished" if finished else "incomplete"
        included = status == "finished" or (status == "incomplete" and include_incomplete and p["answered"] > 0)
        out.append({**p, "status": status, "included": included, "disqualified_at": dq[0] if dq else None,
                    "disqualified_reason": dq[1] if dq else None})
    return out


def rating_rows(study: Study, store: Store, people: Sequence[dict]) -> list[dict]:
    """Every stored rating with what it refers to (question, excerpt, system, control...) and its participant's status."""
    index = study.item_index
    who = {p["id"]: p for p in people}
    rows = []
    for r in store.ratings():
        item = index[r["item"]]
        clip = item.clip(r["clip"])
        p = who[r["participant_id"]]
        rows.append({
            "participant": r["participant_id"], "external_id": p["external_id"] or "", "status": p["status"],
            "included": p["included"] and not item.control,
            "position": r["position"] + 1, "item": item.id, "control": item.control, "question": item.question.id,
            "question_label": item.question.label, "excerpt": item.excerpt.id, "track": item.excerpt.track,
            "start": item.excerpt.start, "clip": clip.key, "slot": r["slot"], "system": clip.system or "",
            "source": clip.source, "file": clip.file,
            "accept_low": clip.accept[0] if clip.accept else "", "accept_high": clip.accept[1] if clip.accept else "",
            "rating": r["rating"], "rating_label": study.scale[r["rating"] - 1] if 1 <= r["rating"] <= len(study.scale) else "",
            "listened_s": round(r["listened"], 3), "elapsed_ms": r["elapsed_ms"] if r["elapsed_ms"] is not None else "",
            "answered_at": r["answered_at"],
        })
    return rows


RESPONSE_FIELDS = ("participant", "external_id", "status", "included", "position", "item", "control", "question", "question_label",
                   "excerpt", "track", "start", "clip", "slot", "system", "source", "file", "accept_low", "accept_high", "rating",
                   "rating_label", "listened_s", "elapsed_ms", "answered_at")


def _csv(rows: Iterable[dict], fields: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (_num(v) if isinstance(v, float) else _text(v) if isinstance(v, str) else v) for k, v in r.items()})
    return buf.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(v: str) -> str:
    """A text cell a spreadsheet shows as text: one that would start a formula ("-1+1", "@SUM(A1)")
    gets a leading apostrophe (participants choose their external ids and user agents)."""
    return "'" + v if v.startswith(FORMULA_STARTS) else v


def _num(v: float) -> str:
    return "" if not math.isfinite(v) else f"{v:.6g}"


def responses_csv(study: Study, store: Store, include_incomplete: bool = False) -> str:
    """The raw responses, one row per rating, every participant (``status`` and ``included`` say who counts)."""
    people = participant_status(study, store, include_incomplete)
    return _csv(rating_rows(study, store, people), RESPONSE_FIELDS)


# -- statistics

def summarize(ratings: Iterable[tuple[int, str, str, int]], systems: Sequence[str], questions: Sequence[str]) -> list[dict]:
    """Per (question, system): n, ratings, mean, sd, 95 % CI (t, over participants), rating_sd, median.

    ``ratings``: ``(participant, system, question, rating)`` of the counted participants."""
    from scipy.stats import t as student_t

    per: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pid, system, question, rating in ratings:
        per[(question, system)][pid].append(rating)
    rows = []
    for q in questions:
        for s in systems:
            by_participant = per.get((q, s), {})
            means = np.array([np.mean(v) for v in by_participant.values()], float)
            every = np.array([r for v in by_participant.values() for r in v], float)
            n = means.size
            mean = float(means.mean()) if n else math.nan
            sd = float(means.std(ddof=1)) if n > 1 else math.nan
            half = float(student_t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
            rows.append({"question": q, "system": s, "participants": int(n), "ratings": int(every.size), "mean": mean, "sd": sd,
                         "ci95_low": mean - half, "ci95_high": mean + half,
                         "rating_sd": float(every.std(ddof=1)) if every.size > 1 else math.nan,
                         "median": float(np.median(every)) if every.size else math.nan})
    return rows


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count as a test)."""
    idx = [i for i, p in enumerate(pvalues) if math.isfinite(p)]
    m = len(idx)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def paired_tests(ratings: Iterable[tuple[int, str, str, int]], systems: Sequence[str], questions: Sequence[str]) -> list[dict]:
    """Wilcoxon signed-rank tests between every pair of systems on every question, paired by participant
    (each participant's mean rating), with rank-biserial effect size and Holm-adjusted p-values."""
    from scipy.stats import rankdata, wilcoxon

    per: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pid, system, question, rating in ratings:
        per[(question, system)][pid].append(rating)
    rows = []
    for q in questions:
        for a, b in combinations(systems, 2):
            ma = {p: float(np.mean(v)) for p, v in per.get((q, a), {}).items()}
            mb = {p: float(np.mean(v)) for p, v in per.get((q, b), {}).items()}
            both = sorted(set(ma) & set(mb))
            d = np.array([ma[p] - mb[p] for p in both], float)
            nonzero = d[np.abs(d) > 1e-12]
            row = {"question": q, "system_a": a, "system_b": b, "participants": len(both), "nonzero": int(nonzero.size),
                   "mean_difference": float(d.mean()) if d.size else math.nan,
                   "median_difference": float(np.median(d)) if d.size else math.nan,
                   "statistic": math.nan, "p_value": math.nan, "rank_biserial": math.nan, "note": ""}
            if nonzero.size == 0:
                row["note"] = "no participant rated them differently" if d.size else "no participant rated both"
            else:
                res = wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided", method="auto")
                ranks = rankdata(np.abs(nonzero))
                w_plus, w_minus = float(ranks[nonzero > 0].sum()), float(ranks[nonzero < 0].sum())
                row.update(statistic=float(res.statistic), p_value=float(res.pvalue),
                           rank_biserial=(w_plus - w_minus) / (w_plus + w_minus))
            rows.append(row)
    for row, adj in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"] = adj
    return rows


# -- the figure

def bar_chart(stats: Sequence[dict], study: Study, path: Path, error_bars: str = "sd", subtitle: str = "") -> Path:
    """Mean rating per question (groups) and system (bars) with error bars, like the paper's Figure 5."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    systems = list(study.systems)
    questions = [q for q in study.questions]
    fig = Figure(figsize=(max(6.5, 1.2 + 1.15 * len(questions) * max(len(systems), 2) / 1.6), 4.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(systems)
    colors = ["#1f4e9c", "#e07b1a", "#2e8b57", "#a23b72", "#6b6b6b", "#17becf", "#bcbd22", "#8c564b"]
    by = {(r["question"], r["system"]): r for r in stats}
    for k, s in enumerate(systems):
        xs, means, lo, hi = [], [], [], []
        for j, q in enumerate(questions):
            r = by.get((q.id, s))
            if r is None or not math.isfinite(r["mean"]):
                continue
            xs.append(j - 0.4 + width * (k + 0.5))
            means.append(r["mean"])
            if error_bars == "ci":
                lo.append(r["mean"] - r["ci95_low"] if math.isfinite(r["ci95_low"]) else 0.0)
                hi.append(r["ci95_high"] - r["mean"] if math.isfinite(r["ci95_high"]) else 0.0)
            else:
                e = r["rating_sd"] if math.isfinite(r["rating_sd"]) else 0.0
                lo.append(e)
                hi.append(e)
        bottom = 0.0
        ax.bar(xs, [m - bottom for m in means], width * 0.92, bottom=bottom, label=s, color=colors[k % len(colors)],
               yerr=[lo, hi], capsize=4, error_kw={"elinewidth": 1.2, "ecolor": "0.15"})
    ax.set_xticks(range(len(questions)), [q.label.replace(": ", ":\n", 1) for q in questions])
    steps = len(study.scale)
    ax.set_ylim(0, steps + 0.6)
    ax.set_yticks(range(1, steps + 1), [f"{i} {lab}" for i, lab in enumerate(study.scale, 1)])
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(title="system", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    what = "standard deviation of the ratings" if error_bars == "sd" else "95 % confidence interval (participants)"
    ax.set_title(f"Mean rating; error bars: {what}" + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        fig.savefig(tmp, format="png")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


# -- the report

def _f(v, digits: int = 2) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


def _p(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return out


def make_report(study_dir: str | Path, out: str | Path, *, db: str | Path | None = None, include_incomplete: bool = False,
                error_bars: str = "sd") -> dict:
    """Write ``summary.md``, ``summary.json``, ``summary.csv``, ``tests.csv``, ``responses.csv``,
    ``participants.csv`` and ``ratings.png`` into ``out``; returns the summary."""
    if error_bars not in ERROR_BARS:
        raise ConfigError(f"error_bars must be one of {', '.join(ERROR_BARS)}, not {error_bars!r}")
    study = load_study(study_dir)
    store = Store(Path(db) if db else study.root / DB_FILE, create=False)
    stored = store.meta("fingerprint")
    if stored is not None and stored != study.fingerprint():
        raise ConfigError(f"{study.path}: its questions or clips differ from those the responses in {store.path} were given for")
    out = Path(out)
    blocking = file_in_the_way(out)
    if blocking is not None:
        raise ConfigError(f"-o {out}: {blocking} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)

    people = participant_status(study, store, include_incomplete)
    rows = rating_rows(study, store, people)
    counted = [(r["participant"], r["system"], r["question"], r["rating"]) for r in rows if r["included"]]
    qids = [q.id for q in study.questions]
    stats = summarize(counted, study.systems, qids)
    tests = paired_tests(counted, study.systems, qids)
    labels = {q.id: q.label for q in study.questions}
    for r in stats + tests:
        r["question_label"] = labels[r["question"]]

    counts = {k: sum(p["status"] == k for p in people) for k in ("finished", "incomplete", "disqualified")}
    counts["started"] = len(people)
    counts["included"] = sum(p["included"] for p in people)
    controls = []
    for item in study.control_items:
        answered = {r["participant"] for r in rows if r["item"] == item.id}
        failed = {r["participant"] for r in rows if r["item"] == item.id and r["accept_low"] != ""
                  and not r["accept_low"] <= r["rating"] <= r["accept_high"]}
        controls.append({"item": item.id, "question": item.question.id, "excerpt": item.excerpt.id,
                         "planted": ", ".join(f"{c.source} {c.accept[0]}-{c.accept[1]}" for c in item.clips if c.accept),
                         "answered": len(answered), "failed": len(failed)})

    files = {}
    text_fields = ("question", "question_label", "system", "participants", "ratings", "mean", "sd", "ci95_low", "ci95_high", "rating_sd", "median")
    files["summary.csv"] = write_text(out / "summary.csv", _csv(stats, text_fields))
    test_fields = ("question", "question_label", "system_a", "system_b", "participants", "nonzero", "mean_difference",
                   "median_difference", "statistic", "p_value", "p_holm", "rank_biserial", "note")
    files["tests.csv"] = write_text(out / "tests.csv", _csv(tests, test_fields))
    files["responses.csv"] = write_text(out / "responses.csv", _csv(rows, RESPONSE_FIELDS))
    pfields = ("id", "external_id", "status", "included", "answered", "created_at", "finished_at", "disqualified_at",
               "disqualified_reason", "seed", "user_agent", "plan")
    prow = [{**p, "plan": json.dumps([[i, list(k)] for i, k in p["plan"]])} for p in people]
    files["participants.csv"] = write_text(out / "participants.csv", _csv(prow, pfields))
    figure = None
    if counted:
        subtitle = (f"{counts['included']} participant{'s' if counts['included'] != 1 else ''} "
                    f"({counts['disqualified']} disqualified by control questions, not shown)")
        figure = bar_chart(stats, study, out / "ratings.png", error_bars, subtitle)
        files["ratings.png"] = figure
    else:  # nobody counts yet: no chart, and none of an earlier report left to be mistaken for this one's
        (out / "ratings.png").unlink(missing_ok=True)

    summary = {
        "study": str(study.path), "responses": str(store.path), "title": study.title, "scale": list(study.scale),
        "systems": list(study.systems), "questions": [{"id": q.id, "label": q.label, "text": q.text} for q in study.questions],
        "include_incomplete": include_incomplete, "error_bars": error_bars, "participants": counts,
        "statistics": stats, "tests": tests, "controls": controls,
        "files": {k: str(v) for k, v in files.items()},
    }
    files["summary.json"] = write_text(out / "summary.json", json.dumps(_jsonable(summary), indent=2) + "\n")
    summary["files"]["summary.json"] = str(files["summary.json"])
    md = markdown(summary, figure.name if figure else None)
    files["summary.md"] = write_text(out / "summary.md", md)
    summary["files"]["summary.md"] = str(files["summary.md"])
    return summary


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def markdown(summary: dict, figure: str | None) -> str:
    c = summary["participants"]
    scale = summary["scale"]
    who = "finished every question and passed every control" if not summary["include_incomplete"] else \
        "did not fail a control (including those who stopped early)"
    title = summary["title"]
    lines = [f"# {title}" if title.lower().startswith("listening test") else f"# Listening test: {title}", "",
             (f"Participants: {c['started']} started, {c['finished']} finished and passed every control, "
              f"{c['disqualified']} disqualified (failed a control question; kept in responses.csv, excluded here), "
              f"{c['incomplete']} stopped early. Counted: **{c['included']}** (those who {who})."), "",
             f"Scale: 1 = {scale[0]} ... {len(scale)} = {scale[-1]} ({', '.join(f'{i} {s}' for i, s in enumerate(scale, 1))}).", "",
             "## Ratings per system and question", "",
             ("n = participants; mean over participants of their mean rating; SD of those means; 95 % CI of the mean "
              "(t, n - 1 degrees of freedom); rating SD = SD of the individual ratings (as in the paper's Figure 5)."), ""]
    lines += _table(["question", "system", "n", "ratings", "mean", "SD", "95 % CI", "rating SD", "median"], [
        [r["question_label"], r["system"], r["participants"], r["ratings"], _f(r["mean"]), _f(r["sd"]),
         f"{_f(r['ci95_low'])} to {_f(r['ci95_high'])}", _f(r["rating_sd"]), _f(r["median"], 1)] for r in summary["statistics"]])
    if figure:
        lines += ["", f"![Mean rating per system and question]({figure})"]
    lines += ["", "## Paired tests between systems", "",
              ("Wilcoxon signed-rank test (two-sided, zero differences dropped) on each participant's mean rating of the two "
               "systems; difference = A - B; r = matched-pairs rank-biserial correlation; Holm = p adjusted over all the "
               "tests below."), ""]
    if summary["tests"]:
        lines += _table(["question", "A", "B", "n", "mean diff.", "W", "p", "p (Holm)", "r", "note"], [
            [t["question_label"], t["system_a"], t["system_b"], t["participants"], _f(t["mean_difference"]), _f(t["statistic"], 1),
             _p(t["p_value"]), _p(t["p_holm"]), _f(t["rank_biserial"]), t["note"]] for t in summary["tests"]])
    else:
        lines.append("(one system only: nothing to compare)")
    lines += ["", "## Control questions", ""]
    if summary["controls"]:
        lines += _table(["control", "question", "excerpt", "known answer", "answered", "failed"], [
            [k["item"], k["question"], k["excerpt"], k["planted"], k["answered"], k["failed"]] for k in summary["controls"]])
    else:
        lines.append("(the study has no control questions: nobody was disqualified)")
    lines += ["", ("Files: summary.csv, tests.csv, responses.csv (every rating of every participant, with status), "
                   "participants.csv (order seeds and plans, disqualification reasons), summary.json."), ""]
    return "\n".join(lines)
