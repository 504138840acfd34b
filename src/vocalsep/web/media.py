"""The audio work of ``vocalsep web`` outside the separator: checking an upload, the waveform's
peaks, and the files a download asks for (a stem in another format, the mix at a vocal level,
both stems in one ZIP).  Every file is written to a temporary file and renamed into place."""

from __future__ import annotations

import json
import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._atomic import publish, temp_beside, write_text
from ..audio import AUDIO_EXTENSIONS, AudioReader, AudioWriter, track_name
from ..errors import AudioError, VocalsepError
from ..stems import STEMS

FORMATS = ("wav", "flac", "mp3")
MIME = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg", "zip": "application/zip"}
PEAK_BUCKETS = 1200
ACCEPT = tuple(sorted(AUDIO_EXTENSIONS))
# An upload whose extension vocalsep does not read by name is kept under this one: it routes the file
# to FFmpeg (PyAV), which finds the container from the content itself.
ANY_CONTAINER = ".mka"
MAX_NAME = 200


class UploadError(Exception):
    """An upload is refused: ``status`` is the HTTP status, ``message`` one line for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class AudioFacts:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def clean_name(name: str | None) -> str:
    """The display name of an uploaded file: its last path component, without control characters,
    at most :data:`MAX_NAME` characters; never used as a path."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in unicodedata.normalize("NFC", name) if unicodedata.category(c)[0] != "C").strip()
    if len(name) > MAX_NAME:
        stem, ext = os.path.splitext(name)
        name = stem[: MAX_NAME - len(ext[:12])] + ext[:12]
    return name or "upload"


def stored_input_name(name: str) -> str:
    """The file name an upload is kept under in its job folder: ``input`` and its extension when
    vocalsep reads that extension, else :data:`ANY_CONTAINER`."""
    ext = Path(name).suffix.lower()
    return "input" + (ext if ext in AUDIO_EXTENSIONS else ANY_CONTAINER)


def inspect_upload(path: Path, name: str) -> AudioFacts:
    """Decode the whole upload once: its rate, channels and exact length.  Raises
    :class:`UploadError` for an empty, undecodable, audio-less, empty-of-samples or silent file."""
    if path.stat().st_size == 0:
        raise UploadError(400, f"{name} is empty (0 bytes)")
    frames, peak = 0, 0.0
    try:
        reader = AudioReader(path)
        for block in reader.blocks():
            frames += block.shape[1]
            peak = max(peak, float(block.max()), float(-block.min()))
    except AudioError as exc:
        raise UploadError(415, _explain(name, _without(exc.reason, path))) from None
    if frames == 0:
        raise UploadError(422, f"{name} contains no audio samples")
    if peak == 0.0:
        raise UploadError(422, f"{name} is silent (every sample is zero): there is nothing to separate")
    return AudioFacts(reader.sample_rate, reader.channels, frames)


def _without(reason: str, path: Path) -> str:
    """A decoder's message without the server's path of the file and without errno numbers."""
    for p in (str(path.resolve()), str(path)):
        reason = re.sub(r":\s*'" + re.escape(p) + r"[^']*'", "", reason)
        reason = re.sub(re.escape(p) + r"[^\s'\":]*", "the file", reason)
    return re.sub(r"\[Errno -?\d+\]\s*", "", reason)


def _explain(name: str, reason: str) -> str:
    if reason.startswith("cannot decode"):
        detail = reason.partition(":")[2].strip()
        return f"{name} is not an audio or video file that vocalsep can read" + (f" ({detail})" if detail else "")
    if reason in ("contains no audio stream", "no usable audio stream"):
        return f"{name} has no audio track"
    if reason.startswith("is "):  # "is truncated: ..."
        return f"{name} {reason}"
    return f"{name}: {reason}"


