"""A synthetic catalogue with known answers, to measure mining: tests and benchmarks.

:func:`build_catalogue` turns songs with separate voice and accompaniment
(e.g. MIR-1K) into a catalogue a user could have: for each song an
*original* (voice + accompaniment, FLAC) and, for most songs, an
*instrumental* (the accompaniment alone, shifted by a random offset, scaled
by a random gain, re-encoded as MP3) with a title in one of several marker
styles and languages and an artist name written differently; plus
distractors, two per song in turn (:data:`DISTRACTORS`): live versions,
remixes, a cappellas, an extended instrumental (different duration), a copy of
the original, "instrumentals" that are the original (decoded-identical or
re-encoded), an unrelated accompaniment under a similar title and a
re-recorded karaoke version (1 % slower).  ``truth.json`` records what each
entry is.

:func:`score_mining` compares a mined ``pairs.csv`` with the truth: precision
and recall of the pairs, offset error (ms), gain error (dB), and the SDR of
the derived vocal target ``max(|X| - |Y|, 0)`` (mixture phase, the paper's
STFT at 8192 Hz) against the true voice.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AudioWriter, load, resample, save

ADJECTIVES = ("Golden", "Silent", "Broken", "Electric", "Midnight", "Paper", "Crimson", "Hollow", "Velvet", "Northern", "Falling",
              "Quiet", "Wild", "Glass", "Distant", "Burning", "Frozen", "Secret", "Lonely", "Summer")
NOUNS = ("River", "Harbor", "Mirror", "Garden", "Highway", "Lantern", "Ocean", "Thunder", "Window", "Compass", "Orchard", "Satellite",
         "Canyon", "Letter", "Balloon", "Shadow", "Island", "Signal", "Meadow", "Station")
MARKER_STYLES = ("{} (Instrumental)", "{} - Instrumental Version", "{} (Inst.)", "{} (Karaoke Version)", "{} [Off Vocal]",
                 "{} (Version instrumentale)", "{} (伴奏)", "{} (Versión Instrumental)")
DISTRACTORS = ("live", "remix", "acappella", "extended_instrumental", "duplicate_original", "decoded_identical", "reencoded_identical",
               "similar_title", "rerecorded")


@dataclass
class Song:
    """A song with known sources: float32 ``(channels, samples)`` at ``rate``."""

    name: str
    artist: str
    voice: np.ndarray
    accompaniment: np.ndarray
    rate: int


def _artist_variant(artist: str, k: int) -> str:
    accented = artist.replace("e", "é", 1) if "e" in artist else artist.replace("a", "á", 1)
    return (artist, artist.upper(), f"{artist} feat. Guest", accented, f"The {artist}")[k % 5]


def _titles(count: int, rng: np.random.Generator) -> list[str]:
    """Distinct two-word titles; no two share a word (so none match fuzzily by accident) for up to 20 songs."""
    adjectives, nouns = rng.permutation(ADJECTIVES), rng.permutation(NOUNS)
    return [f"{adjectives[i % len(ADJECTIVES)]} {nouns[(i + i // len(NOUNS)) % len(NOUNS)]}" + (f" {i // len(NOUNS) + 1}" if i >= len(NOUNS) else "")
            for i in range(count)]


def _shifted(x: np.ndarray, lag: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` lagging by ``lag`` samples (a faint count-in in front, or the start cut), same length."""
    if lag >= 0:
        lead = (1e-4 * rng.standard_normal((x.shape[0], lag))).astype(np.float32)
        return np.concatenate([lead, x], axis=1)[:, : x.shape[1]]
    return np.pad(x[:, -lag:], ((0, 0), (0, -lag)))


def _mp3(path: Path, x: np.ndarray, rate: int, bitrate: int) -> None:
    with AudioWriter(path, rate, x.shape[0], fmt="mp3", bitrate=bitrate) as w:
        w.write(x)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // x.shape[1])
    return np.tile(x, (1, reps))[:, :n]


