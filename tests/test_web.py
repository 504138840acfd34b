"""``vocalsep web``: every API route, every bad upload, the queue, restarts, and the command line.

The jobs run tiny random-weight models on short synthetic songs (conftest), so that the tests are
fast; tests/test_web_browser.py separates a real song with the shipped model in a real browser."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("flask", reason="the web app needs vocalsep[web] (flask, waitress)")
pytest.importorskip("waitress", reason="the web app needs vocalsep[web] (flask, waitress)")

from web_support import Gate, Http, decode, multipart, serve_process, wav_bytes

from conftest import synth_song
from vocalsep._webapp import BackgroundServer
from vocalsep.errors import ConfigError
from vocalsep.separator import Separator
from vocalsep.web.media import clean_name, peaks
from vocalsep.web.server import create_app
from vocalsep.web.store import ID_RE, JobStore

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
def make_app(tmp_path, tiny_model_dir):
    """``make_app(**options)``: an app on ``tmp_path/data`` with the tiny model; its workers stop afterwards."""
    apps = []

    def make(data: Path | None = None, **kw):
        kw.setdefault("models", {"tiny": str(tiny_model_dir)})
        kw.setdefault("default_model", "tiny")
        app = create_app(data or tmp_path / "data", **kw)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.config["POOL"].stop()


def upload(client, name: str, data: bytes, **fields):
    return client.post("/api/jobs", data={"file": (io.BytesIO(data), name), **fields})


def wait(client, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def assert_clean(data: Path, jobs: int = 0) -> None:
    """Nothing is left of refused uploads: only the stored jobs' folders, an empty tmp/."""
    store = JobStore(data)
    assert sorted(p.name for p in (data / "jobs").iterdir()) == sorted(j["id"] for j in store.all() if j["status"] != "failed")
    assert len(store.all()) == jobs
    assert list((data / "tmp").iterdir()) == []


