"""Scoring one track: which tracks an evaluation takes, whether a track has vocals, and
:class:`TrackScorer`, which runs every system on a track and scores its estimates.

Used by :mod:`.run` (in its worker processes) and by :mod:`.report` (the mask image of one track).
See :mod:`.run` for the rules (which tracks count, excluded and undefined outcomes).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import ConfigError, VocalsepError
from ..stems import STEMS
from .metrics import SourcesV3, museval_scores, nsdr_scores
from .systems import MixtureSystem, build_system, parse_systems

VOICED_DBFS = -60.0
MIN_VOICED_SECONDS = 0.5
FRAME_SECONDS = 0.02
DEFAULT_RATES = {"mir1k": 16000}  # the clips' own rate; other layouts: 44100 Hz (MUSDB18's)


def layout_of(cfg) -> str:
    from ..data.datasets import guess_layout

    kind = cfg.dataset or guess_layout(cfg.data)
    if kind == "pairs":
        raise ConfigError("a pair manifest has no vocal reference: evaluation needs mir1k, stems or musdb data")
    return kind


def list_tracks(cfg):
    """The dataset's tracks chosen by ``groups``, ``tracks`` and ``limit``, sorted by name."""
    from ..data.datasets import open_dataset

    kind = layout_of(cfg)
    ds = open_dataset(cfg.data, kind, **({"join_songs": False} if kind == "mir1k" else {}))
    tracks = sorted(ds.tracks, key=lambda t: t.name)
    for wanted, key, what in ((cfg.groups, "group", "groups"), (cfg.tracks, "name", "tracks")):
        if wanted:
            known = {getattr(t, key) for t in tracks}
            unknown = sorted(set(wanted) - known)
            if unknown:
                raise ConfigError(f"{cfg.data}: no {what} {unknown} among the chosen tracks (known: {', '.join(sorted(known)[:20])})")
            tracks = [t for t in tracks if getattr(t, key) in wanted]
    return tracks[: cfg.limit] if cfg.limit else tracks


def rate_of(cfg) -> int:
    return cfg.rate or DEFAULT_RATES.get(layout_of(cfg), 44100)


