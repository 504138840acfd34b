"""Reading a catalogue: a CSV file, a JSON lines file, or a folder of tagged audio files.

Every form yields :class:`Entry` items (artist, title, audio path, duration in
seconds, optional album and ISRC) plus one problem line per unusable row or
file ("catalog.csv line 7: no such audio file 'x.mp3'"); a bad row never stops
the others.

- CSV (``.csv``, ``.tsv``): a header row with ``artist``, ``title``, ``path``
  and optionally ``duration`` (seconds, ``m:ss`` or ``h:mm:ss``), ``album``,
  ``isrc`` (column names are case-insensitive; ``file``/``filename`` and
  ``length`` are accepted as aliases).
- JSON lines (``.jsonl``, ``.ndjson``, ``.json``): one object per line with the
  same keys.
- A folder: every audio file below it (recursively); artist, title, album and
  ISRC come from the tags (mutagen), else from an "Artist - Title" file name.

Relative paths are relative to the catalogue file's folder.  A missing
duration is read from the audio file's header.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AudioError, ConfigError

ALIASES = {"file": "path", "filename": "path", "location": "path", "length": "duration", "seconds": "duration", "name": "title"}
JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
CSV_SUFFIXES = {".csv", ".tsv"}


@dataclass(frozen=True)
class Entry:
    """One catalogue item.  ``index``: its 1-based position in the catalogue;
    ``duration``: seconds (None when unknown); ``source``: where it was read
    (file and line, or the audio file)."""

    index: int
    artist: str
    title: str
    path: Path
    duration: float | None = None
    album: str = ""
    isrc: str = ""
    source: str = field(default="", compare=False)

    def label(self) -> str:
        return f"#{self.index} {self.artist} - {self.title}"

    def to_dict(self) -> dict:
        return {"index": self.index, "artist": self.artist, "title": self.title, "path": str(self.path),
                "duration": self.duration, "album": self.album, "isrc": self.isrc}


def parse_duration(text) -> float | None:
    """Seconds from ``245.3``, ``"4:05"`` or ``"1:02:03"``; None for an empty value; ValueError otherwise."""
    if text is None:
        return None
    bad = ValueError(f"duration must be a positive number of seconds or m:ss, got {str(text)[:40]!r}")
    try:
        if isinstance(text, bool) or not isinstance(text, (int, float, str)):
            raise bad
        if isinstance(text, (int, float)):
            value = float(text)
        else:
            text = text.strip()
            if not text:
                return None
            value = 0.0
            for part in text.split(":"):
                value = value * 60 + float(part)
    except (ValueError, OverflowError):
        raise bad from None
    if not value > 0 or value == float("inf"):
        raise bad
    return value


def _probe_duration(path: Path) -> float | None:
    from ..audio import AudioReader

    return AudioReader(path).info.duration


def _entry(index: int, row: dict, base: Path, where: str) -> Entry:
    """An Entry from a row of text fields; ValueError naming the reason."""
    row = {ALIASES.get(str(k).strip().lower(), str(k).strip().lower()): v for k, v in row.items() if k is not None}
    values = {k: ("" if row.get(k) is None else str(row.get(k)).strip()) for k in ("artist", "title", "path", "album", "isrc")}
    missing = [k for k in ("artist", "title", "path") if not values[k]]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    path = Path(os.path.expanduser(values["path"]))
    path = path if path.is_absolute() else base / path
    try:
        is_file, exists = path.is_file(), path.exists()
    except OSError as exc:  # a name too long for the file system, say
        raise ValueError(f"cannot use the path {values['path'][:60]!r}{'...' if len(values['path']) > 60 else ''}: "
                         f"{exc.strerror or exc}") from None
    if not is_file:
        raise ValueError(f"no such audio file {values['path']!r}" if not exists else f"{values['path']!r} is not a file")
    duration = parse_duration(row.get("duration"))
    if duration is None:
        try:
            duration = _probe_duration(path)
        except AudioError as exc:
            raise ValueError(exc.reason) from None
    return Entry(index, values["artist"], values["title"], path.resolve(), duration, values["album"], values["isrc"], where)


MAX_FIELD = 131072  # characters in one catalogue field (the csv module's own default limit)


def _bad_text(values) -> ValueError | None:
    """Why a row's text fields cannot be used (bytes that are not UTF-8, a field too long), or None."""
    for v in values:
        for text in v if isinstance(v, list) else [v]:
            if not isinstance(text, str):
                continue
            if len(text) > MAX_FIELD:
                return ValueError(f"a field is longer than {MAX_FIELD} characters")
            bad = next((c for c in text if "\udc80" <= c <= "\udcff"), None)  # what surrogateescape made of a stray byte
            if bad is not None:
                return ValueError(f"not UTF-8 text (byte 0x{ord(bad) - 0xDC00:02x})")
    return None


