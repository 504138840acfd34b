"""Helpers of the web app's tests: audio files to upload, a multipart HTTP client, a worker gate."""

from __future__ import annotations

import io
import json
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import synth_song
from server_process import start_server

RATE = 22050


def wav_bytes(seconds: float = 2.0, seed: int = 0, rate: int = RATE, channels: int = 2, audio: np.ndarray | None = None) -> bytes:
    x = synth_song(seconds, rate, channels=channels, seed=seed) if audio is None else audio
    buf = io.BytesIO()
    sf.write(buf, x.T, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type, file names escaped as browsers do (HTML's rule:
    '"', CR and LF as %22, %0D and %0A)."""
    boundary = uuid.uuid4().hex

    def escape(name: str) -> str:
        return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")

    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for k, (name, data) in files.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{escape(name)}"\r\n'
                  f'Content-Type: application/octet-stream\r\n\r\n'.encode())
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Http:
    """A small client of a running server: ``call(method, path, ...) -> (status, body, headers)``;
    JSON bodies are decoded."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120):
        self.url = url
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, data: bytes | None = None, content_type: str | None = None):
        headers = {"Content-Type": content_type} if content_type else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                body, status, hdrs = r.read(), r.status, r.headers
        except urllib.error.HTTPError as e:
            body, status, hdrs = e.read(), e.code, e.headers
        if hdrs.get_content_type() == "application/json":
            body = json.loads(body)
        return status, body, hdrs

    def upload(self, name: str, data: bytes, model: str | None = None):
        body, ctype = multipart({"model": model} if model else {}, {"file": (name, data)})
        return self.call("POST", "api/jobs", body, ctype)

    def job(self, job_id: str) -> dict:
        status, body, _ = self.call("GET", f"api/jobs/{job_id}")
        assert status == 200, body
        return body

    def wait(self, job_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in ("done", "failed"):
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish: {job}")


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """int16 samples ``(frames, channels)`` of a WAV or FLAC file's bytes."""
    x, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    return x, rate


class Gate:
    """A separator loader for tests: each job waits at its start until :attr:`open` is set (and can
    be deleted or interrupted meanwhile), then the real separator runs."""

    def __init__(self):
        self.open = threading.Event()
        self.started: queue.Queue = queue.Queue()

    def __call__(self, spec):
        from vocalsep.separator import Separator

        real = Separator.from_pretrained(spec)
        gate = self

        class Held:
            def separate_file(self, path, *args, progress, **kwargs):
                gate.started.put(Path(path).parent.name)
                while not gate.open.wait(0.02):
                    progress(0)  # where a real job notices that it was deleted or that the server stops
                return real.separate_file(path, *args, progress=progress, **kwargs)

        return Held()


def serve_process(args: list, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """``vocalsep web ARGS --port 0`` in a process of its own; returns it and its address."""
    proc, url = start_server([sys.executable, "-m", "vocalsep", "web", *map(str, args), "--port", "0"], "vocalsep: open ", env)
    return proc, url.split("#", 1)[0]
