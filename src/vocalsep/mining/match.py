"""Candidate (original, instrumental) pairs from metadata alone, as in the paper.

An *instrumental* is a catalogue entry whose title carries an instrumental
marker ("Instrumental", "Instrumental Mix", "(Inst.)", "Karaoke Version",
"Off Vocal", "Backing Track", "Minus One", "オフボーカル", "伴奏", "(MR)"...);
an *original* is one that carries none.  A candidate pair is an instrumental
and an original with

1. the same artist once normalised (:func:`normalise_artist`: case, accents,
   "feat." clauses, punctuation, a leading "The");
2. titles that match fuzzily (rapidfuzz ``ratio`` of the normalised titles,
   marker removed, at least ``title_threshold`` out of 100) and hold the same
   numbers ("Part 2" is not "Part 3");
3. durations within ``duration_tolerance`` seconds;
4. the same *look-alike tags*: a live version, a remix, an acoustic version, a
   cappella, an edit (a radio edit, an extended or a TV-size version), a demo,
   a remaster of a given year are not the same recording as the studio
   original, so "Song (Live)" never pairs with "Song (Instrumental)".  Tags
   listed in ``allow`` are ignored.

A bracketed (or dash-separated) qualifier that holds a marker marks the title
instrumental and adds its look-alike tags ("(Club Remix Instrumental)": a
remix); its other words ("Mix", "Ver.") are not part of the compared title.

Everything works on text folded by :func:`fold` (Unicode NFKD, accents and
punctuation dropped, case folded), so markers and patterns are written in
that form.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from .catalog import Entry

# Folded phrases, longest first when matched.  Several languages: English,
# French, Spanish, Portuguese, Italian, German, Dutch, Russian, Japanese,
# Chinese, Korean.  A marker in parentheses, "(mr)", counts only as a whole
# qualifier (optionally followed by "ver"/"version"): "Song (MR)", never "(Mr. Oizo Remix)".
DEFAULT_MARKERS: tuple[str, ...] = (
    "instrumental version", "instrumental mix", "instrumental", "inst", "instr", "karaoke version", "karaoke", "karaokeversion",
    "off vocal", "backing track", "minus one", "no vocals", "no vocal", "without vocals", "without vocal", "playback",
    "version instrumentale", "sans voix", "version instrumental", "sin voz", "versao instrumental", "sem voz",
    "versione strumentale", "strumentale", "base musicale", "senza voce", "instrumentalversion", "ohne gesang", "instrumentaal",
    "инструментал", "минусовка", "(минус)", "インストゥルメンタル", "インスト", "オフボーカル", "オリジナルカラオケ", "カラオケ",
    "伴奏", "纯音乐", "純音樂", "卡拉ok", "반주", "(mr)",
)
# Markers that are also ordinary words ("Instant Playback"): they count inside brackets or after a
# dash, not at the end of a title's main text.
QUALIFIER_ONLY = ("inst", "instr", "playback", "base musicale")

# Look-alike tag -> folded regular expressions.  A title qualifier that matches
# gets the tag; the pair's tags must agree (unless allowed).
LOOKALIKES: dict[str, tuple[str, ...]] = {
    "live": (r"\blive\b", r"\ben vivo\b", r"\bao vivo\b", r"\ben directo\b", r"\ben concert\b", r"\bconcert\b"),
    "remix": (r"\bre ?mix(?:ed)?\b", r"\brework(?:ed)?\b", r"\bbootleg\b", r"\bmash ?up\b", r"\b(?!original\b|album\b)\w+ mix\b", r"\bdub\b"),
    "acoustic": (r"\bacoustic\b", r"\bunplugged\b", r"\bakustik\b", r"\bacustic[oa]\b", r"\bacoustique\b"),
    "acappella": (r"\ba ?cap+el+a\b", r"\bvocals? only\b", r"\bvoice only\b"),
    "edit": (r"\bedit\b", r"\bextended\b", r"\bshort ver(?:sion)?\b", r"\bradio version\b", r"\btv ?(?:size|ver(?:sion)?|edit|mix)\b"),
    "demo": (r"\bdemo\b",),
    "remaster": (r"\bremaster(?:ed)?\b",),
}
# Look-alike words of other scripts, matched as folded text anywhere in a qualifier.
LOOKALIKE_PHRASES: dict[str, tuple[str, ...]] = {
    "live": ("现场", "現場", "라이브"),
    "remix": ("リミックス", "混音", "리믹스"),
    "acoustic": ("アコースティック", "어쿠스틱"),
    "acappella": ("アカペラ", "清唱", "아카펠라"),
    "edit": ("tvサイズ",),
}
_YEAR = re.compile(r"\b(19|20)\d\d\b")
# Qualifiers that say nothing about the recording: dropped before comparing titles.
NEUTRAL = ("album version", "original version", "original mix", "main version", "single version", "explicit", "clean", "stereo")
_FEAT = re.compile(r"[\(\[]?\s*\b(?:feat|ft|featuring|featured)\b\.?[^\)\]]*[\)\]]?", re.IGNORECASE)
_BRACKETS = re.compile(r"[\(\[\{（【［〔]([^\)\]\}）】］〕]*)[\)\]\}）】］〕]")
_DASH = re.compile(r"\s+[-–—]\s+")
_WRAPPED = re.compile(r"(?:\s+[-~]|\s*[〜～])([^-~〜～]+)[-~〜～]\s*$")  # "Song -off vocal-", "Song〜Instrumental〜"
_NUMBER = re.compile(r"\d+")
_VERSION = re.compile(r"^(?:ver|version)?$")  # what may follow a whole-qualifier marker: "(MR ver.)"


def fold(text: str) -> str:
    """Lower-case ASCII-ish form: NFKD, accents dropped, '&' -> 'and', punctuation -> space."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = text.replace("&", " and ").replace("+", " and ")
    text = "".join(c if c.isalnum() else " " for c in text)
    return " ".join(text.split())


