"""Decode, resample and encode audio.  Knows nothing of models.

Arrays are float32 ``(channels, samples)``, always: the channel axis comes
first and is never guessed from a shape.  Decoding needs no system ffmpeg:
WAV, FLAC and AIFF go through soundfile (libsndfile, sample-exact seeking);
everything else (MP3, AAC/M4A, OGG/Opus, MUSDB18 ``.stem.mp4``...) through
PyAV, which bundles its own FFmpeg libraries.  Decoding is to float, so
nothing is clipped on the way in.

Writing goes to a temporary file beside the target and is renamed into place
only when complete (:class:`AudioWriter`), so an interrupted run never leaves a
half-written file that looks finished.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._atomic import publish, temp_beside
from ._signals import deferred_signals
from ._wavheader import wav_declared_frames
from .errors import AudioError, OutputError

log = logging.getLogger(__name__)

SOUNDFILE_EXTENSIONS = {".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc"}
# the video files a phone, a camera or a screen recorder makes: their audio track
VIDEO_EXTENSIONS = {".mov", ".m4v", ".3gp", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts"}
PYAV_EXTENSIONS = {".mp3", ".m4a", ".m4b", ".aac", ".mp4", ".ogg", ".oga", ".opus", ".webm", ".mka", ".mkv", ".wma", ".caf", ".ac3",
                   ".mp2", *VIDEO_EXTENSIONS}
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | PYAV_EXTENSIONS

OUTPUT_FORMATS = ("wav", "flac", "mp3")
BIT_DEPTHS = ("16", "24", "32", "float")
_SF_SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32": "PCM_32", "float": "FLOAT"}
_MP3_RATES = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000}


def track_name(path: str | os.PathLike) -> str:
    """The name of a track: the file name without its extension (and without ``.stem``)."""
    name = Path(path).name
    for suffix in (".stem.mp4", ".stem.m4a"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def is_audio_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    channels: int
    frames: int | None  # None when the container does not say
    streams: int  # number of audio streams (MUSDB18 .stem.mp4 has 5)

    @property
    def duration(self) -> float | None:
        return None if self.frames is None else self.frames / self.sample_rate


class AudioReader:
    """Streams one audio file as float32 blocks ``(channels, n)``.

    ``stream`` picks the audio stream of a multi-stream file (MUSDB18
    ``.stem.mp4``: 0 mixture, 1 drums, 2 bass, 3 other, 4 vocals); ``offset``
    and ``duration`` (seconds) select a part.  Open errors raise
    :class:`AudioError` naming the file.
    """

    def __init__(self, path: str | os.PathLike, *, stream: int = 0, offset: float = 0.0, duration: float | None = None):
        self.path = os.fspath(path)
        p = Path(self.path)
        if not p.exists():
            raise AudioError(self.path, "no such file")
        if p.is_dir():
            raise AudioError(self.path, "is a directory, not an audio file")
        ext = p.suffix.lower()
        if ext not in AUDIO_EXTENSIONS:
            raise AudioError(self.path, f"unsupported file type {ext or '(no extension)'!r}; supported: {', '.join(sorted(AUDIO_EXTENSIONS))}")
        if p.stat().st_size == 0:
            raise AudioError(self.path, "file is empty (0 bytes)")
        if offset < 0 or (duration is not None and duration <= 0):
            raise AudioError(self.path, f"invalid offset/duration ({offset}, {duration})")
        self.stream = stream
        self.offset = float(offset)
        self.duration = duration
        self._backend = "soundfile" if ext in SOUNDFILE_EXTENSIONS and stream == 0 else "pyav"
        try:
            self.info = self._probe_soundfile() if self._backend == "soundfile" else self._probe_pyav()
        except AudioError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad input
            if self._backend == "soundfile":
                # libsndfile cannot read every WAV codec; FFmpeg may
                self._backend = "pyav"
                try:
                    self.info = self._probe_pyav()
                except AudioError:
                    raise
                except Exception as exc2:  # noqa: BLE001
                    raise AudioError(self.path, f"cannot decode: {_reason(exc2)}") from None
            else:
                raise AudioError(self.path, f"cannot decode: {_reason(exc)}") from None
        if self.info.sample_rate <= 0 or self.info.channels <= 0:
            raise AudioError(self.path, "no usable audio stream")
        self.start_frame = _frames(self.offset, self.info.sample_rate)
        self.frame_limit = None if duration is None or _frames(duration, self.info.sample_rate) >= _MAX_FRAMES else _frames(duration, self.info.sample_rate)

    # -- probing
    def _probe_soundfile(self) -> AudioInfo:
        import soundfile as sf

        i = sf.info(self.path)
        if Path(self.path).suffix.lower() in (".wav", ".wave"):  # libsndfile counts the frames the file holds
            self._declared_frames = wav_declared_frames(self.path)
        return AudioInfo(self.path, int(i.samplerate), int(i.channels), int(i.frames), 1)

    def _probe_pyav(self) -> AudioInfo:
        import av

        with av.open(self.path) as c:
            streams = c.streams.audio
            if len(streams) == 0:
                raise AudioError(self.path, "contains no audio stream")
            if not 0 <= self.stream < len(streams):
                raise AudioError(self.path, f"has {len(streams)} audio stream(s); stream {self.stream} does not exist")
            s = streams[self.stream]
            rate = int(s.codec_context.sample_rate or s.rate or 0)
            channels = int(s.codec_context.channels or 0)
            frames = None
            if s.duration is not None and s.time_base is not None:  # the stream's header says it (not an estimate)
                frames = int(round(float(s.duration * s.time_base) * rate))
                self._declared_frames = frames
            elif c.duration is not None:
                frames = int(round(c.duration / 1e6 * rate))
            return AudioInfo(self.path, rate, channels, frames, len(streams))

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def channels(self) -> int:
        return self.info.channels

    @property
    def frames(self) -> int | None:
        """Frames that will be read (approximate for some compressed formats, None if unknown)."""
        total = self.info.frames
        if total is None:
            return self.frame_limit
        n = max(0, total - self.start_frame)
        return n if self.frame_limit is None else min(n, self.frame_limit)

    # -- reading
    def blocks(self, block_frames: int = 1 << 16) -> Iterator[np.ndarray]:
        """Yield float32 ``(channels, n)`` blocks; raises AudioError on NaN/Inf or a decode failure."""
        gen = self._blocks_soundfile(block_frames) if self._backend == "soundfile" else _gather(self._blocks_pyav(), block_frames)
        remaining = self.frame_limit
        self._end = None
        try:
            for block in gen:
                if remaining is not None:
                    if remaining <= 0:
                        break
                    block = block[:, :remaining]
                    remaining -= block.shape[1]
                if block.shape[1] == 0:
                    continue
                if not np.isfinite(block).all():
                    raise AudioError(self.path, "contains NaN or infinite samples")
                yield block
            else:
                self._check_end()
        except AudioError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise AudioError(self.path, f"cannot decode: {_reason(exc)}") from None
        finally:
            gen.close()

    def _check_end(self) -> None:
        """A read that reached the end of the file: refuse a file that ends well before its header says
        (a download cut short), beyond the few milliseconds an encoder's padding accounts for."""
        declared = getattr(self, "_declared_frames", None)
        if declared is None and self._backend == "soundfile":
            declared = self.info.frames
        if declared is None or self._end is None or (self.frame_limit is not None and self._end - self.start_frame >= self.frame_limit):
            return
        rate = self.sample_rate
        if declared - self._end > _TRUNCATION_SLACK * rate + declared / 1000:
            raise AudioError(self.path, f"is truncated: its header declares {declared / rate:.1f} s of audio, "
                             f"it ends after {self._end / rate:.1f} s")

    def _blocks_soundfile(self, block_frames: int) -> Iterator[np.ndarray]:
        import soundfile as sf

        with sf.SoundFile(self.path) as f:
            position = self.start_frame
            if self.start_frame:
                if self.start_frame >= f.frames:
                    self._end = f.frames
                    return
                f.seek(self.start_frame)
            while True:
                data = f.read(block_frames, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    self._end = position
                    return
                position += data.shape[0]
                yield np.ascontiguousarray(data.T)

    def _blocks_pyav(self) -> Iterator[np.ndarray]:
        import av

        rate = self.sample_rate
        with av.open(self.path) as c:
            s = c.streams.audio[self.stream]
            s.thread_type = "AUTO"
            start = self.start_frame
            if start >= _MAX_FRAMES:
                return
            if start > rate:  # seek near the offset, then trim by timestamps
                target = (start / rate - 1.0) / float(s.time_base)
                try:
                    c.seek(int(target), stream=s, backward=True)
                except Exception:  # noqa: BLE001 - fall back to decoding from the start
                    c.seek(0, stream=s)
            origin = s.start_time or 0  # encoder delay shows as a positive start time
            position: int | None = None
            resampler = None
            for packet in c.demux(s):
                for frame in packet.decode():
                    if position is None:
                        position = 0 if frame.pts is None else max(0, int(round(float((frame.pts - origin) * s.time_base) * rate)))
                    if frame.format.name != "fltp":
                        if resampler is None:
                            resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
                        arrays = [f.to_ndarray() for f in resampler.resample(frame)]
                        data = np.concatenate(arrays, axis=1) if arrays else np.zeros((self.channels, 0), np.float32)
                    else:
                        data = frame.to_ndarray()
                    data = np.asarray(data, dtype=np.float32)
                    n = data.shape[1]
                    if position + n <= start:
                        position += n
                        continue
                    if position < start:
                        data = data[:, start - position :]
                        position = start
                    position += data.shape[1]
                    yield data
            self._end = start if position is None else max(position, start)

    def read(self) -> np.ndarray:
        """The whole selection as float32 ``(channels, samples)``."""
        blocks = list(self.blocks())
        if not blocks:
            return np.zeros((self.channels, 0), np.float32)
        return np.concatenate(blocks, axis=1)


_MAX_FRAMES = 1 << 62  # more frames than any file holds: an offset or a duration beyond it means "to the end"
_TRUNCATION_SLACK = 0.25  # seconds (plus 0.1 % of the length) a file may end before its header says: codec padding


def _frames(seconds: float, rate: int) -> int:
    """``seconds`` at ``rate`` as a whole number of frames, at most :data:`_MAX_FRAMES`."""
    n = seconds * rate
    return _MAX_FRAMES if not n < _MAX_FRAMES else int(round(n))


def _gather(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Join small decoded frames (an MP3 frame is 1152 samples) into blocks of at least ``size``."""
    parts: list[np.ndarray] = []
    count = 0
    try:
        for b in blocks:
            parts.append(b)
            count += b.shape[1]
            if count >= size:
                yield np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
                parts, count = [], 0
        if parts:
            yield np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    finally:
        blocks.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    text = text[0] if text else type(exc).__name__
    return text[:300]


def load(path: str | os.PathLike, *, stream: int = 0, offset: float = 0.0, duration: float | None = None) -> tuple[np.ndarray, int]:
    """Decode a file to float32 ``(channels, samples)`` and its sample rate."""
    reader = AudioReader(path, stream=stream, offset=offset, duration=duration)
    return reader.read(), reader.sample_rate


def resample(x: np.ndarray, src_rate: int, dst_rate: int, quality: str = "HQ") -> np.ndarray:
    """Resample float32 ``(channels, samples)`` with soxr.

    Output length ``round(n * dst / src)`` (soxr's); callers that need an exact
    length crop or pad.
    """
    if src_rate == dst_rate:
        return x
    # soxr's extension module (nanobind) crashes when a signal's exception (SIGTERM during separate)
    # is raised inside its initialisation: the first import holds that exception back until it is done
    with deferred_signals():
        import soxr

    if x.shape[-1] == 0:
        return np.zeros((x.shape[0], 0), np.float32)
    y = soxr.resample(np.ascontiguousarray(x.T), src_rate, dst_rate, quality=quality)
    return np.ascontiguousarray(y.T, dtype=np.float32)


def check_format(fmt: str, bit_depth: str) -> None:
    """Refuse a sample format the output format cannot store (:class:`OutputError`)."""
    if bit_depth not in BIT_DEPTHS:
        raise OutputError(f"unsupported bit depth {bit_depth!r}; choose one of {', '.join(BIT_DEPTHS)}")
    if fmt == "flac" and bit_depth in ("32", "float"):
        raise OutputError("FLAC stores at most 24-bit integers; use --bit-depth 16 or 24, or WAV for float")


class AudioWriter:
    """Streams float32 ``(channels, n)`` blocks into a file, atomically.

    Data goes to a hidden temporary file in the target's folder; ``commit()``
    (or leaving the ``with`` block normally) renames it into place; an
    exception discards it.  Integer formats clip samples outside [-1, 1] and
    report how many were clipped (``clipped``); nothing is rescaled.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int, *, fmt: str | None = None, bit_depth: str = "16", bitrate: int = 320):
        self.path = Path(path)
        fmt = (fmt or self.path.suffix.lstrip(".")).lower()
        if fmt not in OUTPUT_FORMATS:
            raise OutputError(f"{self.path}: unsupported output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
        bit_depth = str(bit_depth)
        check_format(fmt, bit_depth)
        if fmt == "mp3" and sample_rate not in _MP3_RATES:
            raise OutputError(f"{self.path}: MP3 cannot store {sample_rate} Hz; use WAV or FLAC")
        self.fmt = fmt
        self.bit_depth = bit_depth
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.bitrate = int(bitrate)
        self.clipped = 0
        self.frames = 0
        self._tmp = temp_beside(self.path)
        self._closed = False
        try:
            self._open()
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def _open(self) -> None:
        if self.fmt in ("wav", "flac"):
            import soundfile as sf

            self._sf = sf.SoundFile(
                self._tmp, "w", samplerate=self.sample_rate, channels=self.channels,
                subtype=_SF_SUBTYPES[self.bit_depth], format=self.fmt.upper(),
            )
        else:
            import av

            self._container = av.open(str(self._tmp), "w", format="mp3")
            layout = {1: "mono", 2: "stereo"}.get(self.channels)
            if layout is None:
                raise OutputError(f"{self.path}: MP3 stores 1 or 2 channels, not {self.channels}")
            self._stream = self._container.add_stream("libmp3lame", rate=self.sample_rate, layout=layout)
            self._stream.bit_rate = self.bitrate * 1000
            self._pts = 0

    def write(self, block: np.ndarray) -> None:
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected ({self.channels}, samples), got {block.shape}")
        block = np.asarray(block, dtype=np.float32)
        if self.bit_depth != "float" or self.fmt == "mp3":
            over = np.abs(block) > 1.0
            n = int(over.sum())
            if n:
                self.clipped += n
                block = np.clip(block, -1.0, 1.0)
        self.frames += block.shape[1]
        if self.fmt in ("wav", "flac"):
            try:
                self._sf.write(block.T)
            except Exception as exc:  # noqa: BLE001 - libsndfile says "System error." without the system's reason
                raise self._write_error(exc) from None
        else:
            import av

            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout=self._stream.layout.name)
            frame.sample_rate = self.sample_rate
            frame.pts = self._pts
            self._pts += block.shape[1]
            try:
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
            except OSError as exc:  # PyAV's errors carry the system's reason
                raise OutputError(f"{self.path}: cannot write: {exc.strerror or exc}") from None

    def _write_error(self, exc: Exception) -> OutputError:
        """One line naming the output and the reason (libsndfile's own text holds the system's: "No space left on device")."""
        reason = str(exc)
        try:
            import soundfile as sf

            reason = sf._ffi.string(sf._snd.sf_strerror(self._sf._file)).decode("utf-8", "replace") or reason
        except Exception:  # noqa: BLE001 - the generic message is all there is
            pass
        reason = reason.removeprefix("System error : ").rstrip(".") or reason
        return OutputError(f"{self.path}: cannot write: {reason}")

    def _close_handles(self) -> None:
        if self.fmt in ("wav", "flac"):
            self._sf.close()
        else:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()

    def commit(self) -> Path:
        if self._closed:
            return self.path
        self._closed = True
        try:
            try:
                self._close_handles()
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
            except RuntimeError as exc:  # libsndfile, flushing the header
                raise self._write_error(exc) from None
            publish(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        if self.clipped:
            keep = "--bit-depth float" if self.fmt == "wav" else "--format wav --bit-depth float"
            log.warning("%s: %d sample%s outside [-1, 1] and clipped; use %s to keep them", self.path, self.clipped,
                        " was" if self.clipped == 1 else "s were", keep)
        return self.path

    def discard(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.fmt in ("wav", "flac"):
                self._sf.close()
            else:
                self._container.close()
        except Exception:  # noqa: BLE001
            pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "AudioWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def save(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *, bit_depth: str = "16", fmt: str | None = None) -> Path:
    """Write float32 ``(channels, samples)`` to ``path`` atomically."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ValueError(f"expected (channels, samples), got shape {audio.shape}")
    with AudioWriter(path, sample_rate, audio.shape[0], fmt=fmt, bit_depth=bit_depth) as w:
        w.write(audio)
    return Path(path)


def duration_of(frames: int | None, rate: int) -> float:
    return math.nan if frames is None else frames / rate
