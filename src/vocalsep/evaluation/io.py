"""The evaluation's files: per-track CSV and JSON, the score rows and their CSV, JSON without NaN.

Shared by :mod:`.run` (which writes each track as it finishes and reads finished tracks back) and
:mod:`.report` (which writes ``scores.csv``, ``summary.json`` and ``summary.md``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np

from .._atomic import write_text
from ..stems import STEMS

SCORE_FIELDS = ("sdr", "sir", "sar", "isr", "nsdr")

__all__ = ["SCORE_FIELDS", "csv_text", "json_safe", "safe_name", "score_rows", "unfix", "write_text", "write_track"]


def safe_name(track: str) -> str:
    """A file name for a track name (which may hold '/' for nested stem folders)."""
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", track).strip("._") or "track"
    if safe != track:
        import hashlib

        safe += "-" + hashlib.sha1(track.encode()).hexdigest()[:8]
    return safe


def score_rows(result: dict, systems=None) -> list[dict]:
    rows = []
    for sname in systems if systems is not None else list(result["systems"]):
        r = result["systems"].get(sname)
        if r is None:
            continue
        for s in STEMS:
            v = r.get("targets", {}).get(s, {})
            rows.append({"track": result["track"], "group": result["group"], "seconds": round(result["seconds"], 4),
                         "system": sname, "target": s, **{m: v.get(m, "") for m in SCORE_FIELDS},
                         "status": r["status"], "reason": r.get("reason", "")})
    return rows


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    fields = ["track", "group", "seconds", "system", "target", *SCORE_FIELDS, "status", "reason"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def write_track(out: Path, result: dict) -> None:
    base = out / "tracks" / safe_name(result["track"])
    write_text(base.with_suffix(".csv"), csv_text(score_rows(result)))
    write_text(base.with_suffix(".json"), json.dumps(result, indent=1, allow_nan=False, default=_json_default))


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(f"cannot write {type(x).__name__} as JSON")


def json_safe(x):
    """JSON has no NaN or inf: NaN -> null, +-inf (an exact estimate's SIR, say) -> "inf" / "-inf"."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def unfix(v):
    """The inverse of :func:`json_safe` for infinities: "inf" / "-inf" back to floats."""
    if isinstance(v, dict):
        return {k: unfix(x) for k, x in v.items()}
    if isinstance(v, list):
        return [unfix(x) for x in v]
    if v in ("inf", "-inf"):
        return float(v)
    return v