def test_upload_play_download_delete(make_app, tmp_path, tiny_model_dir):
    app = make_app(workers=2)
    c = app.test_client()
    song = wav_bytes(3.0, seed=1)
    r = upload(c, "My Song.wav", song)
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert ID_RE.match(job["id"]) and r.headers["Location"].endswith(f"/api/jobs/{job['id']}")
    assert job["status"] in ("queued", "running") and job["name"] == "My Song.wav" and job["model"] == "tiny"
    assert job["duration"] == 3.0 and job["sample_rate"] == 22050 and job["channels"] == 2
    assert upload(c, "My Song.wav", song).get_json()["id"] != job["id"]  # the same file again is another job
    done = wait(c, job["id"])
    assert done["status"] == "done" and done["progress"] == 1.0 and done["error"] is None and done["position"] is None

    listed = c.get("/api/jobs").get_json()
    assert len(listed["jobs"]) == 2 and listed["jobs"][1]["id"] == job["id"]  # newest first
    assert listed["queue"]["max"] == 32 and listed["queue"]["workers"] == 2

    # the stems are the separator's, 16-bit WAV
    src = tmp_path / "My Song.wav"
    src.write_bytes(song)
    Separator.from_pretrained(str(tiny_model_dir)).separate_file(src, tmp_path / "direct")
    stems = {}
    for stem in ("vocals", "accompaniment"):
        r = c.get(f"/api/jobs/{job['id']}/{stem}.wav")
        assert r.status_code == 200 and r.mimetype == "audio/wav"
        assert r.headers["Content-Disposition"] == f'attachment; filename="My Song ({stem}).wav"'
        assert r.data == (tmp_path / "direct" / "My Song" / f"{stem}.wav").read_bytes()
        stems[stem] = decode(r.data)[0]
        flac = c.get(f"/api/jobs/{job['id']}/{stem}.flac")
        assert flac.mimetype == "audio/flac" and np.array_equal(decode(flac.data)[0], stems[stem])
        mp3 = c.get(f"/api/jobs/{job['id']}/{stem}.mp3")
        assert mp3.status_code == 200 and mp3.mimetype == "audio/mpeg"
        p = tmp_path / f"{stem}.mp3"
        p.write_bytes(mp3.data)
        from vocalsep.audio import load

        x, rate = load(p)
        assert rate == 22050 and x.shape[0] == 2 and abs(x.shape[1] - 3 * 22050) < 2000
    # a range of a stem (the browser's media elements ask for them)
    r = c.get(f"/api/jobs/{job['id']}/vocals.wav", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.data) == 100
    r = c.get(f"/api/jobs/{job['id']}/vocals.wav", headers={"Range": "bytes=50000000-50000010"})  # past its end: JSON too
    assert r.status_code == 416 and r.is_json and "range" in r.get_json()["error"] and r.headers["Content-Range"].startswith("bytes */")

    # the mix at a vocal level, and with the accompaniment muted
    r = c.get(f"/api/jobs/{job['id']}/mix.wav?vocals=0.35")
    assert r.status_code == 200 and "mix, vocals 35 %" in r.headers["Content-Disposition"]
    want = 0.35 * stems["vocals"].astype(np.float64) + stems["accompaniment"]
    assert np.abs(decode(r.data)[0] - np.clip(want, -32768, 32767)).max() <= 1
    r = c.get(f"/api/jobs/{job['id']}/mix.flac?vocals=1&accompaniment=0")
    assert np.abs(decode(r.data)[0].astype(int) - stems["vocals"]).max() <= 1
    for bad in ("vocals=1.5", "vocals=-0.1", "vocals=nan", "vocals=x", "accompaniment=2"):
        r = c.get(f"/api/jobs/{job['id']}/mix.wav?{bad}")
        assert r.status_code == 400 and "gain from 0 to 1" in r.get_json()["error"]

    # both stems in one ZIP
    r = c.get(f"/api/jobs/{job['id']}/stems.zip?format=flac")
    assert r.status_code == 200 and r.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.data)) as z:
        assert sorted(z.namelist()) == ["My Song (accompaniment).flac", "My Song (vocals).flac"]
        assert np.array_equal(decode(z.read("My Song (vocals).flac"))[0], stems["vocals"])
    assert c.get(f"/api/jobs/{job['id']}/stems.zip?format=ogg").status_code == 400

    # the waveform
    w = c.get(f"/api/jobs/{job['id']}/peaks").get_json()
    assert w["buckets"] == 1200 and w["duration"] == 3.0 and len(w["vocals"]) == len(w["accompaniment"]) == 1200
    assert 0 < max(w["vocals"]) <= 1 and w["accompaniment"][0] == pytest.approx(np.abs(stems["accompaniment"][:55]).max() / 32768, abs=1e-3)

    for path in ("input.wav", "vocals.ogg", "peaks.json", "jobs.sqlite", "mix.wav.part"):
        assert c.get(f"/api/jobs/{job['id']}/{path}").status_code == 404
    # the upload is not kept once separated; nothing temporary is left
    folder = tmp_path / "data" / "jobs" / job["id"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["accompaniment.flac", "accompaniment.mp3", "accompaniment.wav", "peaks.json", "vocals.flac", "vocals.mp3", "vocals.wav"])
    assert list((tmp_path / "data" / "tmp").iterdir()) == []

    r = c.delete(f"/api/jobs/{job['id']}")
    assert r.status_code == 200 and r.get_json() == {"deleted": job["id"]}
    assert not folder.exists()
    assert c.get(f"/api/jobs/{job['id']}").status_code == 404
    assert c.get(f"/api/jobs/{job['id']}/vocals.wav").status_code == 404
    assert c.delete(f"/api/jobs/{job['id']}").status_code == 404


def _silent() -> bytes:
    return wav_bytes(audio=np.zeros((2, 22050), np.float32))


def _no_samples() -> bytes:
    return wav_bytes(audio=np.zeros((2, 0), np.float32))


