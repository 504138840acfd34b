"""``vocalsep web``: separate songs in the browser, and sing along.

Flask, served by waitress; the page (``templates/index.html``, ``static/``) needs nothing from
the network.  Jobs and their files live under the data folder (:mod:`vocalsep.web.store`) and
are separated by an in-process pool of workers (:mod:`vocalsep.web.jobs`).

API (JSON; an error is ``{"error": "one line"}``; docs/web.md has every rule)::

    GET    api/config                       models, limits, accepted file types
    POST   api/jobs                         multipart: file, model? -> 202 {"id", ...job}
    GET    api/jobs                         {"jobs": [job, ...] (newest first), "queue": {...}}
    GET    api/jobs/ID                      {"id", "name", "status", "progress", "error", "position", ...}
    DELETE api/jobs/ID                      {"deleted": ID}
    GET    api/jobs/ID/STEM.FMT             STEM: vocals | accompaniment; FMT: wav | flac | mp3
    GET    api/jobs/ID/mix.FMT?vocals=G&accompaniment=G    the stems mixed at gains 0..1
    GET    api/jobs/ID/stems.zip?format=FMT both stems in one ZIP
    GET    api/jobs/ID/peaks                the waveform: {"duration", "buckets", "vocals": [...], "accompaniment": [...]}
    POST   api/session                      {"token": T} -> 204 and a session cookie (with --token)

Safety: bound to a loopback address and without a token, the app answers only requests whose
``Host`` is a loopback name (no DNS rebinding); with ``token`` every API call needs
``Authorization: Bearer TOKEN`` or the session cookie that ``POST api/session`` sets
(HttpOnly, SameSite=Strict).  Requests that change something are refused when they come from
another site (``Origin``, ``Sec-Fetch-Site``).  Job ids are unguessable and checked before they
name a folder; uploaded names are only displayed (as text) and put in download names.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .._webapp import LOOPBACK, ApiError, security_headers, url_host
from ..errors import ConfigError, OutputError
from ..stems import STEMS
from .jobs import JobPool
from .media import (
    ACCEPT,
    FORMATS,
    MIME,
    UploadError,
    clean_name,
    download_name,
    inspect_upload,
    stem_file,
    stored_input_name,
    write_mix,
    write_zip,
)
from .store import ID_RE, JobStore, new_id

log = logging.getLogger(__name__)

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
FILE_RE = re.compile(r"^(vocals|accompaniment|mix)\.(wav|flac|mp3)$")
COOKIE = "vocalsep_web"
MULTIPART_SLACK = 1 << 20  # bytes of a request beyond the file: the form's boundaries and fields
RETRY_AFTER = 10  # seconds a client is asked to wait when the queue is full

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def check_token(token: str | None) -> None:
    if token is not None and not TOKEN_RE.match(token):
        raise ConfigError("the token must be 16 to 128 letters, digits, '-' or '_' (for example: "
                          f"{_example_token()})")


def _example_token() -> str:
    import secrets

    return secrets.token_urlsafe(24)


def _host_name(host: str) -> str:
    """The host of a ``Host`` header, without its port and brackets."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def create_app(data: str | Path, *, models: Mapping[str, object], default_model: str, workers: int = 1, max_queue: int = 32,
               keep: int = 50, max_mb: float = 200.0, token: str | None = None, load: Callable[[object], object] | None = None,
               start: bool = True):
    """The Flask app of a data folder (made if needed).

    ``models`` maps the model names offered to what ``load`` takes (default: a registered name, a
    model file or a folder, :func:`vocalsep.web.jobs.load_separator`); tests pass a loader of tiny
    models.  The workers start at once unless ``start`` is False (``app.config["POOL"].start()``);
    ``app.config["POOL"].stop()`` stops them.  ``app.config["MAX_REQUEST_BODY"]`` is the request size
    the HTTP server should refuse outright."""
    from flask import Flask, Request, jsonify, render_template, request, send_file
    from werkzeug.exceptions import HTTPException

    check_token(token)
    if not (max_mb > 0 and math.isfinite(max_mb)):
        raise ConfigError("the upload limit must be a positive number of megabytes")
    store = JobStore(data)
    pool = JobPool(store, models=models, default_model=default_model, workers=workers, max_queue=max_queue, keep=keep, load=load)
    max_bytes = int(max_mb * 1e6)
    session = None if token is None else hmac.new(token.encode(), b"vocalsep web session", hashlib.sha256).hexdigest()

    class UploadRequest(Request):
        max_form_parts = 16

        def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
            # an anonymous file in the data folder: gone however the request ends, and not in a small /tmp
            return tempfile.TemporaryFile(dir=store.tmp_dir)

    here = Path(__file__).parent
    app = Flask(__name__, static_folder=str(here / "static"), template_folder=str(here / "templates"))
    app.request_class = UploadRequest
    app.config.update(MAX_CONTENT_LENGTH=max_bytes + MULTIPART_SLACK, STORE=store, POOL=pool,
                      MAX_REQUEST_BODY=2 * (max_bytes + MULTIPART_SLACK))
    app.json.sort_keys = False
    locks = [threading.Lock() for _ in range(32)]  # one conversion of a file at a time; a fixed number of locks

    # -- helpers

    def find(job_id: str) -> dict:
        job = store.get(job_id) if ID_RE.match(job_id) else None
        if job is None:
            raise ApiError(404, "no such job (it may have been deleted)")
        return job

    def finished(job_id: str) -> dict:
        job = find(job_id)
        if job["status"] != "done":
            why = f"failed: {job['error']}" if job["status"] == "failed" else f"{job['status']}; wait until it is done"
            raise ApiError(409, f"{job['name']} is not separated ({why})")
        return job

    def view(job: dict, places: tuple[Mapping[str, int], frozenset[str]]) -> dict:
        positions, taken = places
        status = "running" if job["status"] == "queued" and job["id"] in taken else job["status"]
        return {
            "id": job["id"], "name": job["name"], "model": job["model"], "status": status,
            "progress": 1.0 if job["status"] == "done" else round(job["progress"], 4),
            "error": job["error"], "position": positions.get(job["id"]),
            "duration": round(job["frames"] / job["sample_rate"], 3), "sample_rate": job["sample_rate"],
            "channels": job["channels"], "size": job["size"],
            "created_at": job["created_at"], "started_at": job["started_at"], "finished_at": job["finished_at"],
        }

    def gain(name: str, default: float) -> float:
        text = request.args.get(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0.0 <= value <= 1.0:
            raise ApiError(400, f"{name} must be a gain from 0 to 1, not {text!r}")
        return value

    def fmt_arg() -> str:
        fmt = request.args.get("format", "wav")
        if fmt not in FORMATS:
            raise ApiError(400, f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        return fmt

    def lock_for(path: Path) -> threading.Lock:
        return locks[hash(path) % len(locks)]

    def send_temporary(path: Path, mimetype: str, name: str):
        """Send a file built for this answer alone; it is unlinked at once (the open file lives on)."""
        f = open(path, "rb")  # noqa: SIM115 - closed by the response
        size = os.fstat(f.fileno()).st_size
        path.unlink()
        resp = send_file(f, mimetype=mimetype, as_attachment=True, download_name=name, conditional=False)
        resp.content_length = size
        return resp

    # -- guards

    def authorised() -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return hmac.compare_digest(cookie.encode(), session.encode())

    @app.before_request
    def guard():
        if token is None and _host_name(request.host) not in LOOPBACK:
            raise ApiError(403, "this server answers only at its loopback address (start it with --token to serve other machines)")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("Origin")
            if request.headers.get("Sec-Fetch-Site") == "cross-site" or (
                    origin is not None and urlsplit(origin).netloc != request.host):
                raise ApiError(403, "a request from another site is refused")
        if token is not None and request.path.startswith("/api/") and request.path != "/api/session" and not authorised():
            raise ApiError(401, "this server needs its token: open the address it printed, or send Authorization: Bearer TOKEN")

    # -- the page

    @app.get("/")
    def index_page():
        return render_template("index.html")

    # -- API

    @app.post("/api/session")
    def api_login():
        data = request.get_json(silent=True) if request.mimetype == "application/json" else None
        given = data.get("token") if isinstance(data, dict) else None
        if token is None:
            return "", 204
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(401, "wrong token")
        resp = app.response_class(status=204)
        resp.set_cookie(COOKIE, session, httponly=True, samesite="Strict", secure=request.is_secure, path="/")
        return resp

    @app.get("/api/config")
    def api_config():
        return jsonify(models=list(models), default_model=default_model, max_mb=max_mb, max_queue=max_queue, workers=workers,
                       keep=keep, formats=list(FORMATS), accept=list(ACCEPT), token=token is not None)

    @app.get("/api/jobs")
    def api_jobs():
        places = pool.places()
        positions = places[0]
        views = [view(j, places) for j in store.all()]
        running = sum(1 for v in views if v["status"] == "running")
        return jsonify(jobs=views, queue={"waiting": len(positions), "running": running, "max": max_queue, "workers": workers})

    @app.post("/api/jobs")
    def api_submit():
        full = {"Retry-After": str(RETRY_AFTER)}
        if pool.full():
            raise ApiError(429, f"the queue is full ({max_queue} files wait); try again when some are done", full)
        uploads = request.files.getlist("file")
        if not uploads:
            raise ApiError(400, "send the audio or video file in the multipart/form-data field 'file'")
        if len(uploads) > 1:
            raise ApiError(400, f"send one file per request (this one has {len(uploads)} in the field 'file')")
        upload = uploads[0]
        name = clean_name(upload.filename)
        model = request.form.get("model") or default_model
        if model not in models:
            raise ApiError(400, f"unknown model {model!r}; this server offers {', '.join(models)}")
        job_id = new_id()
        folder = store.folder(job_id)
        folder.mkdir()
        try:
            stored = stored_input_name(name)
            try:
                upload.save(folder / stored)
            except OSError as exc:
                raise UploadError(507, f"the server could not store {name}: {exc.strerror or exc}") from None
            size = (folder / stored).stat().st_size
            if size > max_bytes:
                raise UploadError(413, f"{name} is larger than the limit of {max_mb:g} MB")
            facts = inspect_upload(folder / stored, name)
            store.add(job_id, name=name, model=model, input=stored, size=size, sample_rate=facts.sample_rate,
                      channels=facts.channels, frames=facts.frames)
            if not pool.submit(job_id):
                store.delete(job_id)
                raise ApiError(429, f"the queue is full ({max_queue} files wait); try again when some are done", full)
        except UploadError as exc:
            store.remove_folder(job_id)
            raise ApiError(exc.status, exc.message) from None
        except BaseException:
            store.remove_folder(job_id)
            raise
        finally:
            upload.close()
        log.info("job %s: %s queued", job_id, name)
        resp = jsonify(view(store.get(job_id) or {}, pool.places()))
        resp.status_code = 202
        resp.headers["Location"] = f"{request.script_root}/api/jobs/{job_id}"
        return resp

    @app.get("/api/jobs/<job_id>")
    def api_job(job_id: str):
        return jsonify(view(find(job_id), pool.places()))

    @app.delete("/api/jobs/<job_id>")
    def api_delete(job_id: str):
        find(job_id)
        if pool.delete(job_id) is None:
            raise ApiError(404, "no such job (it may have been deleted)")
        return jsonify(deleted=job_id)

    @app.get("/api/jobs/<job_id>/peaks")
    def api_peaks(job_id: str):
        finished(job_id)
        return send_file(store.folder(job_id) / "peaks.json", mimetype="application/json", conditional=True)

    @app.get("/api/jobs/<job_id>/stems.zip")
    def api_zip(job_id: str):
        job = finished(job_id)
        fmt = fmt_arg()
        folder = store.folder(job_id)
        files = {}
        for stem in STEMS:
            with lock_for(folder / f"{stem}.{fmt}"):
                files[download_name(job["name"], stem, fmt)] = _converted(folder, stem, fmt)
        fd, tmp = tempfile.mkstemp(suffix=".zip", dir=store.tmp_dir)
        os.close(fd)
        try:
            write_zip(files, Path(tmp))
            return send_temporary(Path(tmp), MIME["zip"], download_name(job["name"], f"stems, {fmt}", "zip"))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @app.get("/api/jobs/<job_id>/<file>")
    def api_file(job_id: str, file: str):
        m = FILE_RE.match(file)
        if m is None:
            raise ApiError(404, "no such file: ask for vocals, accompaniment or mix as .wav, .flac or .mp3, stems.zip or peaks")
        job = finished(job_id)
        what, fmt = m.groups()
        folder = store.folder(job_id)
        if what == "mix":
            gv, ga = gain("vocals", 0.0), gain("accompaniment", 1.0)
            fd, tmp = tempfile.mkstemp(suffix=f".{fmt}", dir=store.tmp_dir)
            os.close(fd)
            try:
                write_mix(folder, Path(tmp), fmt, gv, ga)
            except OutputError as exc:
                Path(tmp).unlink(missing_ok=True)
                raise ApiError(422, _no_path(exc, folder, {tmp: f"mix.{fmt}"})) from None
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            label = f"vocals {round(gv * 100)} %" + ("" if ga == 1.0 else f", accompaniment {round(ga * 100)} %")
            return send_temporary(Path(tmp), MIME[fmt], download_name(job["name"], f"mix, {label}", fmt))
        with lock_for(folder / f"{what}.{fmt}"):
            path = _converted(folder, what, fmt)
        return send_file(path, mimetype=MIME[fmt], as_attachment=True, download_name=download_name(job["name"], what, fmt),
                         conditional=True, etag=True)

    def _converted(folder: Path, stem: str, fmt: str) -> Path:
        try:
            return stem_file(folder, stem, fmt)
        except OutputError as exc:
            raise ApiError(422, _no_path(exc, folder)) from None

    # -- errors and headers

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return jsonify(error=exc.message), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    @app.errorhandler(500)
    def http_error(exc):
        """Every HTTP error as JSON, with the headers it needs (Allow of a 405, Content-Range of a 416)."""
        messages = {413: f"the upload is larger than the limit of {max_mb:g} MB",
                    416: "the requested range is outside the file",
                    500: "the server failed to answer this request; its log says why"}
        code = getattr(exc, "code", None) or 500
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"] if isinstance(exc, HTTPException) else []
        return jsonify(error=messages.get(code, getattr(exc, "description", None) or getattr(exc, "name", "error"))), code, headers

    @app.after_request
    def headers(resp):
        security_headers(resp, _CSP)
        if request.path.startswith("/api/") and resp.mimetype == "application/json" and request.endpoint != "api_peaks":
            resp.headers["Cache-Control"] = "no-store"
        elif request.path == "/":
            resp.headers["Cache-Control"] = "no-cache"
        return resp

    if start:
        pool.start()
    return app


def _no_path(exc: Exception, folder: Path, names: dict[str, str] | None = None) -> str:
    """An output error's message without the server's path of the job folder; ``names`` maps
    other paths (temporary files) to the names the visitor knows."""
    text = str(exc)
    for path, name in (names or {}).items():
        for p in (str(Path(path).resolve()), str(path)):
            text = text.replace(p, name)
    for p in (str(folder.resolve()), str(folder)):
        text = text.replace(p + os.sep, "").replace(p, "")
    return text


def offered_models(model: str | None) -> tuple[dict[str, object], str]:
    """The models a server offers (every registered one, and ``model`` if given: a registered name,
    ``spleeter:2stems``, a model file or a folder) and the default of its jobs (``model``, else the
    registry's default).  Raises ModelError when there is none or ``model`` cannot be found."""
    from ..errors import ModelError
    from ..models import DEFAULT_MODEL, available_models, no_default_message, resolve_model

    offered: dict[str, object] = {name: name for name in available_models()}
    if model is None:
        if DEFAULT_MODEL not in offered:
            raise ModelError(no_default_message())
        return offered, DEFAULT_MODEL
    name, _ = resolve_model(model)
    key = model if model in offered or model.startswith("spleeter:") else name
    offered[key] = model
    return offered, key


def serve(data: str | Path, *, host: str = "127.0.0.1", port: int = 8000, model: str | None = None, workers: int = 1,
          max_queue: int = 32, keep: int = 50, max_mb: float = 200.0, token: str | None = None, threads: int = 8,
          announce=print) -> None:
    """Serve the web app until interrupted (Ctrl-C or SIGTERM: a running job goes back to the queue)."""
    if host not in LOOPBACK and token is None:
        raise ConfigError(f"--host {host} lets other machines reach the app: give it a token, e.g. --token {_example_token()}")
    check_token(token)
    models, default = offered_models(model)
    import signal

    import torch
    from waitress.server import create_server

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    app = create_app(data, models=models, default_model=default, workers=workers, max_queue=max_queue, keep=keep,
                     max_mb=max_mb, token=token, start=False)
    try:
        server = create_server(app, host=host, port=port, threads=threads, ident="vocalsep", connection_limit=1000,
                               max_request_body_size=app.config["MAX_REQUEST_BODY"])
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    pool: JobPool = app.config["POOL"]
    try:
        recovery = pool.start()
    except BaseException:
        server.close()
        raise
    base = f"http://{url_host(server.effective_host)}:{server.effective_port}/"
    jobs = app.config["STORE"].all()
    announce(f"vocalsep: web app with {workers} worker(s), model {default!r}; jobs in {Path(data).resolve()} "
             f"({sum(j['status'] == 'done' for j in jobs)} done, {len(pool.positions())} queued)")
    if recovery.resumed or recovery.failed:
        announce(f"vocalsep: after the last stop: {len(recovery.resumed)} interrupted job(s) queued again, "
                 f"{len(recovery.failed)} failed (the page says why)")
    announce(f"vocalsep: open {base}" + (f"#token={token}" if token else ""))
    if host not in LOOPBACK:
        announce("vocalsep: reachable from other machines: put it behind HTTPS (a reverse proxy) for use over the internet")
    announce("vocalsep: press Ctrl-C to stop")

    def terminate(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
        pool.stop()