class _Catalogue:
    """Writes audio files and collects catalogue rows and their truth."""

    def __init__(self, folder: Path, rate: int, bitrate: int):
        self.folder, self.rate, self.bitrate = folder, rate, bitrate
        (folder / "audio").mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.entries: list[dict] = []

    def add(self, artist: str, title: str, album: str, audio: np.ndarray | Path, fmt: str, role: str, song: str) -> int:
        index = len(self.rows) + 1
        path = self.folder / "audio" / f"{index:03d}-{role}.{fmt}"
        if isinstance(audio, Path):
            shutil.copyfile(audio, path)
            frames = load(path)[0].shape[1]
        elif fmt == "mp3":
            _mp3(path, audio, self.rate, self.bitrate)
            frames = audio.shape[1]
        else:
            save(path, audio, self.rate)
            frames = audio.shape[1]
        seconds = frames / self.rate
        duration = f"{int(seconds // 60)}:{int(round(seconds % 60)):02d}" if index % 3 == 0 else f"{seconds:.1f}"
        self.rows.append({"artist": artist, "title": title, "album": album, "duration": duration, "path": path.relative_to(self.folder).as_posix()})
        self.entries.append({"index": index, "role": role, "song": song, "path": str(path.resolve())})
        return index


def _distractor(cat: _Catalogue, kind: str, song: Song, title: str, mix: np.ndarray, acc: np.ndarray, other: np.ndarray,
                original_path: Path, rng: np.random.Generator) -> None:
    r = song.rate
    a = song.artist
    if kind == "live":
        live = resample(mix, r, int(r * 1.03))
        live = live + (0.01 * rng.standard_normal(live.shape)).astype(np.float32)
        cat.add(a, f"{title} (Live)", "Live at the Arena", live, "flac", kind, song.name)
    elif kind == "remix":
        cat.add(a, f"{title} (Club Remix)", "Remixes", np.flip(acc, axis=1) * 0.5 + mix * 0.5, "mp3", kind, song.name)
    elif kind == "acappella":
        cat.add(a, f"{title} (A Cappella)", "Stems", mix - acc, "mp3", kind, song.name)
    elif kind == "extended_instrumental":
        cat.add(a, f"{title} (Instrumental)", "Extended Edition", np.concatenate([acc, acc[:, : 8 * r]], axis=1), "mp3", kind, song.name)
    elif kind == "duplicate_original":
        cat.add(a, title, "Greatest Hits", original_path, "flac", kind, song.name)
    elif kind == "decoded_identical":
        cat.add(a, f"{title} (Instrumental)", "Bonus", load(original_path)[0], "wav", kind, song.name)
    elif kind == "reencoded_identical":
        cat.add(a, f"{title} (Karaoke Version)", "Karaoke Hits", mix, "mp3", kind, song.name)
    elif kind == "similar_title":
        cat.add(a, f"{title}s (Instrumental)", "B-Sides", _fit(other, acc.shape[1]), "mp3", kind, song.name)
    elif kind == "rerecorded":
        slow = resample(acc, r, int(round(r * 1.01)))
        cat.add(a, f"{title} (Karaoke Version)", "Sing Along Vol. 3", slow, "mp3", kind, song.name)
    else:
        raise ValueError(f"unknown distractor kind {kind!r}")