def job_error(name: str, exc: BaseException, folder: Path) -> str:
    """One line for a job that failed, naming the upload (never the server's paths)."""
    if isinstance(exc, AudioError):
        return _explain(name, _without(exc.reason, folder))
    text = str(exc).replace(str(folder.resolve()), "").replace(str(folder), "")
    if isinstance(exc, VocalsepError):
        return f"{name}: {text}"
    return f"{name}: separation failed ({type(exc).__name__}: {text})"


# -- the waveform

def peaks(paths: dict[str, Path], buckets: int = PEAK_BUCKETS) -> dict:
    """``{"duration", "buckets", stem: [peak of each bucket, 0..1], ...}`` for the stems in ``paths``
    (WAV files of equal length): the largest absolute sample over the channels in each of ``buckets``
    equal slices of the track."""
    import soundfile as sf

    out: dict = {}
    for stem, path in paths.items():
        with sf.SoundFile(path) as f:
            total, rate = f.frames, f.samplerate
            n = max(1, min(buckets, total))
            top = np.zeros(n, np.float32)
            pos = 0
            for block in f.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
                m = np.abs(block).max(axis=1)
                idx = (np.arange(pos, pos + m.size, dtype=np.int64) * n) // max(total, 1)
                starts = np.flatnonzero(np.diff(idx, prepend=-1))
                np.maximum.at(top, idx[starts], np.maximum.reduceat(m, starts))
                pos += m.size
        out[stem] = [round(float(v), 4) for v in np.minimum(top, 1.0)]
        out["duration"] = total / rate
        out["buckets"] = n
    return out


def write_peaks(folder: Path) -> Path:
    data = peaks({s: folder / f"{s}.wav" for s in STEMS})
    return write_text(folder / "peaks.json", json.dumps(data, separators=(",", ":")))


# -- downloads

def _blocks(path: Path, size: int = 1 << 16):
    import soundfile as sf

    with sf.SoundFile(path) as f:
        yield from f.blocks(blocksize=size, dtype="float32", always_2d=True)


def _info(path: Path) -> tuple[int, int]:
    import soundfile as sf

    i = sf.info(str(path))
    return int(i.samplerate), int(i.channels)


def stem_file(folder: Path, stem: str, fmt: str) -> Path:
    """The stem in ``fmt``: the stored WAV, or a conversion made once and kept beside it.
    An output the format cannot store (MP3 above 2 channels or at an odd rate) raises OutputError."""
    src = folder / f"{stem}.wav"
    if fmt == "wav":
        return src
    dst = folder / f"{stem}.{fmt}"
    if dst.is_file():
        return dst
    rate, channels = _info(src)
    with AudioWriter(dst, rate, channels, fmt=fmt, bit_depth="16") as w:
        for block in _blocks(src):
            w.write(block.T)
    return dst


def write_mix(folder: Path, dst: Path, fmt: str, vocals: float, accompaniment: float) -> Path:
    """``vocals`` x the vocal stem + ``accompaniment`` x the accompaniment into ``dst`` (16-bit;
    samples beyond full scale are clipped)."""
    v_path, a_path = folder / "vocals.wav", folder / "accompaniment.wav"
    rate, channels = _info(v_path)
    with AudioWriter(dst, rate, channels, fmt=fmt, bit_depth="16") as w:
        for v, a in zip(_blocks(v_path), _blocks(a_path)):
            w.write((np.float32(vocals) * v + np.float32(accompaniment) * a).T)
    return dst


def write_zip(files: dict[str, Path], dst: Path) -> Path:
    """The files under the given names in one ZIP (stored: audio does not compress), atomically."""
    tmp = temp_beside(dst)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
            for arcname, path in files.items():
                z.write(path, arcname)
        return publish(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def download_name(name: str, what: str, ext: str) -> str:
    """``"<track> (<what>).<ext>"`` for the upload ``name``; a file name without path separators."""
    track = track_name(name).replace("/", "_").replace("\\", "_") or "track"
    return f"{track} ({what}).{ext}"
