"""Tempo, beats and key of training tracks, for remixes kept coherent (:class:`~vocalsep.training.mix.MixSampler`).

The beat tracker is librosa's (``librosa.beat.beat_track``); the key is the
major or minor key whose Krumhansl-Kessler profile correlates best with the
track's mean chroma (``librosa.feature.chroma_stft``).  A minor key is stored
as its relative major's tonic, since a voice in A minor sits over an
accompaniment in C major as well as over one in A minor.  librosa is needed
only to train with a recipe whose ``coherent`` share is above zero
(``pip install 'vocalsep[train]'``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .._atomic import write_text
from ..audio import resample
from ..errors import ConfigError

ANALYSIS_RATE = 22050
VERSION = "music-v1"

# Krumhansl & Kessler's key profiles (C major, C minor)
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _librosa():
    try:
        import librosa
    except ImportError:
        raise ConfigError("a recipe with 'coherent' > 0 needs librosa (tempo and key): pip install 'vocalsep[train]'") from None
    return librosa


def key_of_chroma(chroma: np.ndarray) -> tuple[int, str, float]:
    """(tonic pitch class 0-11 with C = 0, "major" or "minor", correlation) of a mean chroma vector."""
    best = (0, "major", -2.0)
    c = chroma - chroma.mean()
    if not np.any(c):
        return 0, "major", 0.0
    for mode, prof in (("major", _MAJOR), ("minor", _MINOR)):
        for tonic in range(12):
            p = np.roll(prof, tonic)
            r = float(np.corrcoef(c, p - p.mean())[0, 1])
            if r > best[2]:
                best = (tonic, mode, r)
    return best


def analyse(x: np.ndarray, rate: int) -> dict:
    """Tempo (BPM), beat times (seconds) and key of float32 audio ``(channels, samples)`` at ``rate``.

    ``key`` is the pitch class of the tonic of the key's relative major (C = 0); ``tempo`` is 0 and
    ``beats`` empty where the tracker finds no beat (silence, a very short track)."""
    librosa = _librosa()
    y = resample(np.asarray(x, np.float32).mean(axis=0, keepdims=True), rate, ANALYSIS_RATE)[0]
    out = {"tempo": 0.0, "beats": [], "key": 0, "mode": "major", "key_strength": 0.0}
    if y.size < ANALYSIS_RATE or not np.any(np.abs(y) > 1e-4):
        return out
    tempo, beats = librosa.beat.beat_track(y=y, sr=ANALYSIS_RATE, hop_length=512, units="time")
    tempo = float(np.atleast_1d(tempo)[0]) if len(beats) >= 2 else 0.0
    chroma = librosa.feature.chroma_stft(y=y, sr=ANALYSIS_RATE, n_fft=4096, hop_length=2048).mean(axis=1)
    tonic, mode, strength = key_of_chroma(chroma)
    out.update(tempo=round(tempo, 3), beats=[round(float(b), 4) for b in beats],
               key=(tonic + 3) % 12 if mode == "minor" else tonic, mode=mode, key_strength=round(strength, 4))
    return out


def cached_analysis(folder: Path, parts: dict[str, np.ndarray], rate: int) -> dict:
    """The analysis of a cached track (``parts``: its stems at ``rate``), stored in ``folder``.

    A track with both stems is analysed as its mixture (voice and accompaniment share its beats and
    key); a track of one part as that part."""
    path = folder / f"{VERSION}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    n = min(x.shape[-1] for x in parts.values())
    mix = None
    for x in parts.values():
        x = np.asarray(x[:, :n], np.float32).mean(axis=0, keepdims=True)
        mix = x if mix is None else mix + x
    facts = analyse(mix, rate) if mix is not None else analyse(np.zeros((1, 0), np.float32), rate)
    write_text(path, json.dumps(facts))
    return facts


def shift_to_match(voice: dict, accompaniment: dict, max_semitones: float, tempo_tolerance: float) -> int | None:
    """The semitones the voice must be sped up by (resampled: pitch and tempo move together) to sit
    in the accompaniment's key with a tempo within ``tempo_tolerance`` of the accompaniment's (or of
    its double or half); None when no shift within ``max_semitones`` does both."""
    tv, ta = voice["tempo"], accompaniment["tempo"]
    if tv <= 0 or ta <= 0 or len(voice["beats"]) < 2 or len(accompaniment["beats"]) < 2:
        return None
    s = (accompaniment["key"] - voice["key"] + 6) % 12 - 6
    if abs(s) > max_semitones:
        return None
    ratio = tv * 2 ** (s / 12) / ta
    octave = 2.0 ** round(math.log2(ratio))
    return s if abs(ratio / octave - 1) <= tempo_tolerance else None