BAD_UPLOADS = [
    # (name, bytes, status, words of the message)
    ("empty.mp3", b"", 400, "empty.mp3 is empty (0 bytes)"),
    ("notes.txt", b"just some text, not audio\n" * 50, 415, "notes.txt is not an audio or video file that vocalsep can read"),
    ("broken.mp3", bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8)), 415, "broken.mp3 is not an audio or video file"),
    ("cut.wav", wav_bytes(1.0)[:30], 415, "cut.wav is not an audio or video file"),
    ("short.wav", wav_bytes(2.0)[: len(wav_bytes(2.0)) // 2], 415, "short.wav is truncated: its header declares 2.0 s of audio"),
    ("picture.png", b"\x89PNG\r\n\x1a\n" + bytes(2000), 415, "picture.png"),
    ("silence.wav", _silent(), 422, "silence.wav is silent (every sample is zero): there is nothing to separate"),
    ("nothing.wav", _no_samples(), 422, "nothing.wav contains no audio samples"),
]


@pytest.mark.parametrize("name,data,status,message", BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_upload_is_refused_and_leaves_nothing(make_app, tmp_path, name, data, status, message):
    app = make_app()
    c = app.test_client()
    r = upload(c, name, data)
    assert r.status_code == status and r.is_json
    assert message in r.get_json()["error"]
    assert str(tmp_path) not in r.get_json()["error"]  # never the server's paths
    assert_clean(tmp_path / "data")


def test_other_refusals_leave_nothing(make_app, tmp_path):
    app = make_app(max_mb=0.2, models={"tiny": "x", "other": "y"}, start=False)  # no worker: nothing runs
    c = app.test_client()
    r = c.post("/api/jobs", data={"song": (io.BytesIO(wav_bytes(1.0)), "a.wav")})
    assert r.status_code == 400 and "field 'file'" in r.get_json()["error"]
    r = c.post("/api/jobs", data=b"raw bytes", content_type="audio/wav")
    assert r.status_code == 400 and "field 'file'" in r.get_json()["error"]
    r = c.post("/api/jobs", data={"file": [(io.BytesIO(wav_bytes(1.0)), "a.wav"), (io.BytesIO(wav_bytes(1.0)), "b.wav")]})
    assert r.status_code == 400 and r.get_json()["error"] == "send one file per request (this one has 2 in the field 'file')"
    r = upload(c, "a.wav", wav_bytes(1.0), model="../../etc")
    assert r.status_code == 400 and r.get_json()["error"] == "unknown model '../../etc'; this server offers tiny, other"
    # larger than --max-mb: by a little (the file is measured) and by a lot (the request is refused unread)
    r = upload(c, "big.wav", wav_bytes(6.0))
    assert r.status_code == 413 and r.get_json()["error"] == "big.wav is larger than the limit of 0.2 MB"
    r = upload(c, "huge.wav", bytes(1_500_000))
    assert r.status_code == 413 and r.get_json()["error"] == "the upload is larger than the limit of 0.2 MB"
    assert_clean(tmp_path / "data")
    assert upload(c, "ok.wav", wav_bytes(1.0), model="other").status_code == 202
    assert JobStore(tmp_path / "data").all()[0]["model"] == "other"


def test_video_and_any_name(make_app, tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mov"
    rate, seconds = 44100, 2.0
    audio = synth_song(seconds, rate)
    with av.open(str(path), "w", format="mov") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("aac", rate=rate, layout="stereo")
        for k in range(int(seconds * 10)):
            for p in v.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * k, np.uint8), format="rgb24")):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        for s in range(0, audio.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, s:s + 1024]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, s
            for p in a.encode(frame):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
    app = make_app()
    c = app.test_client()
    jobs = [upload(c, "holiday clip.mov", path.read_bytes()).get_json(), upload(c, "no extension", wav_bytes(1.0)).get_json()]
    for job in jobs:
        done = wait(c, job["id"])
        assert done["status"] == "done", done
    x, r = decode(c.get(f"/api/jobs/{jobs[0]['id']}/vocals.wav").data)
    assert r == rate and x.shape[1] == 2 and abs(x.shape[0] - seconds * rate) < 2048
    assert c.get(f"/api/jobs/{jobs[0]['id']}/vocals.wav").headers["Content-Disposition"] == \
        'attachment; filename="holiday clip (vocals).wav"'


def test_names_are_only_text(make_app):
    app = make_app(start=False)
    c = app.test_client()
    body, ctype = multipart({}, {"file": ('<img src=x onerror=alert(1)> "1"\tX\u202e.wav', wav_bytes(1.0))})
    job = c.post("/api/jobs", data=body, content_type=ctype).get_json()
    assert job["name"] == '<img src=x onerror=alert(1)> "1"X.wav'  # shown only as text; control characters dropped
    assert clean_name("a\x00\tb\u200f.wav") == "ab.wav"
    job = upload(c, "/home/me/Music/../song.wav", wav_bytes(1.0)).get_json()
    assert job["name"] == "song.wav"  # only the last component of a path a browser sends
    job = upload(c, "../../" + "a" * 300 + ".flac", wav_bytes(1.0)).get_json()
    assert len(job["name"]) == 200 and job["name"].endswith(".flac")
    page = c.get("/").get_data(as_text=True)
    assert "<img" not in page  # the page has no server-side data: names reach it as JSON, shown as text
    assert "textContent" in c.get("/static/web.js").get_data(as_text=True)
    assert "innerHTML" not in c.get("/static/web.js").get_data(as_text=True)


def test_content_disposition_cannot_be_broken(make_app):
    app = make_app()
    c = app.test_client()
    body, ctype = multipart({}, {"file": ('say "hi";\tthere\u00e9.wav', wav_bytes(1.0))})
    job = c.post("/api/jobs", data=body, content_type=ctype).get_json()
    wait(c, job["id"])
    cd = c.get(f"/api/jobs/{job['id']}/vocals.wav").headers["Content-Disposition"]
    assert "\r" not in cd and "\n" not in cd and "\t" not in cd
    from werkzeug.http import parse_options_header

    kind, params = parse_options_header(cd)
    assert kind == "attachment" and params["filename"] == 'say "hi";there\u00e9 (vocals).wav'


