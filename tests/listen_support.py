"""Helpers of the listening-test tests: synthetic separated outputs, a JSON HTTP client, a scripted listener."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000
SECONDS = 8.0


def voice_span(k: int) -> tuple[float, float]:
    """Where track ``k`` has singing (seconds)."""
    return 1.5 + 0.5 * k, 5.5 + 0.5 * k


def track_signals(k: int, seconds: float = SECONDS, rate: int = RATE) -> tuple[np.ndarray, np.ndarray]:
    """(voice, accompaniment) of synthetic track ``k``, stereo float32: a vibrato 'voice' only inside
    :func:`voice_span` (50 ms ramps), over a chord with noise bursts for the whole track."""
    rng = np.random.default_rng(100 + k)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 200 * (1 + 0.1 * k) * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    on, off = voice_span(k)
    gate = np.clip(np.minimum(t - on, off - t) / 0.05, 0, 1)
    voice = 0.3 * gate * sum(np.sin(h * phase) / h for h in range(1, 6))
    chord = 0.15 * sum(np.sin(2 * np.pi * f * t) for f in (130.8, 164.8, 196.0)) / 3
    bursts = 0.08 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 1.3 * t) > 0.7)
    acc = chord + bursts
    voice = np.stack([voice, 0.9 * voice]).astype(np.float32)
    acc = np.stack([acc, np.roll(acc, 7)]).astype(np.float32)
    return voice, acc


def make_outputs(root: Path, tracks: int = 3) -> dict[str, Path]:
    """``root/mixtures/trackK.wav``, true stems ``root/vocals/trackK/vocals.wav`` and two systems' outputs:
    ``unet`` (little leakage, WAV) and ``baseline`` (more leakage, FLAC accompaniment)."""
    dirs = {name: root / name for name in ("mixtures", "vocals", "unet", "baseline")}
    for k in range(tracks):
        name = f"track{k}"
        voice, acc = track_signals(k)
        _write(dirs["mixtures"] / f"{name}.wav", voice + acc)
        _write(dirs["vocals"] / name / "vocals.wav", voice)
        _write(dirs["unet"] / name / "vocals.wav", 0.95 * voice + 0.02 * acc)
        _write(dirs["unet"] / name / "accompaniment.wav", 0.95 * acc + 0.03 * voice)
        _write(dirs["baseline"] / name / "vocals.wav", 0.6 * voice + 0.2 * acc)
        _write(dirs["baseline"] / name / "accompaniment.flac", 0.8 * acc + 0.25 * voice)
    return dirs


def _write(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(x, np.float32).T, RATE, subtype="PCM_24" if path.suffix == ".flac" else "FLOAT")


class Client:
    """A tiny JSON client on urllib: ``call(method, path, body) -> (status, data)``."""

    def __init__(self, url: str, timeout: float = 60):
        self.url = url
        self.timeout = timeout

    def call(self, method: str, path: str, body=None, *, headers: dict | None = None, raw: bytes | None = None,
             content_type: str = "application/json"):
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        h = {"Content-Type": content_type} if data is not None else {}
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={**h, **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                payload, status, hdrs = r.read(), r.status, r.headers
        except urllib.error.HTTPError as e:
            payload, status, hdrs = e.read(), e.code, e.headers
        if hdrs.get_content_type() == "application/json":
            return status, json.loads(payload)
        return status, payload

    def ok(self, method: str, path: str, body=None, **kw):
        status, data = self.call(method, path, body, **kw)
        assert 200 <= status < 300, (method, path, status, data)
        return data


def clip_index(study) -> dict[str, tuple]:
    """Audio URL ('audio/NAME') -> (item, clip) for every clip of the study (what the scripted listener 'hears')."""
    out = {}
    for item in study.items:
        for c in item.clips:
            out[c.file] = (item, c)
    return out


def scripted_rating(item, clip, *, fail_controls: bool, excerpt_shift: int = 0) -> int:
    """A deterministic listener: prefers unet to baseline; answers controls inside (or outside) the range."""
    if clip.accept is not None:
        lo, hi = clip.accept
        if fail_controls:
            return 7 if hi < 7 else 1
        return lo
    base = {"unet": 6, "baseline": 3}.get(clip.system, 4)
    return max(1, min(7, base - (excerpt_shift + int(item.excerpt.id[1:])) % 2))


def answer_body(state: dict, study, index: dict, *, fail_controls: bool = False) -> dict:
    """The answer a scripted listener gives to the item in ``state``."""
    item_view = state["item"]
    ratings, listened = {}, {}
    for c in item_view["clips"]:
        item, clip = index[c["audio"]]
        ratings[c["slot"]] = scripted_rating(item, clip, fail_controls=fail_controls)
        listened[c["slot"]] = item_view["listen_seconds"]
    return {"position": item_view["position"], "ratings": ratings, "listened": listened, "elapsed_ms": 1234}
