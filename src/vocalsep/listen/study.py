"""The study file: what participants hear and are asked, and how it is checked.

A study is a folder::

    STUDY/study.json        questions, excerpts and their clips, controls, labels
    STUDY/audio/*.wav       the clips (opaque names: a URL does not tell the system)
    STUDY/responses.sqlite  the responses (written by ``vocalsep listen serve``)

``study.json`` is meant to be read and edited by the researcher before the
study starts (question texts, instructions, Likert labels, the acceptable
answers of the control questions, ``min_listen_seconds``,
``max_participants``); :func:`load_study` validates every field and names the
offending one in a single line.  Every field: docs/listening-test.md, "The study file".

Every (question, excerpt) pair is one *item* (id ``QUESTION@EXCERPT``) whose
clips are the systems' stems of the question's target; every control is one
more item that looks the same to a participant (same question text, same
number of clips, the same reference) but holds a clip with a known answer.
A control is failed when any clip with an ``accept`` range is rated outside it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._atomic import write_text
from ..errors import ConfigError
from ..stems import STEMS

FORMAT = "vocalsep-listening-study"
VERSION = 1
STUDY_FILE = "study.json"
AUDIO_DIR = "audio"
DB_FILE = "responses.sqlite"
SLOTS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
    ".webm": "audio/webm",
}

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_FILE_RE = re.compile(r"^audio/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})$")

DEFAULT_TITLE = "Listening test: singing voice separation"
DEFAULT_INSTRUCTIONS = (
    "You will hear short excerpts of songs that a computer has split into the singing voice and the "
    "instrumental. Each page asks one question about a few clips, labelled A, B and so on.\n\n"
    "Play each clip to the end before you rate it (you may play it again, and play the original song "
    "where it is offered for comparison). Rate each clip on its own on the scale from Poor to Perfect.\n\n"
    "Please use headphones in a quiet place. Set a comfortable volume on the first page and leave it there. "
    "There are no right or wrong answers: rate what you hear."
)
DEFAULT_SCALE = ("Poor", "Weak", "Fair", "Good", "Very good", "Excellent", "Perfect")
DEFAULT_QUESTIONS = (
    {"id": "vocals-quality", "target": "vocals", "label": "Vocals: quality",
     "text": "How good is the sound quality of the vocals?", "reference": False},
    {"id": "vocals-removal", "target": "vocals", "label": "Vocals: instruments removed",
     "text": "How well have the instruments been removed? Compare each clip with the original song.", "reference": True},
    {"id": "accompaniment-quality", "target": "accompaniment", "label": "Instrumental: quality",
     "text": "How good is the sound quality of the instrumental?", "reference": False},
    {"id": "accompaniment-removal", "target": "accompaniment", "label": "Instrumental: vocals removed",
     "text": "How well have the vocals been removed? Compare each clip with the original song.", "reference": True},
)


@dataclass(frozen=True)
class Question:
    id: str
    target: str  # "vocals" | "accompaniment": which stem of each system is rated
    label: str  # short name for tables and figures
    text: str  # what the participant reads
    reference: bool  # whether the mixture is offered for comparison


@dataclass(frozen=True)
class Excerpt:
    id: str
    track: str
    start: float
    duration: float
    reference: str  # file of the mixture excerpt, "audio/NAME"


@dataclass(frozen=True)
class Clip:
    key: str  # the system name (regular items) or "c1", "c2"... (controls)
    file: str  # "audio/NAME"
    source: str  # "system", "mixture", "degraded", "vocals" (a true stem) or the expert's own word
    system: str | None  # the system that made it, when source == "system"
    accept: tuple[int, int] | None  # acceptable ratings of a control clip (inclusive), else None


@dataclass(frozen=True)
class Item:
    """One page a participant answers: a question about a set of clips of one excerpt."""

    id: str
    question: Question
    excerpt: Excerpt
    control: bool
    clips: tuple[Clip, ...]

    @property
    def reference(self) -> str | None:
        return self.excerpt.reference if self.question.reference else None

    def clip(self, key: str) -> Clip:
        for c in self.clips:
            if c.key == key:
                return c
        raise KeyError(key)


@dataclass(frozen=True)
class Study:
    root: Path
    title: str
    instructions: str
    scale: tuple[str, ...]
    min_listen_seconds: float | None
    max_participants: int | None
    systems: tuple[str, ...]
    questions: tuple[Question, ...]
    excerpts: tuple[Excerpt, ...]
    items: tuple[Item, ...]  # regular items (question-major), then the controls
    data: Mapping  # the parsed study.json, as written

    @property
    def path(self) -> Path:
        return self.root / STUDY_FILE

    @property
    def item_index(self) -> dict[str, Item]:
        return {i.id: i for i in self.items}

    def item(self, item_id: str) -> Item:
        for i in self.items:
            if i.id == item_id:
                return i
        raise KeyError(item_id)

    def question(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)

    @property
    def regular_items(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if not i.control)

    @property
    def control_items(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.control)

    def audio_files(self) -> dict[str, Path]:
        """Every file the study refers to, by its name in ``audio/`` (the only files the server sends)."""
        names: dict[str, Path] = {}
        for e in self.excerpts:
            names[e.reference.split("/", 1)[1]] = self.root / e.reference
        for i in self.items:
            for c in i.clips:
                names[c.file.split("/", 1)[1]] = self.root / c.file
        return names

    def listen_seconds(self, item: Item) -> float:
        """Seconds of a clip of ``item`` a participant must hear before rating it."""
        d = item.excerpt.duration
        return d if self.min_listen_seconds is None else min(d, self.min_listen_seconds)

    def fingerprint(self) -> str:
        """A hash of what responses refer to: items, their clips and files, the number of scale steps.

        Texts, labels, instructions and acceptable ranges may change after
        responses exist; this may not (the server refuses to start)."""
        shape = {
            "scale": len(self.scale),
            "items": sorted([i.id, i.reference, [[c.key, c.file] for c in i.clips]] for i in self.items),
        }
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


# -- checks

class _Where:
    """Builds 'study.json: field.path: reason' messages."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {reason}")

    def obj(self, value, where: str) -> Mapping:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"must be an object, not {_kind(value)}")
        return value

    def lst(self, value, where: str, *, nonempty: bool = True) -> list:
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list, not {_kind(value)}")
        if nonempty and not value:
            raise self.fail(where, "must not be empty")
        return value

    def text(self, value, where: str, *, limit: int = 5000) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "must be a non-empty string")
        if len(value) > limit:
            raise self.fail(where, f"is longer than {limit} characters")
        return value

    def ident(self, value, where: str) -> str:
        if not isinstance(value, str) or not ID_RE.match(value):
            raise self.fail(where, f"{value!r} is not a valid id (letters, digits and _ . + -, at most 64, starting with a letter or digit)")
        return value

    def boolean(self, value, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"must be true or false, not {_kind(value)}")
        return value

    def number(self, value, where: str, *, low: float, high: float = math.inf, low_open: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(where, f"must be a finite number, not {value!r}")
        if value < low or (low_open and value == low) or value > high:
            raise self.fail(where, f"{value} is out of range")
        return float(value)

    def file(self, value, where: str, root: Path) -> str:
        if not isinstance(value, str) or not _FILE_RE.match(value) or ".." in value:
            raise self.fail(where, f"{value!r} must be a file name inside audio/, e.g. 'audio/clip.wav'")
        ext = Path(value).suffix.lower()
        if ext not in AUDIO_TYPES:
            raise self.fail(where, f"{value!r}: unsupported audio type {ext or '(none)'}; use one of {', '.join(sorted(AUDIO_TYPES))}")
        p = root / value
        if not p.is_file():
            raise self.fail(where, f"{value} does not exist in {root}")
        if not p.resolve().is_relative_to((root / AUDIO_DIR).resolve()):
            raise self.fail(where, f"{value} points outside {root / AUDIO_DIR}")
        return value


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def load_study(path: str | Path) -> Study:
    """Read and validate a study folder (or its ``study.json``); :class:`ConfigError` names the field."""
    p = Path(path).absolute()  # the server answers from its own folder: a relative root would be read from there
    file = p if p.name == STUDY_FILE and p.is_file() else p / STUDY_FILE
    if not file.is_file():
        raise ConfigError(f"{p}: not a study folder (no {STUDY_FILE}); make one with 'vocalsep listen prepare'")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}: not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    return parse_study(data, file.parent, file)