def test_ids_and_paths(make_app, tmp_path):
    app = make_app(start=False)
    c = app.test_client()
    ids = {upload(c, f"s{k}.wav", wav_bytes(1.0, seed=k)).get_json()["id"] for k in range(5)}
    assert len(ids) == 5 and all(ID_RE.match(i) for i in ids)
    some = next(iter(ids))
    for path in ("../jobs.sqlite", "..%2Fjobs.sqlite", "%2e%2e", "x" * 22, some[:-1], some + "a", some.lower() if some.lower() != some else "A" * 22):
        r = c.get(f"/api/jobs/{path}")
        assert r.status_code == 404 and r.is_json, path
        assert c.delete(f"/api/jobs/{path}").status_code in (404, 405)
    for path in (f"{some}/../../jobs.sqlite", f"{some}/..%2F..%2Fjobs.sqlite", f"{some}/input.wav", f"{some}/%2e%2e%2fvocals.wav"):
        assert c.get(f"/api/jobs/{path}").status_code == 404, path
    r = c.get(f"/api/jobs/{some}/vocals.wav")  # not separated (no worker runs)
    assert r.status_code == 409 and "s" in r.get_json()["error"] and "queued" in r.get_json()["error"]
    assert c.get(f"/api/jobs/{some}/peaks").status_code == 409
    assert c.get("/static/../web/server.py").status_code == 404


def test_full_queue_answers_429(make_app, tmp_path):
    gate = Gate()
    app = make_app(max_queue=2, load=gate)
    c = app.test_client()
    first = upload(c, "a.wav", wav_bytes(1.0, seed=1)).get_json()["id"]
    assert gate.started.get(timeout=30) == first  # the worker holds it: running
    assert c.get(f"/api/jobs/{first}").get_json()["status"] == "running"
    second = upload(c, "b.wav", wav_bytes(1.0, seed=2)).get_json()["id"]
    third = upload(c, "c.wav", wav_bytes(1.0, seed=3)).get_json()["id"]
    assert [c.get(f"/api/jobs/{j}").get_json()["position"] for j in (second, third)] == [1, 2]
    t = time.monotonic()
    r = upload(c, "d.wav", wav_bytes(1.0, seed=4))
    assert time.monotonic() - t < 5
    assert r.status_code == 429 and r.headers["Retry-After"] == "10" and "queue is full" in r.get_json()["error"]
    assert_clean(tmp_path / "data", jobs=3)
    # deleting a queued job makes room, and moves the others up
    assert c.delete(f"/api/jobs/{second}").status_code == 200
    assert c.get(f"/api/jobs/{third}").get_json()["position"] == 1
    fourth = upload(c, "d.wav", wav_bytes(1.0, seed=4))
    assert fourth.status_code == 202 and fourth.get_json()["position"] == 2
    gate.open.set()
    assert [wait(c, j)["status"] for j in (first, third, fourth.get_json()["id"])] == ["done"] * 3
    assert_clean(tmp_path / "data", jobs=3)


def test_delete_a_running_job(make_app, tmp_path):
    gate = Gate()
    app = make_app(load=gate)
    c = app.test_client()
    job = upload(c, "a.wav", wav_bytes(1.0)).get_json()["id"]
    gate.started.get(timeout=30)
    assert c.delete(f"/api/jobs/{job}").status_code == 200
    assert c.get(f"/api/jobs/{job}").status_code == 404
    deadline = time.monotonic() + 10
    while (tmp_path / "data" / "jobs" / job).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not (tmp_path / "data" / "jobs" / job).exists()  # the worker stopped and removed it
    gate.open.set()
    nxt = upload(c, "b.wav", wav_bytes(1.0)).get_json()["id"]
    assert wait(c, nxt)["status"] == "done"  # the worker goes on


def test_failed_job_says_why(make_app, tmp_path):
    def broken(spec):
        raise RuntimeError("this model is broken")

    app = make_app(load=broken)
    c = app.test_client()
    job = wait(c, upload(c, "a.wav", wav_bytes(1.0)).get_json()["id"])
    assert job["status"] == "failed" and job["error"] == "a.wav: separation failed (RuntimeError: this model is broken)"
    assert c.get(f"/api/jobs/{job['id']}/vocals.wav").status_code == 409
    assert not (tmp_path / "data" / "jobs" / job["id"]).exists()  # the upload is not kept
    assert c.delete(f"/api/jobs/{job['id']}").status_code == 200