def normalise_artist(artist: str) -> str:
    """Artist key: "The Beatles feat. X" and "beatles" give the same key."""
    key = fold(_FEAT.sub(" ", artist))
    return key[4:] if key.startswith("the ") and len(key) > 4 else key


@dataclass(frozen=True)
class Title:
    """A parsed title: ``base`` (folded, marker and tags removed), ``instrumental``
    (a marker was found) and ``tags`` (look-alike tags, e.g. ``"live"``,
    ``"remaster:2011"``)."""

    base: str
    instrumental: bool
    tags: frozenset[str]


@dataclass(frozen=True)
class MatchConfig:
    """Thresholds of the metadata stage (see the module docstring).

    ``markers``: folded instrumental marker phrases; ``allow``: look-alike tags
    that do not prevent a pair; ``duration_tolerance``: seconds;
    ``title_threshold``: rapidfuzz ratio, 0-100.
    """

    markers: tuple[str, ...] = DEFAULT_MARKERS
    allow: frozenset[str] = frozenset()
    duration_tolerance: float = 2.0
    title_threshold: float = 90.0

    whole: tuple[str, ...] = field(init=False, default=())  # the "(...)" markers: whole qualifiers only

    def __post_init__(self):
        whole = tuple(sorted({fold(m) for m in self.markers if _is_whole(m) and fold(m)}))
        markers = tuple(sorted({fold(m) for m in self.markers if not _is_whole(m) and fold(m)}, key=len, reverse=True))
        if not markers and not whole:
            raise ConfigError("at least one instrumental marker is needed")
        object.__setattr__(self, "markers", markers)
        object.__setattr__(self, "whole", whole)
        object.__setattr__(self, "allow", frozenset(self.allow))
        unknown = sorted(self.allow - set(LOOKALIKES))
        if unknown:
            raise ConfigError(f"unknown look-alike tag(s) {unknown}; known: {', '.join(LOOKALIKES)}")
        if not self.duration_tolerance >= 0:
            raise ConfigError(f"duration tolerance must be >= 0 seconds, got {self.duration_tolerance}")
        if not 0 < self.title_threshold <= 100:
            raise ConfigError(f"title threshold must be in (0, 100], got {self.title_threshold}")

    def marker_pattern(self, trailing: bool = False) -> re.Pattern:
        """The markers as one pattern; ``trailing``: those that may end a title's main text unbracketed."""
        parts = []
        for m in self.markers:
            if trailing and m in _QUALIFIER_ONLY:
                continue
            left = r"(?<!\w)" if m[0].isascii() else ""
            right = r"(?!\w)" if m[-1].isascii() else ""
            parts.append(left + re.escape(m) + right)
        return re.compile("|".join(parts) or r"(?!)")

    def whole_marker(self, qualifier: str) -> bool:
        """Whether a folded qualifier is a whole-qualifier marker, optionally followed by "ver"/"version"."""
        return any(qualifier == m or (qualifier.startswith(m + " ") and _VERSION.match(qualifier[len(m) + 1 :])) for m in self.whole)

    def to_dict(self) -> dict:
        return {"markers": list(self.markers) + [f"({m})" for m in self.whole], "allow": sorted(self.allow),
                "duration_tolerance": self.duration_tolerance, "title_threshold": self.title_threshold}


def _is_whole(marker: str) -> bool:
    marker = marker.strip()
    return marker.startswith("(") and marker.endswith(")")


_QUALIFIER_ONLY = frozenset(fold(m) for m in QUALIFIER_ONLY)
_PHRASES = {tag: tuple(fold(p) for p in phrases) for tag, phrases in LOOKALIKE_PHRASES.items()}


def _segments(title: str) -> tuple[str, list[str]]:
    """(main text, qualifiers): bracketed parts, a part wrapped in dashes or tildes at the end
    ("Song -off vocal-") and the text after a spaced dash."""
    title = _FEAT.sub(" ", title)
    qualifiers = [m.group(1) for m in _BRACKETS.finditer(title)]
    main = _BRACKETS.sub(" ", title).rstrip()
    wrapped = _WRAPPED.search(main)
    if wrapped and main[: wrapped.start()].strip():
        qualifiers.append(wrapped.group(1))
        main = main[: wrapped.start()]
    parts = _DASH.split(main, maxsplit=1)
    if len(parts) == 2 and parts[1].strip():
        main = parts[0]
        qualifiers.append(parts[1])
    return main, qualifiers