def parse_study(data, root: Path, file: Path | None = None) -> Study:
    w = _Where(file or root / STUDY_FILE)
    w.obj(data, "the file")
    if data.get("format") != FORMAT:
        raise w.fail("format", f"must be {FORMAT!r}: this is not a vocalsep study file")
    if data.get("version") != VERSION:
        raise w.fail("version", f"{data.get('version')!r} is not supported (this vocalsep reads version {VERSION})")
    known = {"format", "version", "title", "instructions", "scale", "min_listen_seconds", "max_participants",
             "systems", "questions", "excerpts", "controls", "prepare"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise w.fail(unknown[0], f"unknown field (known: {', '.join(sorted(known))})")
    title = w.text(data.get("title"), "title", limit=200)
    instructions = w.text(data.get("instructions"), "instructions", limit=20000)
    scale = w.lst(data.get("scale"), "scale")
    if not 2 <= len(scale) <= 11:
        raise w.fail("scale", f"has {len(scale)} steps; a Likert scale here has 2 to 11")
    scale = tuple(w.text(s, f"scale[{k}]", limit=60) for k, s in enumerate(scale))
    mls = data.get("min_listen_seconds")
    mls = None if mls is None else w.number(mls, "min_listen_seconds", low=0.0)
    mp = data.get("max_participants")
    if mp is not None and (isinstance(mp, bool) or not isinstance(mp, int) or mp < 1):
        raise w.fail("max_participants", f"must be null or a positive integer, not {mp!r}")

    systems = tuple(w.ident(s, f"systems[{k}]") for k, s in enumerate(w.lst(data.get("systems"), "systems")))
    if len(set(systems)) != len(systems):
        raise w.fail("systems", "names a system twice")
    if len(systems) > len(SLOTS):
        raise w.fail("systems", f"at most {len(SLOTS)} systems")

    questions: list[Question] = []
    for k, q in enumerate(w.lst(data.get("questions"), "questions")):
        at = f"questions[{k}]"
        w.obj(q, at)
        qid = w.ident(q.get("id"), f"{at}.id")
        if any(x.id == qid for x in questions):
            raise w.fail(f"{at}.id", f"{qid!r} is used twice")
        target = q.get("target")
        if target not in STEMS:
            raise w.fail(f"{at}.target", f"{target!r} must be one of {', '.join(STEMS)}")
        questions.append(Question(qid, target, w.text(q.get("label"), f"{at}.label", limit=80),
                                  w.text(q.get("text"), f"{at}.text", limit=1000), w.boolean(q.get("reference"), f"{at}.reference")))

    excerpts: list[Excerpt] = []
    clips_of: dict[str, dict[str, dict[str, str]]] = {}
    for k, e in enumerate(w.lst(data.get("excerpts"), "excerpts")):
        at = f"excerpts[{k}]"
        w.obj(e, at)
        eid = w.ident(e.get("id"), f"{at}.id")
        if eid in clips_of:
            raise w.fail(f"{at}.id", f"{eid!r} is used twice")
        ref = w.obj(e.get("reference"), f"{at}.reference")
        excerpts.append(Excerpt(
            eid, w.text(e.get("track"), f"{at}.track", limit=500),
            w.number(e.get("start"), f"{at}.start", low=0.0),
            w.number(e.get("duration"), f"{at}.duration", low=0.0, low_open=True),
            w.file(ref.get("file"), f"{at}.reference.file", root),
        ))
        clips = w.obj(e.get("clips"), f"{at}.clips")
        extra = sorted(set(clips) - set(systems))
        if extra:
            raise w.fail(f"{at}.clips.{extra[0]}", "is not in 'systems'")
        clips_of[eid] = {}
        for s in systems:
            stems = w.obj(clips.get(s), f"{at}.clips.{s}")
            clips_of[eid][s] = {}
            for target in sorted({q.target for q in questions}):
                stem = w.obj(stems.get(target), f"{at}.clips.{s}.{target}")
                clips_of[eid][s][target] = w.file(stem.get("file"), f"{at}.clips.{s}.{target}.file", root)
    by_id = {e.id: e for e in excerpts}

    items: list[Item] = []
    for q in questions:
        for e in excerpts:
            clips = tuple(Clip(s, clips_of[e.id][s][q.target], "system", s, None) for s in systems)
            items.append(Item(f"{q.id}@{e.id}", q, e, False, clips))
    qby = {q.id: q for q in questions}
    ids: set[str] = set()
    for k, c in enumerate(w.lst(data.get("controls", []), "controls", nonempty=False)):
        at = f"controls[{k}]"
        w.obj(c, at)
        cid = w.ident(c.get("id"), f"{at}.id")
        if cid in ids:
            raise w.fail(f"{at}.id", f"{cid!r} is used twice")
        ids.add(cid)
        if c.get("question") not in qby:
            raise w.fail(f"{at}.question", f"{c.get('question')!r} is not a question id ({', '.join(qby)})")
        if c.get("excerpt") not in by_id:
            raise w.fail(f"{at}.excerpt", f"{c.get('excerpt')!r} is not an excerpt id")
        clips = []
        for j, clip in enumerate(w.lst(c.get("clips"), f"{at}.clips")):
            cat = f"{at}.clips[{j}]"
            w.obj(clip, cat)
            source = w.ident(clip.get("source"), f"{cat}.source")
            system = clip.get("system")
            if source == "system":
                if system not in systems:
                    raise w.fail(f"{cat}.system", f"{system!r} is not in 'systems'")
            elif system is not None:
                raise w.fail(f"{cat}.system", "only a clip with source 'system' names a system")
            accept = clip.get("accept")
            if accept is not None:
                if (not isinstance(accept, list) or len(accept) != 2
                        or not all(isinstance(a, int) and not isinstance(a, bool) for a in accept)
                        or not 1 <= accept[0] <= accept[1] <= len(scale)):
                    raise w.fail(f"{cat}.accept", f"{accept!r} must be null or [low, high] with 1 <= low <= high <= {len(scale)}")
                accept = (accept[0], accept[1])
            clips.append(Clip(f"c{j + 1}", w.file(clip.get("file"), f"{cat}.file", root), source, system, accept))
        if len(clips) > len(SLOTS):
            raise w.fail(f"{at}.clips", f"at most {len(SLOTS)} clips")
        if not any(cl.accept for cl in clips):
            raise w.fail(f"{at}.clips", "no clip has an 'accept' range: a control needs a known answer")
        items.append(Item(cid, qby[c["question"]], by_id[c["excerpt"]], True, tuple(clips)))
    return Study(root=Path(root), title=title, instructions=instructions, scale=scale, min_listen_seconds=mls,
                 max_participants=mp, systems=systems, questions=tuple(questions), excerpts=tuple(excerpts),
                 items=tuple(items), data=data)


def write_study(root: str | Path, data: Mapping) -> Path:
    """Write ``study.json`` atomically (validated first, so a bad study is never written)."""
    root = Path(root)
    parse_study(json.loads(json.dumps(data)), root)
    return write_text(root / STUDY_FILE, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# -- randomisation and controls

def make_plan(study: Study, seed: int) -> list[tuple[str, tuple[str, ...]]]:
    """One participant's order: ``[(item_id, clip keys in the order shown), ...]``.

    Every item (controls included) appears once, in a uniformly random order,
    so that the controls are interspersed among the others; the clips of each
    item are shuffled independently.  Deterministic for a given ``seed`` (the
    server draws a fresh seed per participant and stores seed and plan)."""
    rng = random.Random(seed)
    order = list(study.items)
    rng.shuffle(order)
    plan = []
    for item in order:
        keys = [c.key for c in item.clips]
        rng.shuffle(keys)
        plan.append((item.id, tuple(keys)))
    return plan


def check_plan(study: Study, plan: Sequence[Sequence]) -> None:
    """Raise ValueError unless ``plan`` holds every item once with a permutation of its clips."""
    index = study.item_index
    seen = [p[0] for p in plan]
    if sorted(seen) != sorted(index):
        raise ValueError("the plan does not hold every item exactly once")
    for item_id, keys in plan:
        if sorted(keys) != sorted(c.key for c in index[item_id].clips):
            raise ValueError(f"{item_id}: the clip order is not a permutation of its clips")


def control_failures(item: Item, ratings: Mapping[str, int]) -> list[str]:
    """Why ``ratings`` (clip key -> rating) fail the control ``item``; empty when they pass (or it is no control)."""
    if not item.control:
        return []
    reasons = []
    for c in item.clips:
        if c.accept is None:
            continue
        r = ratings.get(c.key)
        if r is None:
            reasons.append(f"{item.id}: clip {c.key} ({c.source}) was not rated")
        elif not c.accept[0] <= r <= c.accept[1]:
            reasons.append(f"{item.id}: clip {c.key} ({c.source}) rated {r}, acceptable {c.accept[0]}-{c.accept[1]}")
    return reasons