def test_retention_keeps_the_last_finished(make_app, tmp_path):
    app = make_app(keep=2)
    c = app.test_client()
    ids = []
    for k in range(3):
        ids.append(upload(c, f"s{k}.wav", wav_bytes(1.0, seed=k)).get_json()["id"])
        wait(c, ids[-1])
    # the oldest is gone as the third is done (one transaction), its folder right after
    assert [j["id"] for j in c.get("/api/jobs").get_json()["jobs"]] == ids[:0:-1]
    assert c.get(f"/api/jobs/{ids[0]}").status_code == 404
    deadline = time.monotonic() + 10
    while (tmp_path / "data" / "jobs" / ids[0]).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not (tmp_path / "data" / "jobs" / ids[0]).exists()
    assert (tmp_path / "data" / "jobs" / ids[1]).is_dir()


def test_mp3_of_many_channels_is_refused_clearly(make_app, tmp_path):
    app = make_app()
    c = app.test_client()
    job = wait(c, upload(c, "surround.wav", wav_bytes(1.0, channels=3)).get_json()["id"])
    assert job["status"] == "done" and job["channels"] == 3
    r = c.get(f"/api/jobs/{job['id']}/vocals.mp3")
    assert r.status_code == 422 and "MP3 stores 1 or 2 channels" in r.get_json()["error"] and str(tmp_path) not in r.get_json()["error"]
    r = c.get(f"/api/jobs/{job['id']}/mix.mp3")  # the mix is written to a temporary file: its path is not shown either
    assert r.status_code == 422 and r.get_json()["error"].startswith("mix.mp3: MP3 stores 1 or 2 channels"), r.get_json()
    assert not list((tmp_path / "data" / "tmp").iterdir())
    assert c.get(f"/api/jobs/{job['id']}/vocals.flac").status_code == 200
    assert not list((tmp_path / "data" / "jobs" / job["id"]).glob(".*"))


