"""The length a RIFF WAV file's header declares, read without decoding: a file that holds less was cut
short (libsndfile counts the frames the file holds, so it cannot tell)."""

from __future__ import annotations

import os
import struct


def wav_declared_frames(path: str) -> int | None:
    """The frames a RIFF WAV file's data chunk declares, or None: a size of 0 or 0xFFFFFFFF (a stream
    written without knowing its length) and RF64 files declare nothing checkable."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        align = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, n = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(min(n, 16))
                if len(fmt) < 14:
                    return None
                align = struct.unpack("<H", fmt[12:14])[0]
                f.seek(n - len(fmt) + (n & 1), os.SEEK_CUR)
            elif cid == b"data":
                return None if not align or n in (0, 0xFFFFFFFF) else n // align
            else:
                f.seek(n + (n & 1), os.SEEK_CUR)