def build_catalogue(songs: list[Song], folder: str | Path, *, seed: int = 0, max_offset: float = 3.0, gain_db: tuple[float, float] = (-6.0, 3.0),
                    bitrate: int = 64, distractors: bool = True, without_instrumental_every: int = 6) -> dict:
    """Write ``folder/catalog.csv``, ``folder/audio/*``, ``folder/truth/*-voice.wav`` and ``folder/truth.json``.

    Every ``without_instrumental_every``-th song gets no instrumental (only
    distractors).  Offsets are uniform in ``+-max_offset`` seconds (whole
    samples), gains uniform in ``gain_db`` (dB), MP3s at ``bitrate`` kbit/s.
    Returns the truth: ``entries`` (index, role, song, path) and ``pairs``
    (per song with an instrumental: original and instrumental indices,
    ``offset`` s and ``gain`` in the :class:`PairManifest` convention, the
    voice file).
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    cat = _Catalogue(folder, songs[0].rate, bitrate)
    titles = _titles(len(songs), rng)
    pairs = {}
    for i, (song, title) in enumerate(zip(songs, titles)):
        if song.rate != cat.rate:
            raise ValueError(f"{song.name}: all songs need the same rate ({cat.rate} Hz), not {song.rate}")
        scale = min(1.0, 0.9 / max(float(np.abs(song.voice + song.accompaniment).max()), 1e-9))
        voice, acc = song.voice * scale, song.accompaniment * scale
        mix = voice + acc
        orig = cat.add(song.artist, title, "Album", mix, "flac", "original", song.name)
        voice_path = save(folder / "truth" / f"{song.name}-voice.wav", voice, song.rate, bit_depth="float")
        if without_instrumental_every and i % without_instrumental_every == without_instrumental_every - 1:
            pass
        else:
            lag = int(round(rng.uniform(-max_offset, max_offset) * song.rate))
            g = min(10 ** (rng.uniform(*gain_db) / 20), 0.95 / max(float(np.abs(acc).max()), 1e-9))
            inst = cat.add(_artist_variant(song.artist, i), MARKER_STYLES[i % len(MARKER_STYLES)].format(title), "Album (Instrumentals)",
                           _shifted(acc * g, lag, rng), "mp3", "instrumental", song.name)
            pairs[song.name] = {"original": orig, "instrumental": inst, "offset": lag / song.rate, "gain": 1.0 / g,
                                "voice": str(voice_path.resolve()), "accompaniment_scale": scale}
        if distractors:
            other = songs[(i + 1) % len(songs)].accompaniment * scale
            original_path = folder / cat.rows[orig - 1]["path"]
            for kind in (DISTRACTORS[(2 * i) % len(DISTRACTORS)], DISTRACTORS[(2 * i + 1) % len(DISTRACTORS)]):
                _distractor(cat, kind, song, title, mix, acc, other, original_path, rng)
    with open(folder / "catalog.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["artist", "title", "album", "duration", "path"])
        writer.writeheader()
        writer.writerows(cat.rows)
    truth = {"entries": cat.entries, "pairs": pairs, "rate": cat.rate, "bitrate": bitrate}
    (folder / "truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False), encoding="utf-8")
    return truth


# -- scoring

def vocal_target(mixture: np.ndarray, accompaniment: np.ndarray, preset=None) -> np.ndarray:
    """The paper's vocal target from a pair as a waveform: ``max(|X| - |Y|, 0)`` with the mixture's phase.

    ``mixture``, ``accompaniment``: ``(channels, samples)`` at the preset's
    rate (8192 Hz for jansson2017), compared as mono mixes.  Returns ``(samples,)``.
    """
    import torch

    from ..config import get_preset
    from ..spectral import STFT

    preset = preset or get_preset("jansson2017")
    stft = STFT(preset.n_fft, preset.hop)
    n = min(mixture.shape[1], accompaniment.shape[1])
    X = stft.forward(torch.from_numpy(np.ascontiguousarray(mixture[:, :n].mean(axis=0), dtype=np.float32)))
    Y = stft.forward(torch.from_numpy(np.ascontiguousarray(accompaniment[:, :n].mean(axis=0), dtype=np.float32)))
    V = (X.abs() - Y.abs()).clamp_min(0) * torch.exp(1j * X.angle())
    return stft.inverse(V, n).numpy()


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Plain signal-to-distortion ratio in dB, ``10 log10(|s|^2 / |s - s_hat|^2)``, over the common length (no BSS Eval projection)."""
    n = min(reference.shape[-1], estimate.shape[-1])
    s, e = reference[..., :n].astype(np.float64), estimate[..., :n].astype(np.float64)
    return float(10 * math.log10(np.sum(s**2) / max(np.sum((s - e) ** 2), 1e-30)))