def test_token(make_app, tmp_path):
    app = make_app(token=TOKEN, start=False)
    c = app.test_client()
    assert c.get("/").status_code == 200 and c.get("/static/web.js").status_code == 200  # the page asks for the token
    for method, path in (("GET", "/api/config"), ("GET", "/api/jobs"), ("POST", "/api/jobs"), ("GET", "/api/jobs/" + "a" * 22),
                         ("DELETE", "/api/jobs/" + "a" * 22)):
        r = c.open(path, method=method)
        assert r.status_code == 401 and "token" in r.get_json()["error"], path
    assert c.get("/api/jobs", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"}).status_code == 401
    assert c.get("/api/jobs", headers={"Authorization": "Bearer " + TOKEN}).status_code == 200
    assert c.get("/api/jobs", headers={"Authorization": "bearer  " + TOKEN}).status_code == 200  # the scheme in any case
    assert c.post("/api/session", json={"token": "wrong"}).status_code == 401
    assert c.get("/api/jobs").status_code == 401
    r = c.post("/api/session", json={"token": TOKEN})
    assert r.status_code == 204
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert c.get("/api/jobs").status_code == 200  # the cookie
    assert upload(c, "a.wav", wav_bytes(1.0)).status_code == 202
    with pytest.raises(Exception, match="16 to 128"):
        create_app(tmp_path / "other", models={"tiny": "x"}, default_model="tiny", token="short", start=False)


def test_other_hosts_and_sites_are_refused(make_app):
    app = make_app(start=False)
    c = app.test_client()
    assert c.get("/api/jobs").status_code == 200
    for host in ("127.0.0.1:8000", "[::1]:8000", "localhost"):
        assert c.get("/api/jobs", headers={"Host": host}).status_code == 200, host
    r = c.get("/api/jobs", headers={"Host": "evil.example:8000"})  # DNS rebinding
    assert r.status_code == 403 and "loopback" in r.get_json()["error"]
    assert c.get("/", headers={"Host": "evil.example"}).status_code == 403
    r = c.post("/api/jobs", data={"file": (io.BytesIO(wav_bytes(1.0)), "a.wav")}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "another site" in r.get_json()["error"]
    r = c.post("/api/jobs", data={"file": (io.BytesIO(wav_bytes(1.0)), "a.wav")}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    r = c.post("/api/jobs", data={"file": (io.BytesIO(wav_bytes(1.0)), "a.wav")}, headers={"Origin": "http://localhost"})
    assert r.status_code == 202
    job = r.get_json()["id"]
    assert c.delete(f"/api/jobs/{job}", headers={"Origin": "http://localhost:9999"}).status_code == 403
    assert c.delete(f"/api/jobs/{job}").status_code == 200


def test_config_and_page(make_app):
    app = make_app(models={"tiny": "x", "b": "y"}, keep=7, max_mb=12.5, max_queue=5, workers=2, start=False)
    c = app.test_client()
    cfg = c.get("/api/config").get_json()
    assert cfg["models"] == ["tiny", "b"] and cfg["default_model"] == "tiny" and cfg["max_mb"] == 12.5 and cfg["keep"] == 7
    assert cfg["max_queue"] == 5 and cfg["workers"] == 2 and cfg["formats"] == ["wav", "flac", "mp3"] and ".mp3" in cfg["accept"]
    r = c.get("/")
    assert r.status_code == 200 and "default-src 'self'" in r.headers["Content-Security-Policy"]
    page = r.get_data(as_text=True)
    assert "http://" not in page and "https://" not in page  # nothing from the network
    for f in ("web.js", "web.css"):
        text = c.get(f"/static/{f}").get_data(as_text=True)
        assert "http://" not in text and "https://" not in text
    assert c.get("/api/jobs").headers["Cache-Control"] == "no-store"
    r = c.put("/api/jobs")
    assert r.status_code == 405 and r.is_json and set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_a_job_a_worker_has_taken_is_running_not_queued_without_a_place(make_app):
    """Between a worker taking a job and its row saying so, the job is shown running (not queued with
    no place in the queue)."""
    app = make_app(start=False)
    c = app.test_client()
    r = upload(c, "a.wav", wav_bytes(1.0))
    assert r.status_code == 202 and (r.get_json()["status"], r.get_json()["position"]) == ("queued", 1)
    job_id = r.get_json()["id"]
    assert app.config["POOL"]._next() == job_id  # what a worker does first, before its row says running
    assert app.config["STORE"].get(job_id)["status"] == "queued"
    j = c.get(f"/api/jobs/{job_id}").get_json()
    assert (j["status"], j["position"]) == ("running", None)
    q = c.get("/api/jobs").get_json()
    assert q["queue"]["running"] == 1 and q["queue"]["waiting"] == 0 and q["jobs"][0]["status"] == "running"


def test_data_that_is_not_a_folder_is_one_line(tmp_path, capsys):
    from vocalsep.cli import main

    (tmp_path / "file").write_text("x")
    for data in (tmp_path / "file", tmp_path / "file" / "sub"):
        assert main(["web", "--port", "0", "--data", str(data)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(data) in err[0] and "cannot keep the web app's jobs there" in err[0], err
    assert (tmp_path / "file").read_text() == "x"


def test_store_recovers_after_a_crash(tmp_path):
    data = tmp_path / "data"
    store = JobStore(data)
    facts = dict(size=10, sample_rate=8000, channels=1, frames=8000, model="tiny")
    ids = {}
    for k, name in enumerate(["done", "missing", "running", "crashy", "queued", "lost"]):
        ids[name] = f"{name:_<22}"[:22]
        (data / "jobs" / ids[name]).mkdir()
        (data / "jobs" / ids[name] / "input.wav").write_bytes(b"x")
        store.add(ids[name], name=f"{name}.wav", input="input.wav", **facts)
    for name in ("done", "missing"):
        store.start(ids[name])
        for f in ("vocals.wav", "accompaniment.wav", "peaks.json"):
            (data / "jobs" / ids[name] / f).write_bytes(b"x")
        store.finish(ids[name])
    (data / "jobs" / ids["missing"] / "vocals.wav").unlink()
    (data / "jobs" / ids["done"] / ".vocals.mp3.abc.part").write_bytes(b"half")
    store.start(ids["running"])
    (data / "jobs" / ids["running"] / "vocals.wav").write_bytes(b"complete but its job is not")
    (data / "jobs" / ids["running"] / ".accompaniment.wav.xyz.part").write_bytes(b"half")
    with store.db.transaction() as db:
        db.execute("UPDATE jobs SET status = 'running', attempts = 2 WHERE id = ?", (ids["crashy"],))
    (data / "jobs" / ids["lost"] / "input.wav").unlink()
    (data / "jobs" / "orphan_______________").mkdir()
    (data / "tmp" / "upload-in-progress").write_bytes(b"x")

    rec = JobStore(data).recover(max_attempts=2)
    assert rec.resumed == (ids["running"],)
    assert set(rec.failed) == {ids["missing"], ids["crashy"], ids["lost"]}
    jobs = {j["id"]: j for j in store.all()}
    assert jobs[ids["done"]]["status"] == "done"
    assert sorted(p.name for p in (data / "jobs" / ids["done"]).iterdir()) == ["accompaniment.wav", "input.wav", "peaks.json", "vocals.wav"]
    assert jobs[ids["running"]]["status"] == "queued" and jobs[ids["running"]]["progress"] == 0
    assert sorted(p.name for p in (data / "jobs" / ids["running"]).iterdir()) == ["input.wav"]
    assert jobs[ids["crashy"]]["status"] == "failed" and "stopped 2 times while separating crashy.wav" in jobs[ids["crashy"]]["error"]
    assert "missing from the data folder" in jobs[ids["missing"]]["error"] and "upload" in jobs[ids["lost"]]["error"]
    assert jobs[ids["queued"]]["status"] == "queued"
    assert not (data / "jobs" / "orphan_______________").exists() and list((data / "tmp").iterdir()) == []
    assert JobStore(data).queued() == [ids["running"], ids["queued"]]


def test_a_stopping_server_requeues_its_running_job(make_app, tmp_path):
    gate = Gate()
    app = make_app(load=gate)
    c = app.test_client()
    job = upload(c, "a.wav", wav_bytes(1.0)).get_json()["id"]
    gate.started.get(timeout=30)
    app.config["POOL"].stop()
    row = JobStore(tmp_path / "data").get(job)
    assert row["status"] == "queued" and row["attempts"] == 0
    again = make_app()  # the same data folder
    assert wait(again.test_client(), job)["status"] == "done"


def test_one_server_per_data_folder(make_app, tmp_path):
    make_app()
    with pytest.raises(ConfigError, match="in use by another 'vocalsep web'"):
        make_app()
    make_app(tmp_path / "elsewhere")


def test_peaks_of_a_known_signal(tmp_path):
    x = np.zeros((2, 1000), np.float32)
    x[0, 10] = 0.5
    x[1, 990] = -0.75
    sf.write(tmp_path / "v.wav", x.T, 8000, subtype="FLOAT")
    p = peaks({"vocals": tmp_path / "v.wav"}, buckets=10)
    assert p["buckets"] == 10 and p["duration"] == 1000 / 8000
    assert p["vocals"] == [0.5] + [0.0] * 8 + [0.75]


# -- the server as the user runs it

def test_twenty_uploads_at_once_equal_the_command_line(tmp_path, tiny_model_dir):
    """20 uploads at the same moment on loopback: every job finishes, and each job's stems are the
    bytes ``vocalsep separate`` writes for the same file and model."""
    songs = tmp_path / "songs"
    songs.mkdir()
    for k in range(20):
        (songs / f"song{k:02d}.wav").write_bytes(wav_bytes(1.0 + 0.05 * k, seed=k, rate=8000))
    app = create_app(tmp_path / "data", models={"tiny": str(tiny_model_dir)}, default_model="tiny", workers=2)
    try:
        with BackgroundServer(app, threads=8, max_request_body_size=app.config["MAX_REQUEST_BODY"]) as srv:
            http = Http(srv.url)
            barrier = threading.Barrier(20)
            answers: dict[str, tuple] = {}

            def send(path: Path) -> None:
                data = path.read_bytes()
                barrier.wait()
                answers[path.stem] = http.upload(path.name, data)

            threads = [threading.Thread(target=send, args=(p,)) for p in sorted(songs.iterdir())]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert sorted(answers) == [f"song{k:02d}" for k in range(20)]
            assert all(status == 202 for status, _, _ in answers.values()), [a[1] for a in answers.values()]
            ids = {name: body["id"] for name, (_, body, _) in answers.items()}
            assert len(set(ids.values())) == 20
            jobs = {name: http.wait(job_id) for name, job_id in ids.items()}
            assert all(j["status"] == "done" for j in jobs.values()), jobs
            stems = {(name, stem): http.call("GET", f"api/jobs/{ids[name]}/{stem}.wav")[1]
                     for name in ids for stem in ("vocals", "accompaniment")}
    finally:
        app.config["POOL"].stop()
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "vocalsep", "separate", str(songs), "-o", str(out), "-m", str(tiny_model_dir), "-q"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    for (name, stem), data in stems.items():
        assert data == (out / name / f"{stem}.wav").read_bytes(), (name, stem)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_killed_server_keeps_finished_jobs_and_resumes_the_rest(tmp_path, tiny_model_dir):
    """SIGKILL with one job done, one running (a segment written) and one queued; after a restart the
    finished job is intact, the others finish, none is lost, and nothing half-written is ever served."""
    songs = []
    for k, seconds in enumerate((3.0, 150.0, 3.0)):
        p = tmp_path / f"song{k}.wav"
        p.write_bytes(wav_bytes(seconds, seed=k, rate=8000))
        songs.append(p)
    data = tmp_path / "data"
    args = ["--data", data, "--model", tiny_model_dir, "--workers", "1"]
    proc, url = serve_process(args)
    try:
        http = Http(url)
        ids = [http.upload(p.name, p.read_bytes())[1]["id"] for p in songs]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            jobs = [http.job(i) for i in ids]
            if jobs[0]["status"] == "done" and any(j["status"] == "running" and j["progress"] > 0 for j in jobs):
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"no job was caught running: {jobs}")
        before = {s: _sha(http.call("GET", f"api/jobs/{ids[0]}/{s}.wav")[1]) for s in ("vocals", "accompaniment")}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    running = [j["id"] for j in jobs if j["status"] == "running"]
    assert len(running) == 1
    assert list((data / "jobs" / running[0]).glob(".*.part"))  # it was cut in the middle of writing

    proc, url = serve_process(args)
    try:
        http = Http(url)
        status, listed, _ = http.call("GET", "api/jobs")
        assert sorted(j["id"] for j in listed["jobs"]) == sorted(ids)  # no job lost
        for j in listed["jobs"]:
            if j["status"] != "done":
                status, body, _ = http.call("GET", f"api/jobs/{j['id']}/vocals.wav")
                assert status == 409, j  # not served before it is done
        assert {s: _sha(http.call("GET", f"api/jobs/{ids[0]}/{s}.wav")[1]) for s in ("vocals", "accompaniment")} == before
        finished = [http.wait(i, timeout=300) for i in ids]
        assert [j["status"] for j in finished] == ["done"] * 3, finished
        resumed = http.call("GET", f"api/jobs/{running[0]}/vocals.wav")[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    k = ids.index(running[0])
    Separator.from_pretrained(str(tiny_model_dir)).separate_file(songs[k], tmp_path / "direct")
    assert resumed == (tmp_path / "direct" / songs[k].stem / "vocals.wav").read_bytes()
    assert JobStore(data).get(running[0])["attempts"] == 2
    assert not list(data.glob("jobs/*/.*.part")) and list((data / "tmp").iterdir()) == []


# -- the command line

def test_command_line(tmp_path, monkeypatch):
    from vocalsep import cli

    r = subprocess.run([sys.executable, "-m", "vocalsep", "web", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--token" in r.stdout and "--keep" in r.stdout and "--max-mb" in r.stdout
    code = "import sys; from vocalsep import cli; cli.build_parser(); assert 'flask' not in sys.modules and 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    a = cli.build_parser().parse_args(["web"])
    assert (a.host, a.port, a.workers, a.keep, a.max_mb, a.max_queue, a.token, a.model) == ("127.0.0.1", 8000, 1, 50, 200.0, 32, None, None)
    for bad in (["--workers", "0"], ["--max-mb", "0"], ["--max-mb", "inf"], ["--keep", "x"], ["--port", "70000"]):
        assert cli.main(["web", *bad]) == 2
    # another address needs a token; a weak token is refused; nothing starts
    for argv, words in ((["--host", "0.0.0.0"], "give it a token, e.g. --token "), (["--token", "short"], "16 to 128"),
                        (["--model", str(tmp_path / "nothing")], "no such model")):
        r = subprocess.run([sys.executable, "-m", "vocalsep", "web", "--data", str(tmp_path / "d"), *argv], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "d").exists()
    # without the [web] extra: one line saying what to install
    from vocalsep import _webapp

    monkeypatch.setattr(_webapp, "missing_modules", lambda *m: ["flask", "waitress"])
    assert cli.main(["web"]) == 2


def test_missing_extra_message(capsys, monkeypatch):
    from vocalsep import _webapp, cli

    monkeypatch.setattr(_webapp, "missing_modules", lambda *m: ["waitress"])
    assert cli.main(["web"]) == 2
    assert capsys.readouterr().err == "vocalsep: error: 'vocalsep web' needs waitress: pip install 'vocalsep[web]'\n"


def test_server_announces_its_address_with_the_token(tmp_path, tiny_model_dir):
    proc, url = serve_process(["--data", tmp_path / "d", "--model", tiny_model_dir, "--token", TOKEN])
    try:
        assert Http(url).call("GET", "api/jobs")[0] == 401
        assert Http(url, token=TOKEN).call("GET", "api/jobs")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert (tmp_path / "d" / "jobs.sqlite").exists()
    assert os.listdir(tmp_path / "d" / "tmp") == []
