"""``vocalsep listen serve``: the web app participants use, and the admin page.

Flask, served by waitress (a production WSGI server in pure Python: a thread
pool, no C extension, Linux, macOS and Windows).  Everything the pages need
is in this package (``templates/``, ``static/``): no CDN, no network.

Participant flow: ``/`` shows the title and instructions; *Start* creates a
participant (``POST api/participants``) who gets a random token (kept in the
page's address after ``#`` and in the browser's local storage, so that a
reload resumes) and a plan: every item once in a random order, each item's
clips shuffled (:func:`~vocalsep.listen.study.make_plan`; seed and plan are
stored).  The page asks ``GET api/p/TOKEN/state`` for the next item and
answers with ``POST api/p/TOKEN/answer``.  Control items look exactly like the
others (same text, same number of clips, opaque audio names); a failed
control silently disqualifies the participant, who goes on to the end (their
answers are kept and excluded from the results).

The JSON API (errors are ``{"error": "..."}``), route by route: docs/listening-test.md.

An answer must be for the participant's next item (else 409); sending the
same answer again is accepted and changes nothing (``"repeated": true``);
another answer for an answered item is refused (409).  Every clip must have
been heard for ``listen_seconds`` (the whole clip unless the study's
``min_listen_seconds`` says less) less a third of a second of tolerance, as
the page measures it (forward playback only: seeking ahead does not count).
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import secrets
from pathlib import Path

from .._webapp import LOOPBACK, ApiError, BackgroundServer, security_headers, url_host  # noqa: F401 - BackgroundServer: serve a study from Python
from ..errors import ConfigError
from .store import Conflict, Store, StudyFull
from .study import (
    AUDIO_DIR,
    AUDIO_TYPES,
    DB_FILE,
    SLOTS,
    Study,
    control_failures,
    load_study,
    make_plan,
)

log = logging.getLogger(__name__)

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
EXTERNAL_ID_RE = re.compile(r"^[A-Za-z0-9_.:@+-]{1,100}$")
LISTEN_TOLERANCE = 0.35  # seconds: the page allows 0.25 (timeupdate comes every 15-250 ms), plus decoder slack
MAX_BODY = 64 * 1024

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def create_app(study_dir: str | Path, *, db: str | Path | None = None, admin_token: str | None = None):
    """The Flask app of a study.  ``db`` defaults to ``STUDY/responses.sqlite``; ``admin_token`` to one
    made on first start and kept in the database (``app.config["ADMIN_TOKEN"]`` holds the one in use)."""
    from flask import Flask, Response, jsonify, render_template, request, send_file

    study = load_study(study_dir)
    store = Store(Path(db) if db else study.root / DB_FILE)
    store.bind(study)
    if admin_token is not None and (len(admin_token) < 16 or not TOKEN_RE.match(admin_token)):
        raise ConfigError("the admin token must be 16 to 64 letters, digits, '-' or '_'")
    admin = admin_token or store.admin_token()
    audio = study.audio_files()
    index = study.item_index

    here = Path(__file__).parent
    app = Flask(__name__, static_folder=str(here / "static"), template_folder=str(here / "templates"))
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, JSON_SORT_KEYS=False, ADMIN_TOKEN=admin, STUDY=study, STORE=store)
    app.json.sort_keys = False

    # -- helpers

    def body() -> dict:
        if request.mimetype != "application/json":
            raise ApiError(415, "send JSON (Content-Type: application/json)")
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # silent covers malformed JSON, not JSON nested past the parser's depth
            raise ApiError(400, "the body is nested too deeply") from None
        if data is None and not request.get_data():
            return {}
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        return data

    def participant(token: str) -> dict:
        p = store.participant(token) if TOKEN_RE.match(token) else None
        if p is None:
            raise ApiError(404, "unknown participant")
        return p

    def item_view(p: dict, position: int) -> dict:
        item_id, keys = p["plan"][position]
        item = index[item_id]
        files = {c.key: c.file for c in item.clips}
        return {
            "position": position,
            "text": item.question.text,
            "reference": f"audio/{item.reference.split('/', 1)[1]}" if item.reference else None,
            "duration": item.excerpt.duration,
            "listen_seconds": study.listen_seconds(item),
            "clips": [{"slot": SLOTS[k], "audio": f"audio/{files[key].split('/', 1)[1]}"} for k, key in enumerate(keys)],
        }

    def state(p: dict) -> dict:
        total, answered = len(p["plan"]), p["answered"]
        out = {"total": total, "answered": answered, "done": answered >= total}
        if out["done"]:
            out["completion_code"] = store.completion_code(p["id"])
        else:
            out["item"] = item_view(p, answered)
        return out

    # -- pages

    @app.get("/")
    def index_page():
        return render_template("participant.html", title=study.title)

    @app.get("/admin")
    def admin_page():
        return render_template("admin.html", title=study.title)

    audio_root = (study.root / AUDIO_DIR).resolve()

    @app.get("/audio/<name>")
    def audio_file(name: str):
        path = audio.get(name)
        real = path.resolve() if path is not None else None
        # checked now, not only at start-up: a clip replaced by a link to another file is not followed
        if real is None or not real.is_relative_to(audio_root) or not real.is_file():
            raise ApiError(404, "no such clip")
        resp = send_file(real, mimetype=AUDIO_TYPES[path.suffix.lower()], conditional=True, etag=True)
        resp.headers["Cache-Control"] = "no-cache"  # revalidate (ETag): a study prepared again may reuse a name
        return resp

    # -- participant API

    @app.get("/api/study")
    def api_study():
        seconds = sum(len(i.clips) * study.listen_seconds(i) + 10 for i in study.items)
        return jsonify(title=study.title, instructions=[p.strip() for p in study.instructions.split("\n\n") if p.strip()],
                       scale=list(study.scale), items=len(study.items), minutes=max(1, round(seconds / 60)))

    @app.post("/api/participants")
    def api_new_participant():
        data = body()
        extra = sorted(set(data) - {"external_id"})
        if extra:
            raise ApiError(400, f"unknown field {extra[0]!r}")
        external = data.get("external_id")
        if external is not None and (not isinstance(external, str) or not EXTERNAL_ID_RE.match(external)):
            raise ApiError(400, "external_id must be 1 to 100 letters, digits or _ . : @ + -")
        seed = secrets.randbits(62)
        try:
            pid, token = store.create_participant(make_plan(study, seed), seed, external_id=external,
                                                  user_agent=request.headers.get("User-Agent"), max_participants=study.max_participants)
        except StudyFull:
            raise ApiError(409, "this study has all the participants it needs; thank you for your interest") from None
        log.info("participant %d started", pid)
        return jsonify(token=token), 201

    @app.get("/api/p/<token>/state")
    def api_state(token: str):
        return jsonify(state(participant(token)))

    @app.post("/api/p/<token>/answer")
    def api_answer(token: str):
        p = participant(token)
        data = body()
        extra = sorted(set(data) - {"position", "ratings", "listened", "elapsed_ms"})
        if extra:
            raise ApiError(400, f"unknown field {extra[0]!r}")
        position = data.get("position")
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < len(p["plan"]):
            raise ApiError(400, f"position must be an integer from 0 to {len(p['plan']) - 1}")
        item_id, keys = p["plan"][position]
        item = index[item_id]
        slots = {SLOTS[k]: key for k, key in enumerate(keys)}
        ratings, listened = data.get("ratings"), data.get("listened")
        for name, value in (("ratings", ratings), ("listened", listened)):
            if not isinstance(value, dict) or set(value) != set(slots):
                raise ApiError(400, f"{name} must give every clip of this question: {', '.join(slots)}")
        need = study.listen_seconds(item) - LISTEN_TOLERANCE
        rows = []
        for slot, key in slots.items():
            r, sec = ratings[slot], listened[slot]
            if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= len(study.scale):
                raise ApiError(400, f"the rating of clip {slot} must be an integer from 1 to {len(study.scale)}")
            if isinstance(sec, bool) or not isinstance(sec, (int, float)) or not math.isfinite(sec) or not 0 <= sec <= 1e5:
                raise ApiError(400, f"listened.{slot} must be a number of seconds")
            if sec < need:
                raise ApiError(400, f"clip {slot} has not been played: listen to it before rating it")
            rows.append((key, slot, r, float(sec)))
        elapsed = data.get("elapsed_ms")
        if elapsed is not None and (isinstance(elapsed, bool) or not isinstance(elapsed, int) or not 0 <= elapsed <= 10**9):
            raise ApiError(400, "elapsed_ms must be a non-negative integer")
        failures = control_failures(item, {key: r for key, _, r, _ in rows})
        try:
            stored = store.record_answer(p["id"], position, item_id, rows, elapsed_ms=elapsed, failures=failures, total=len(p["plan"]))
        except Conflict as exc:
            raise ApiError(409, str(exc)) from None
        if failures and stored:
            log.info("participant %d failed a control: %s", p["id"], failures[0])
        return jsonify(saved=True, repeated=not stored, state=state(participant(token)))

    # -- admin API

    def check_admin() -> None:
        auth = request.headers.get("Authorization", "")
        given = auth[7:] if auth.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode(), admin.encode()):
            raise ApiError(401, "the admin token is missing or wrong")

    @app.get("/api/admin/progress")
    def api_progress():
        check_admin()
        return jsonify(progress(study, store))

    @app.get("/api/admin/responses.csv")
    def api_responses():
        check_admin()
        from .report import responses_csv

        return Response(responses_csv(study, store), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="responses.csv"'})

    # -- errors and headers

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return jsonify(error=exc.message), exc.status

    @app.errorhandler(400)
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def http_error(exc):
        messages = {413: f"the request is larger than {MAX_BODY // 1024} kB"}
        return jsonify(error=messages.get(exc.code, exc.description or exc.name)), exc.code

    @app.errorhandler(500)
    def internal_error(exc):  # logged by Flask; the client gets JSON like every other error
        return jsonify(error="internal error"), 500

    @app.after_request
    def headers(resp):
        security_headers(resp, _CSP)
        if request.path.startswith("/api/") or request.path in ("/", "/admin"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    return app


def progress(study: Study, store: Store) -> dict:
    """What the admin page shows: counts, answers per item, one row per participant."""
    people = store.participants()
    total = len(study.items)
    rows = [{
        "id": p["id"], "external_id": p["external_id"], "started": p["created_at"], "last_answer": p["last_answer_at"],
        "answered": p["answered"], "total": total, "finished": p["finished_at"] is not None,
        "disqualified": p["disqualified_at"] is not None, "reason": p["disqualified_reason"],
        "completion_code": store.completion_code(p["id"]) if p["finished_at"] else None,
    } for p in people]
    counts = store.answer_counts()
    finished = sum(r["finished"] for r in rows)
    dq = sum(r["disqualified"] for r in rows)
    return {
        "title": study.title,
        "items": total,
        "controls": len(study.control_items),
        "participants": {"started": len(rows), "finished": finished, "disqualified": dq,
                         "finished_qualified": sum(r["finished"] and not r["disqualified"] for r in rows),
                         "in_progress": len(rows) - finished},
        "answers": sum(counts.values()),
        "per_item": [{"item": i.id, "control": i.control, "answers": counts.get(i.id, 0)} for i in study.items],
        "rows": rows,
    }


def serve(study_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000, db: str | Path | None = None,
          admin_token: str | None = None, threads: int = 8, announce=print) -> None:
    """Serve a study until interrupted (Ctrl-C)."""
    from waitress.server import create_server

    app = create_app(study_dir, db=db, admin_token=admin_token)
    study: Study = app.config["STUDY"]
    try:
        server = create_server(app, host=host, port=port, threads=threads, ident="vocalsep", connection_limit=1000)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    base = f"http://{url_host(server.effective_host)}:{server.effective_port}/"
    p = progress(study, app.config["STORE"])["participants"]
    announce(f"vocalsep: serving {study.title!r} ({len(study.items)} questions, {len(study.control_items)} of them controls) "
             f"from {study.root}; responses in {app.config['STORE'].path} ({p['started']} participants so far, {p['finished']} finished)")
    announce(f"vocalsep: participants: {base}")
    announce(f"vocalsep: admin page:   {base}admin#token={app.config['ADMIN_TOKEN']}")
    if host not in LOOPBACK:
        announce("vocalsep: reachable from other machines: put it behind HTTPS (a reverse proxy) for use over the internet")
    announce("vocalsep: press Ctrl-C to stop")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