def _true_tracks(truth: dict, songs: list[str]) -> dict:
    """The tracks of a manifest with the true offsets and gains of ``songs``, by song (opened with PairManifest)."""
    import tempfile

    from ..data.datasets import PairManifest

    entries = {e["index"]: e for e in truth["entries"]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "true-pairs.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["original", "instrumental", "offset", "gain", "title"])
            for song in songs:
                p = truth["pairs"][song]
                writer.writerow([entries[p["original"]]["path"], entries[p["instrumental"]]["path"], repr(p["offset"]), repr(p["gain"]), song])
        return dict(zip(songs, PairManifest(path).tracks)) if songs else {}


def _pair_sdrs(mined, exact, truth_pair: dict, original: str, rate: int) -> dict:
    """SDR (dB) of the derived target against the true voice: with the mined alignment, with the
    true alignment of the same files, and with the clean accompaniment (the ceiling of the rule)."""
    voice, vr = load(truth_pair["voice"])
    voice = resample(voice, vr, rate).mean(axis=0)
    result = {}
    for name, track in (("sdr_mined", mined), ("sdr_true_alignment", exact)):
        x = track.load(rate)
        result[name] = sdr(voice, vocal_target(x["mixture"], x["accompaniment"]))
    mix, mr = load(original)
    mix = resample(mix, mr, rate)
    result["sdr_clean_accompaniment"] = sdr(voice, vocal_target(mix, mix - voice[None, : mix.shape[1]]))
    return result


def score_mining(out: str | Path, truth: dict, *, rate: int = 8192, with_sdr: bool = True) -> dict:
    """Precision, recall, alignment and target errors of ``out/pairs.csv`` against ``truth``.

    A mined pair is correct when its instrumental is a song's true
    instrumental and its original is that song's original (or a copy of it);
    a second pair for the same song counts as wrong.  Offsets: found minus
    true, in ms; gains: found over true, in dB.
    """
    from ..data.datasets import PairManifest

    out = Path(out)
    by_path = {e["path"]: e for e in truth["entries"]}
    entries = {e["index"]: e for e in truth["entries"]}
    with open(out / "pairs.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    tracks = PairManifest(out / "pairs.csv").tracks if rows else []
    found, per_pair, wrong = set(), [], []
    for row, track in zip(rows, tracks):
        o = by_path.get(str((out / row["original"]).resolve()), {})
        i = by_path.get(str((out / row["instrumental"]).resolve()), {})
        song = i.get("song")
        ok = i.get("role") == "instrumental" and o.get("role") in ("original", "duplicate_original") and o.get("song") == song and song not in found
        if not ok:
            wrong.append({"original": o.get("role"), "instrumental": i.get("role"), "song": song})
            continue
        found.add(song)
        tp = truth["pairs"][song]
        per_pair.append({"song": song, "offset_error_ms": 1000 * (float(row["offset"]) - tp["offset"]),
                         "gain_error_db": 20 * math.log10(float(row["gain"]) / tp["gain"]), "track": track})
    exact = _true_tracks(truth, [p["song"] for p in per_pair]) if with_sdr else {}
    for item in per_pair:
        track = item.pop("track")
        if with_sdr:
            tp = truth["pairs"][item["song"]]
            item.update(_pair_sdrs(track, exact[item["song"]], tp, entries[tp["original"]]["path"], rate))
    expected = len(truth["pairs"])
    return {"pairs_found": len(rows), "correct": len(per_pair), "expected": expected,
            "precision": len(per_pair) / len(rows) if rows else float("nan"), "recall": len(per_pair) / expected if expected else float("nan"),
            "wrong": wrong, "missed": sorted(set(truth["pairs"]) - found), "per_pair": per_pair}