def vocal_activity(track, vocals: np.ndarray, rate: int) -> dict:
    """``{"source": "labels"|"energy", "voiced_seconds": s, "counts": bool}`` (see the module doc)."""
    labels = track.vocal_activity(rate, vocals.shape[-1])
    if labels is not None:
        voiced = float(np.sum(labels > 0)) / rate
        return {"source": "labels", "voiced_seconds": voiced, "counts": voiced > 0}
    mono = np.asarray(vocals, np.float64).mean(axis=0)
    hop = max(1, round(FRAME_SECONDS * rate))
    frames = mono[: mono.size // hop * hop].reshape(-1, hop)
    rms_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    voiced = float(np.sum(rms_db > VOICED_DBFS)) * hop / rate
    return {"source": "energy", "voiced_seconds": voiced, "counts": voiced >= MIN_VOICED_SECONDS}


# -- one track

class TrackScorer:
    """Loads the dataset and the systems once (per worker process) and scores tracks."""

    def __init__(self, cfg):
        from ..config import get_preset

        self.cfg = cfg
        self.rate = rate_of(cfg)
        self.tracks = {t.name: t for t in list_tracks(cfg)}
        options = cfg.separation
        preset = get_preset(cfg.preset)
        self.systems = {s.name: build_system(s, preset, options, cfg.device) for s in parse_systems(cfg.systems)}
        self._v3: SourcesV3 | None = None  # the current track's references (v3)

    def signals(self, name: str):
        """(mixture, references) of a track at the evaluation rate, mono for ``v3``."""
        d = self.tracks[name].load(self.rate)
        if self.cfg.metric == "v3":
            d = {k: v.mean(axis=0, keepdims=True) for k, v in d.items()}
        return d["mixture"].astype(np.float64), {s: d[s].astype(np.float64) for s in STEMS}

    def score(self, name: str, todo: list[str]) -> dict:
        track = self.tracks[name]
        t0 = time.perf_counter()
        try:
            mixture, refs = self.signals(name)
            if self.cfg.metric == "museval" and len({x.shape[0] for x in (mixture, *refs.values())}) > 1:
                counts = ", ".join(f"{k} {x.shape[0]}" for k, x in (("mixture", mixture), *refs.items()))
                raise ValueError(f"{name}: its mixture and references have different channel counts ({counts})")
        except (VocalsepError, OSError, ValueError) as exc:  # this track fails, every system on it; the rest go on
            return self._unreadable(name, track, todo, str(exc))
        result = {"track": name, "group": track.group, "seconds": mixture.shape[-1] / self.rate,
                  "channels": int(mixture.shape[0]), "status": "scored", "reason": "", "systems": {},
                  "timing": {"loading": 0.0, "separation": 0.0, "scoring": 0.0}}
        activity = vocal_activity(track, refs["vocals"], self.rate)
        result["vocal_activity"] = activity
        silent = [s for s in STEMS if not np.any(refs[s])]
        if silent:
            result.update(status="excluded", reason=f"the {silent[0]} reference is all zeros: BSS Eval is undefined")
        elif not activity["counts"]:
            result.update(status="excluded", reason=f"no vocals ({activity['source']}: {activity['voiced_seconds']:.2f} s voiced)")
        result["timing"]["loading"] = time.perf_counter() - t0
        if result["status"] == "excluded":
            return result
        t0 = time.perf_counter()
        mix_scores = self._mixture_scores(mixture, refs)
        result["timing"]["scoring"] += time.perf_counter() - t0
        for sname in todo:
            t0 = time.perf_counter()
            try:
                est = self.systems[sname].estimate(name, mixture, refs, self.rate)
            except (VocalsepError, OSError, RuntimeError, ValueError) as exc:
                result["systems"][sname] = {"status": "failed", "reason": str(exc)}
                continue
            t1 = time.perf_counter()
            result["timing"]["separation"] += t1 - t0
            result["systems"][sname] = self._score_system(mixture, refs, est, mix_scores, isinstance(self.systems[sname], MixtureSystem))
            dt = time.perf_counter() - t1
            result["timing"]["scoring"] += dt
            result["systems"][sname]["seconds"] = {"separation": t1 - t0, "scoring": dt}
        return result

    def _unreadable(self, name: str, track, todo: list[str], reason: str) -> dict:
        """A track whose references cannot be used: excluded, and each system asked for failed with the reason
        (a later run tries it again)."""
        return {"track": name, "group": track.group, "seconds": 0.0, "channels": 0, "status": "excluded",
                "reason": f"its references cannot be used: {reason}", "systems": {s: {"status": "failed", "reason": reason} for s in todo},
                "timing": {"loading": 0.0, "separation": 0.0, "scoring": 0.0}}

    def _mixture_scores(self, mixture, refs) -> dict:
        if self.cfg.metric == "v3":
            mono = np.stack([refs[s][0] for s in STEMS])
            self._v3 = SourcesV3(mono)  # the references' share of BSS Eval, shared by every system of this track
            raw = self._v3.score(np.stack([mixture[0]] * len(STEMS)))
            return {s: {m: float(raw[m][i]) for m in ("sdr", "sir", "sar")} for i, s in enumerate(STEMS)}
        return museval_scores(refs, {s: mixture for s in STEMS}, self.rate)

    def _score_system(self, mixture, refs, est, mix_scores, is_mixture: bool) -> dict:
        silent = [s for s in STEMS if not np.any(est[s])]
        if silent:
            return {"status": "undefined", "reason": f"the {silent[0]} estimate is all zeros: BSS Eval is undefined"}
        if is_mixture:
            scores = {s: dict(v) for s, v in mix_scores.items()}
            for s in STEMS:
                scores[s]["nsdr"] = 0.0
        elif self.cfg.metric == "v3":
            mixture_sdr = np.array([mix_scores[s]["sdr"] for s in STEMS])
            scores = nsdr_scores(mixture[0], {s: refs[s][0] for s in STEMS}, {s: est[s][0] for s in STEMS}, mixture_sdr, self._v3)
        else:
            scores = museval_scores(refs, est, self.rate)
            for s in STEMS:
                scores[s]["nsdr"] = scores[s]["sdr"] - mix_scores[s]["sdr"]
        bad = [s for s in STEMS if not math.isfinite(scores[s]["sdr"]) or not math.isfinite(scores[s]["nsdr"])]
        if bad:
            b = bad[0]
            if scores[b]["sdr"] == math.inf:
                why = f"the {b} estimate equals its reference: its SDR is infinite"
            elif self.cfg.metric == "museval":
                why = f"the {b} score is undefined (every museval window silent)"
            else:
                why = f"the {b} score is undefined"
            return {"status": "undefined", "reason": why, "targets": scores}
        return {"status": "scored", "reason": "", "targets": scores}

