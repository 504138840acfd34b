"""A synthetic catalogue with known answers, to measure mining: tests and benchmarks.

:func:`build_catalogue` turns songs with separate voice and accompaniment
(e.g. MIR-1K) into a catalogue a user could have: for each song an
*original* (voice + accompaniment, FLAC; every third title in another
language or script) and, for most songs, an *instrumental* (the
accompaniment alone, shifted by a random offset, scaled by a random gain,
re-encoded as MP3) with a title in one of the styles real catalogues use
(:data:`MARKER_STYLES`: Instrumental Mix/Version, Karaoke Version, Backing
Track, Minus One, Off Vocal, Inst., Instr., MR, オフボーカル, カラオケ,
インスト, 伴奏, 纯音乐, 반주, and Spanish, French, German, Portuguese,
Italian and Russian forms) and an artist name written differently; plus
distractors, two per song in turn (:data:`DISTRACTORS`: live versions, remixes, a cappellas,
copies, look-alike instrumentals, edits, titles in other languages).  ``truth.json`` records what each entry is.
``forms="basic"`` builds a smaller catalogue: 8 title styles, the first 9
distractors, no song titles in other languages.

:func:`title_catalogue` is the metadata alone, at a larger scale: catalogue
entries without audio and the true pairs, for the metadata stage
(:func:`~vocalsep.mining.match.find_candidates`) with :func:`score_candidates`.

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
# forms="basic": a smaller catalogue of fewer title styles and distractors
BASIC_MARKER_STYLES = ("{} (Instrumental)", "{} - Instrumental Version", "{} (Inst.)", "{} (Karaoke Version)", "{} [Off Vocal]",
                       "{} (Version instrumentale)", "{} (伴奏)", "{} (Versión Instrumental)")
BASIC_DISTRACTORS = ("live", "remix", "acappella", "extended_instrumental", "duplicate_original", "decoded_identical", "reencoded_identical",
                     "similar_title", "rerecorded")
# forms="all" (the default): how real catalogues write instrumentals, in several languages and scripts
MARKER_STYLES = (
    "{} (Instrumental)", "{} (Instrumental Mix)", "{} - Instrumental Version", "{} (Karaoke Version)", "{} [Off Vocal]", "{} (Inst.)",
    "{} (Backing Track)", "{} (Minus One)", "{} (オフボーカル)", "{} (伴奏)", "{} (MR)", "{} (Versión Instrumental)",
    "{} (Version instrumentale)", "{} (Instrumentalversion)", "{} (Versão Instrumental)", "{} (Versione Strumentale)", "{} (Instr.)",
    "{} -off vocal-", "{} (カラオケ)", "{} (インスト)", "{} (纯音乐)", "{} (반주)", "{} (Inst. Ver.)", "{} (Off Vocal Ver.)",
    "{} [Instrumental]", "{} - Karaoke", "{} (Karaoke-Version)", "{} (Playback)", "{} (Base Musicale)", "{} (Минусовка)",
    "{} (オリジナル・カラオケ)", "{} (伴奏版)", "{} Instrumental", "{}〜Instrumental〜", "{} (No Vocals)", "{} (Sin Voz)",
    "{} (Instrumental Ver.)", "{} (MR Ver.)", "{} (純音樂)", "{} (Instrumental Version)",
)
DISTRACTORS = BASIC_DISTRACTORS + ("instrumental_remix", "tv_size", "acappella_script", "live_language", "tv_size_instrumental")
# titles in other languages and scripts, given to every third song with forms="all"
NATIVE_TITLES = ("夜に駆ける", "잃어버린 별", "Ночной город", "Canción del Río", "Chanson d'Été", "Lied vom Meer", "Canção da Noite",
                 "Canzone del Vento", "追风的孩子", "月光の街", "바람의 노래", "Зимний сад", "Señales de Humo", "Über den Wolken",
                 "青い鳥", "春の雨", "노을 진 하늘", "Café Lumière", "Corazón Partido", "Città Vuota")
FORMS = ("basic", "all")


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


def _native_title(k: int) -> str:
    """The ``k``-th title of :data:`NATIVE_TITLES`, numbered once they are used up (numbers keep titles apart)."""
    n = len(NATIVE_TITLES)
    return NATIVE_TITLES[k % n] + (f" {k // n + 1}" if k >= n else "")


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
    elif kind == "instrumental_remix":  # the instrumental of a remix: not the original's
        cat.add(a, f"{title} (Club Remix) [Instrumental]", "Remixes", np.flip(acc, axis=1) * 0.5 + acc * 0.5, "mp3", kind, song.name)
    elif kind == "tv_size":  # a shorter edit of the original
        cat.add(a, f"{title} (TV Size)", "Anime Edits", mix[:, : mix.shape[1] * 3 // 5], "flac", kind, song.name)
    elif kind == "tv_size_instrumental":  # the instrumental of that edit (never with its original here)
        cat.add(a, f"{title} (TV Size Off Vocal)", "Anime Edits", acc[:, : acc.shape[1] * 3 // 5], "mp3", kind, song.name)
    elif kind == "acappella_script":
        cat.add(a, f"{title} (アカペラ)", "Stems", mix - acc, "mp3", kind, song.name)
    elif kind == "live_language":
        live = resample(mix, r, int(r * 1.02))
        cat.add(a, f"{title} (En Vivo)", "En Vivo", live, "flac", kind, song.name)
    else:
        raise ValueError(f"unknown distractor kind {kind!r}")


def build_catalogue(songs: list[Song], folder: str | Path, *, seed: int = 0, max_offset: float = 3.0, gain_db: tuple[float, float] = (-6.0, 3.0),
                    bitrate: int = 64, distractors: bool = True, without_instrumental_every: int = 6, forms: str = "all") -> dict:
    """Write ``folder/catalog.csv``, ``folder/audio/*``, ``folder/truth/*-voice.wav`` and ``folder/truth.json``.

    Every ``without_instrumental_every``-th song gets no instrumental (only
    distractors).  Offsets are uniform in ``+-max_offset`` seconds (whole
    samples), gains uniform in ``gain_db`` (dB), MP3s at ``bitrate`` kbit/s.
    ``forms``: ``"all"`` (the instrumental title styles of :data:`MARKER_STYLES`,
    the distractors of :data:`DISTRACTORS`, every third title in another
    language or script) or ``"basic"`` (:data:`BASIC_MARKER_STYLES`, :data:`BASIC_DISTRACTORS`).
    Returns the truth: ``entries`` (index, role, song, path) and ``pairs``
    (per song with an instrumental: original and instrumental indices,
    ``offset`` s and ``gain`` in the :class:`PairManifest` convention, the
    voice file).
    """
    if forms not in FORMS:
        raise ValueError(f"forms must be one of {FORMS}, not {forms!r}")
    styles, kinds = (MARKER_STYLES, DISTRACTORS) if forms == "all" else (BASIC_MARKER_STYLES, BASIC_DISTRACTORS)
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    cat = _Catalogue(folder, songs[0].rate, bitrate)
    titles = _titles(len(songs), rng)
    if forms == "all":
        titles = [_native_title(i // 3) if i % 3 == 1 else t for i, t in enumerate(titles)]
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
            style = styles[(len(pairs) if forms == "all" else i) % len(styles)]  # "all": every style in turn, none skipped
            inst = cat.add(_artist_variant(song.artist, i), style.format(title), "Album (Instrumentals)",
                           _shifted(acc * g, lag, rng), "mp3", "instrumental", song.name)
            pairs[song.name] = {"original": orig, "instrumental": inst, "offset": lag / song.rate, "gain": 1.0 / g,
                                "voice": str(voice_path.resolve()), "accompaniment_scale": scale}
        if distractors:
            other = songs[(i + 1) % len(songs)].accompaniment * scale
            original_path = folder / cat.rows[orig - 1]["path"]
            for kind in (kinds[(2 * i) % len(kinds)], kinds[(2 * i + 1) % len(kinds)]):
                _distractor(cat, kind, song, title, mix, acc, other, original_path, rng)
    with open(folder / "catalog.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["artist", "title", "album", "duration", "path"])
        writer.writeheader()
        writer.writerows(cat.rows)
    truth = {"entries": cat.entries, "pairs": pairs, "rate": cat.rate, "bitrate": bitrate}
    (folder / "truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False), encoding="utf-8")
    return truth


# -- the metadata alone, at scale

FIRST_NAMES = ("Amy", "Leon", "Ariel", "Mika", "Sakura", "Jun", "Min-ji", "Wei", "Olga", "José", "Élodie", "Jürgen", "João", "Giulia",
               "Noah", "Chloé", "Kaito", "Sofía", "Ivan", "Hana")
LAST_NAMES = ("Lane", "Park", "Sato", "Tanaka", "Kim", "Wang", "Petrova", "Álvarez", "Martin", "Weiß", "Silva", "Rossi", "Brown",
              "Dubois", "Nakamura", "López", "Ivanov", "Lee", "Moreau", "Fischer")
NATIVE_ARTISTS = ("米津玄師", "宇多田ヒカル", "아이유", "방탄소년단", "周杰倫", "王菲", "Кино", "Земфира")
WORDS_A = ADJECTIVES + ("Neon", "Silver", "Endless", "Hidden", "Scarlet", "Gentle", "Restless", "Paper", "Empty", "Bright")
WORDS_B = NOUNS + ("Promise", "Horizon", "Echo", "Ember", "Fountain", "Voyage", "Anthem", "Parade", "Lullaby", "Memory")
ORIGINAL_EXTRAS = ("", "", "", " (feat. Guest)", " (Album Version)", " - Single Version", " (Original Mix)", " [Explicit]")
TITLE_FORMS = {
    "live": ("{} (Live)", "{} - Live at the Arena", "{} (En Vivo)", "{} (Ao Vivo)", "{} (Live in Tokyo)", "{} (라이브)", "{} (现场版)"),
    "remix": ("{} (Club Remix)", "{} (Remix)", "{} (Dub Mix)", "{} (DJ Kaito Remix)", "{} (Club Mix)", "{} (リミックス)"),
    "remix_instrumental": ("{} (Club Remix) [Instrumental]", "{} (Remix) [Inst.]", "{} (Dub Mix Instrumental)", "{} (DJ Kaito Remix) [Off Vocal]",
                           "{} (Club Mix) (Karaoke Version)", "{} (リミックス) (インスト)"),
    "acappella": ("{} (A Cappella)", "{} (Acapella)", "{} (Vocals Only)", "{} (アカペラ)", "{} (清唱版)", "{} [Acapella Version]"),
    "acoustic": ("{} (Acoustic)", "{} (Unplugged)", "{} (Acoustic Version)", "{} (Versión Acústica)"),
    "demo": ("{} (Demo)", "{} - Demo Version"),
    "remaster": ("{} (2011 Remaster)", "{} - Remastered 2011"),
    "edit": ("{} (Radio Edit)", "{} (Extended Mix)", "{} (Short Ver.)"),
    "tv": ("{} (TV Size)", "{} (TVサイズ)", "{} (TV Ver.)"),
    "tv_instrumental": ("{} (TV Size Off Vocal)", "{} (TV Size) (Instrumental)", "{} (TVサイズ) (オフボーカル)", "{} (TV Ver.) (Inst.)"),
}


def _song_titles(count: int, rng: np.random.Generator, native: bool) -> list[str]:
    """``count`` titles that share no word, in English or (``native``) in other languages and scripts."""
    if native:
        order = rng.permutation(len(NATIVE_TITLES))
        return [NATIVE_TITLES[k] for k in order[:count]]
    a, b = rng.permutation(WORDS_A), rng.permutation(WORDS_B)
    return [f"{a[k]} {b[k]}" for k in range(count)]


def title_catalogue(artists: int = 200, songs: int = 6, *, seed: int = 0) -> tuple[list, dict]:
    """A catalogue of metadata without audio: ``(entries, truth)``.

    Each artist (a name in one of several scripts) has ``songs`` songs; each song an original (150 to
    300 s) and, for most, an instrumental in a random style of :data:`MARKER_STYLES` credited to a
    variant of the artist's name, lasting the same up to 1.5 s.  Distractors of the same artist, at
    random, last about as long as the original, so that only their titles keep them apart: live
    versions, remixes, a cappellas, acoustic versions, demos, remasters, edits, and a song numbered
    "2".  A remix may have its own instrumental and a TV-size edit its own off-vocal version: those are
    true pairs too.  ``truth["pairs"]``: the true ``(original, instrumental)`` entry indices.
    """
    from .catalog import Entry

    rng = np.random.default_rng(seed)
    entries: list[Entry] = []
    roles: list[str] = []
    pairs: list[tuple[int, int]] = []

    def add(artist: str, title: str, duration: float, role: str) -> int:
        index = len(entries) + 1
        entries.append(Entry(index, artist, title, Path(f"/catalogue/{index:05d}.mp3"), round(float(duration), 1)))
        roles.append(role)
        return index

    def near(d: float) -> float:
        return d + rng.uniform(-1.5, 1.5)

    for a in range(artists):
        if a % 10 == 9:
            artist = NATIVE_ARTISTS[(a // 10) % len(NATIVE_ARTISTS)] + (f" {a // 80 + 1}" if a >= 80 else "")
        else:
            artist = f"{FIRST_NAMES[a % len(FIRST_NAMES)]} {LAST_NAMES[(a // len(FIRST_NAMES) + a) % len(LAST_NAMES)]}"
            if a >= len(FIRST_NAMES) * len(LAST_NAMES):
                artist += f" {a}"
        for k, title in enumerate(_song_titles(songs, rng, native=a % 4 == 1)):
            d = rng.uniform(150, 300)
            # the original as catalogues write it: a guest, a neutral qualifier, the apostrophe dropped on one side
            shown = title + ORIGINAL_EXTRAS[int(rng.integers(len(ORIGINAL_EXTRAS)))]
            original = add(artist, shown, d, "original")
            if rng.random() < 0.85:
                style = MARKER_STYLES[int(rng.integers(len(MARKER_STYLES)))]
                name = title.replace("'", "") if rng.random() < 0.3 else title
                pairs.append((original, add(_artist_variant(artist, int(rng.integers(5))), style.format(name), near(d), "instrumental")))
            if rng.random() < 0.03:  # another song of the artist with a nearly identical title ("Love Song" / "Love Songs")
                add(artist, title + "s", rng.uniform(150, 300), "similar_title")
            for kind in ("live", "acappella", "acoustic", "demo", "remaster", "edit"):
                if rng.random() < 0.25:
                    forms = TITLE_FORMS[kind]
                    add(artist, forms[int(rng.integers(len(forms)))].format(title), near(d), kind)
            if rng.random() < 0.3:
                i = int(rng.integers(len(TITLE_FORMS["remix"])))
                dr = rng.uniform(150, 400)
                remix = add(artist, TITLE_FORMS["remix"][i].format(title), dr, "remix")
                if rng.random() < 0.5:
                    pairs.append((remix, add(artist, TITLE_FORMS["remix_instrumental"][i].format(title), near(dr), "remix_instrumental")))
            if rng.random() < 0.15:
                i = int(rng.integers(len(TITLE_FORMS["tv"])))
                dt = rng.uniform(88, 92)
                tv = add(artist, TITLE_FORMS["tv"][i].format(title), dt, "tv")
                if rng.random() < 0.7:
                    form = TITLE_FORMS["tv_instrumental"][int(rng.integers(len(TITLE_FORMS["tv_instrumental"])))]
                    pairs.append((tv, add(artist, form.format(title), near(dt), "tv_instrumental")))
            if rng.random() < 0.05:  # another song of the artist, the same title numbered
                add(artist, f"{title} 2", near(d), "sequel")
    truth = {"pairs": pairs, "roles": roles}
    return entries, truth


def score_candidates(candidates, truth: dict) -> dict:
    """Precision and recall of metadata candidates (:class:`~vocalsep.mining.match.Candidate`) against
    :func:`title_catalogue`'s true pairs, and the wrong and missed ones (titles)."""
    true = set(map(tuple, truth["pairs"]))
    found = {(c.original.index, c.instrumental.index): c for c in candidates}
    right = true & set(found)
    wrong = [f"{c.original.title!r} + {c.instrumental.title!r}" for key, c in sorted(found.items()) if key not in true]
    return {"candidates": len(found), "correct": len(right), "true_pairs": len(true),
            "precision": len(right) / len(found) if found else float("nan"), "recall": len(right) / len(true) if true else float("nan"),
            "wrong": wrong, "missed": sorted(true - set(found))}


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