def _rows_csv(path: Path):
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    limit = csv.field_size_limit(2**31 - 1)  # long fields are refused row by row (_bad_text), not by stopping the reader
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
            # one row per line, each parsed on its own: a broken row (an unclosed quote) costs that row alone,
            # not every row up to the next quote
            header: list[str] = []
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    values = next(csv.reader([line], delimiter=delimiter, strict=True))
                except csv.Error as exc:
                    if not header:
                        raise ConfigError(f"{path}: the header row is not CSV ({exc})") from None
                    reason = "an unclosed quote (a catalogue row is one line)" if "end of data" in str(exc) else f"not CSV ({exc})"
                    yield number, ValueError(reason)
                    continue
                if not header:
                    header = values
                    fields = {ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header}
                    if not {"artist", "title", "path"} <= fields:
                        raise ConfigError(f"{path}: a catalogue CSV needs artist, title and path columns "
                                          f"(found: {', '.join(sorted(fields)) or 'none'})")
                    continue
                row: dict = dict(zip(header, values))
                if len(values) > len(header):
                    row[None] = values[len(header):]
                yield number, _bad_text(row.values()) or row
            if not header:
                raise ConfigError(f"{path}: a catalogue CSV needs artist, title and path columns (found: none)")
    finally:
        csv.field_size_limit(limit)


def _rows_jsonl(path: Path):
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, ValueError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, ValueError(f"not JSON ({exc.msg})")
                continue
            except RecursionError:
                yield number, ValueError("not JSON (nested too deeply)")
                continue
            if not isinstance(row, dict):
                yield number, ValueError("not a JSON object")
                continue
            yield number, _bad_text(row.values()) or row


def _tags(path: Path) -> dict:
    """artist/title/album/isrc/duration from the tags of one audio file (mutagen), {} if unreadable."""
    import mutagen

    try:
        f = mutagen.File(path, easy=True)
    except Exception:  # noqa: BLE001 - unreadable tags: fall back to the file name
        return {}
    if f is None:
        return {}
    out = {k: (f.tags.get(k) or [""])[0] if f.tags else "" for k in ("artist", "title", "album", "isrc")}
    length = getattr(getattr(f, "info", None), "length", None)
    if length:
        out["duration"] = float(length)
    return out


def _folder_rows(root: Path):
    from ..audio import is_audio_file

    files = sorted(p for p in root.rglob("*") if p.is_file() and is_audio_file(p) and not p.name.startswith("."))
    for p in files:
        row = _tags(p)
        if not (row.get("artist") and row.get("title")) and " - " in p.stem:
            artist, title = p.stem.split(" - ", 1)
            row = {**row, "artist": row.get("artist") or artist, "title": row.get("title") or title}
        yield p, {**row, "path": str(p.relative_to(root))}  # read relative to the folder (the catalogue's base)


def read_catalog(path: str | os.PathLike) -> tuple[list[Entry], list[str]]:
    """Entries of a catalogue file or folder, and one problem line per unusable row or file.

    Raises ConfigError when the catalogue itself cannot be used (missing,
    unknown format, no required columns, nothing usable).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such catalogue (a CSV or JSON lines file, or a folder of audio files)")
    entries: list[Entry] = []
    problems: list[str] = []
    if path.is_dir():
        rows = ((str(p), row) for p, row in _folder_rows(path))
        base = path
    elif path.suffix.lower() in CSV_SUFFIXES | JSON_SUFFIXES:
        reader = _rows_csv(path) if path.suffix.lower() in CSV_SUFFIXES else _rows_jsonl(path)
        rows = ((f"{path} line {n}", row) for n, row in reader)
        base = path.parent
    else:
        raise ConfigError(f"{path}: unknown catalogue format {path.suffix or '(no extension)'!r}; use .csv, .tsv, .jsonl or a folder of audio files")
    for where, row in rows:
        try:
            if isinstance(row, Exception):
                raise row
            entries.append(_entry(len(entries) + 1, row, base, where))
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    if not entries:
        detail = f" ({problems[0]})" if problems else ""
        raise ConfigError(f"{path}: the catalogue lists no usable audio files{detail}")
    return entries, problems