def _tags(text: str) -> set[str]:
    found = set()
    for tag, patterns in LOOKALIKES.items():
        if any(re.search(p, text) for p in patterns) or any(p in text for p in _PHRASES.get(tag, ())):
            if tag == "remaster":
                year = _YEAR.search(text)
                found.add(f"remaster:{year.group(0)}" if year else "remaster")
            else:
                found.add(tag)
    return found


def parse_title(title: str, cfg: MatchConfig, _pattern_cache: dict = {}) -> Title:  # noqa: B006 - a cache
    """Split a title into its folded base, instrumental flag and look-alike tags."""
    patterns = _pattern_cache.get(cfg.markers)
    if patterns is None:
        patterns = _pattern_cache[cfg.markers] = (cfg.marker_pattern(), re.compile(rf"(?:{cfg.marker_pattern(trailing=True).pattern})$"))
    pattern, trailing = patterns
    main, qualifiers = _segments(title)
    main = fold(main)
    instrumental = False
    tags: set[str] = set()
    kept: list[str] = []
    for q in qualifiers:
        q = fold(q)
        stripped = pattern.sub(" ", q)
        marked = stripped != q or cfg.whole_marker(q)
        q = " ".join(stripped.split()) if not cfg.whole_marker(q) else ""
        own = _tags(q)
        tags |= own
        if marked:  # "(Instrumental Mix)", "(Off Vocal Ver.)": only its tags count, not its other words
            instrumental = True
        elif q and not own and q not in NEUTRAL and not _YEAR.fullmatch(q):
            kept.append(q)
    if not instrumental:  # "Song Instrumental": a trailing marker without brackets
        m = trailing.search(main)
        if m and main[: m.start()].strip():
            instrumental, main = True, main[: m.start()].strip()
    base = " ".join([main, *kept]).strip()
    return Title(base or main, instrumental, frozenset(tags))


@dataclass(frozen=True)
class Candidate:
    """A metadata candidate: catalogue entries ``original`` and ``instrumental``
    with their title similarity (0-100) and duration difference (seconds)."""

    original: Entry
    instrumental: Entry
    title_score: float
    duration_diff: float | None

    @property
    def key(self) -> str:
        return f"{self.original.index}-{self.instrumental.index}"


@dataclass
class MatchResult:
    """Candidates that passed, near misses with their reason, and instrumentals without any original."""

    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[tuple[Candidate, str]] = field(default_factory=list)
    unmatched: list[Entry] = field(default_factory=list)
    instrumentals: int = 0
    originals: int = 0


def _tag_conflict(a: Title, b: Title, allow: frozenset[str]) -> str | None:
    def visible(tags: frozenset[str]) -> set[str]:
        return {t for t in tags if t.split(":")[0] not in allow}

    ta, tb = visible(a.tags), visible(b.tags)
    if "acappella" in ta | tb:
        return "look-alike: an a cappella is not an original or an instrumental"
    if ta != tb:
        only_o, only_i = sorted(ta - tb) or ["none"], sorted(tb - ta) or ["none"]
        return f"look-alike: original tagged {', '.join(only_o)} vs instrumental tagged {', '.join(only_i)}"
    return None


def find_candidates(entries: Sequence[Entry], cfg: MatchConfig) -> MatchResult:
    """Candidate pairs among ``entries`` (see the module docstring); O(pairs within an artist)."""
    from rapidfuzz import fuzz

    by_artist: dict[str, list[tuple[Entry, Title]]] = defaultdict(list)
    for e in entries:
        by_artist[normalise_artist(e.artist)].append((e, parse_title(e.title, cfg)))
    result = MatchResult()
    for items in by_artist.values():
        originals = [(e, t) for e, t in items if not t.instrumental]
        instrumentals = [(e, t) for e, t in items if t.instrumental]
        result.originals += len(originals)
        result.instrumentals += len(instrumentals)
        for ie, it in instrumentals:
            passed = 0
            for oe, ot in originals:
                score = float(fuzz.ratio(ot.base, it.base))
                if score < cfg.title_threshold or _NUMBER.findall(ot.base) != _NUMBER.findall(it.base):  # "Part 2" is not "Part 3"
                    continue
                diff = None if oe.duration is None or ie.duration is None else abs(oe.duration - ie.duration)
                cand = Candidate(oe, ie, score, diff)
                reason = _tag_conflict(ot, it, cfg.allow)
                if reason is None and diff is not None and diff > cfg.duration_tolerance:
                    reason = f"durations differ by {diff:.1f} s (> {cfg.duration_tolerance:g} s)"
                if reason:
                    result.rejected.append((cand, reason))
                else:
                    result.candidates.append(cand)
                    passed += 1
            if not passed:
                result.unmatched.append(ie)
    return result


def parse_markers(extra: Iterable[str], replace: bool = False) -> tuple[str, ...]:
    """The marker list: the defaults plus ``extra`` (or ``extra`` alone when ``replace``)."""
    extra = tuple(extra)
    return extra if replace else DEFAULT_MARKERS + extra
