"""The listening test (``vocalsep listen``): excerpts, loudness, the study file, randomisation, controls,
disqualification, the SQLite store, the HTTP API (50 participants at once, a killed and restarted
server), the report's statistics and the command line.  Synthetic audio only; no network."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("flask", reason="the listening test needs vocalsep[listen] (flask, waitress, pyloudnorm)")
pytest.importorskip("waitress", reason="the listening test needs vocalsep[listen] (flask, waitress, pyloudnorm)")
pytest.importorskip("pyloudnorm", reason="the listening test needs vocalsep[listen] (flask, waitress, pyloudnorm)")

from listen_support import (
    RATE,
    Client,
    answer_body,
    clip_index,
    make_outputs,
    voice_span,
)
from server_process import start_server

from vocalsep.errors import ConfigError
from vocalsep.listen.excerpts import FRAME_SECONDS, choose_excerpts, loudness_lufs, voiced_frames, window_shares
from vocalsep.listen.prepare import PrepareConfig, prepare
from vocalsep.listen.report import holm, make_report, paired_tests, summarize
from vocalsep.listen.server import BackgroundServer, create_app
from vocalsep.listen.store import Conflict, Store
from vocalsep.listen.study import (
    STUDY_FILE,
    check_plan,
    control_failures,
    load_study,
    make_plan,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    return make_outputs(tmp_path_factory.mktemp("outputs"))


def _config(outputs, out, **kw) -> PrepareConfig:
    base = {"systems": (("unet", str(outputs["unet"])), ("baseline", str(outputs["baseline"]))),
            "mixtures": str(outputs["mixtures"]), "out": str(out), "clips": 3, "duration": 1.5}
    return PrepareConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def study_dir(outputs, tmp_path_factory) -> Path:
    """3 excerpts of 1.5 s from the true vocals, 2 systems, the 5 default controls: 12 + 5 items."""
    out = tmp_path_factory.mktemp("studies") / "study"
    prepare(_config(outputs, out, vocals=str(outputs["vocals"])))
    return out


@pytest.fixture(scope="module")
def small_study(outputs, tmp_path_factory) -> Path:
    """2 excerpts of 1 s, 2 systems, 4 controls: 8 + 4 items (the server tests)."""
    out = tmp_path_factory.mktemp("studies") / "small"
    prepare(_config(outputs, out, clips=2, duration=1.0))
    return out


def _fresh_copy(study: Path, tmp_path: Path) -> Path:
    dst = tmp_path / study.name
    shutil.copytree(study, dst, ignore=shutil.ignore_patterns("responses.sqlite*"))
    return dst


# -- excerpts

def test_voiced_frames_follow_the_loud_level():
    levels = np.array([-80.0] * 10 + [-20.0] * 30 + [-45.0] * 10 + [-55.0] * 10)
    voiced = voiced_frames(levels, relative_db=30.0)  # threshold max(-60, -20 - 30) = -50
    assert voiced.tolist() == [False] * 10 + [True] * 30 + [True] * 10 + [False] * 10
    assert voiced_frames(np.full(20, -70.0)).sum() == 0  # all below -60 dBFS: nothing voiced


def test_window_shares_and_choice_are_exact_and_deterministic():
    voiced = np.zeros(500, bool)
    voiced[100:300] = True
    starts, share = window_shares(voiced, 100, usable=500)
    assert starts[0] == 0 and starts[1] == 5 and starts[-1] <= 400
    assert share[starts.tolist().index(100)] == 1.0 and share[starts.tolist().index(50)] == 0.5
    tracks = {"a": (starts, share), "b": window_shares(np.ones(300, bool), 100, 300), "c": window_shares(np.zeros(300, bool), 100, 300)}
    picked = choose_excerpts(tracks, 4, 100, 0.8, seed=1)
    assert picked == choose_excerpts(tracks, 4, 100, 0.8, seed=1)
    assert {t for t, _, _ in picked} == {"a", "b"} and len(picked) == 4  # c has no singing; 2 rounds over a and b
    for t in ("a", "b"):
        ss = sorted(s for tt, s, _ in picked if tt == t)
        assert len(ss) == 2 and ss[1] - ss[0] >= 100  # no overlap within a track
    assert all(sh >= 0.8 for _, _, sh in picked)
    assert all(80 <= s <= 220 for t, s, _ in picked if t == "a")  # 80 % singing: frames 100-300 voiced
    seeds = {tuple(choose_excerpts(tracks, 2, 100, 0.8, seed=s)) for s in range(6)}
    assert len(seeds) > 1  # the seed matters
    assert len(choose_excerpts(tracks, 10, 100, 0.8, seed=0)) < 10  # as many as there are, no more


def test_loudness_measure_is_bs1770():
    t = np.arange(48000 * 3) / 48000
    sine = np.sin(2 * np.pi * 997 * t).astype(np.float32)
    # BS.1770: a full-scale 997 Hz sine in each of two channels reads about 0 LUFS (-3.01 per channel, summed)
    assert loudness_lufs(np.stack([sine, sine]), 48000) == pytest.approx(0.0, abs=0.15)
    assert loudness_lufs(np.stack([sine, 0 * sine]), 48000) == pytest.approx(-3.01, abs=0.15)
    # a mono clip is measured as heard on both ears
    assert loudness_lufs(sine[None], 48000) == pytest.approx(loudness_lufs(np.stack([sine, sine]), 48000), abs=1e-6)
    assert loudness_lufs(0.1 * np.stack([sine, sine]), 48000) == pytest.approx(-20.0, abs=0.15)


def test_prepare_cuts_singing_at_the_same_place_and_matches_loudness(study_dir, outputs):
    study = load_study(study_dir)
    data = json.loads((study_dir / STUDY_FILE).read_text())
    assert study.systems == ("unet", "baseline") and len(study.excerpts) == 3
    assert {e.track for e in study.excerpts} == {"track0", "track1", "track2"}  # one per track first
    assert data["prepare"]["activity"]["source"].startswith("the true vocal stems")
    target = data["prepare"]["loudness"]["applied_lufs"]
    assert target == pytest.approx(-23.0)
    names = set()
    for e in study.excerpts:
        k = int(e.track[-1])
        on, off = voice_span(k)
        assert e.duration == 1.5
        assert on - 0.3 - 1e-6 <= e.start and e.start + e.duration <= off + 0.3 + 1e-6  # >= 80 % inside the singing
        assert abs(e.start / FRAME_SECONDS - round(e.start / FRAME_SECONDS)) < 1e-6
        a, n = round(e.start * RATE), round(e.duration * RATE)
        sources = {"mixture": (e.reference, outputs["mixtures"] / f"{e.track}.wav")}
        for s in study.systems:
            for t in ("vocals", "accompaniment"):
                src = next((outputs[s] / e.track).glob(f"{t}.*"))
                sources[f"{s} {t}"] = (data["excerpts"][int(e.id[1:]) - 1]["clips"][s][t]["file"], src)
        for what, (f, src) in sources.items():
            assert f not in names
            names.add(f)
            assert "unet" not in f and "baseline" not in f  # opaque names
            x, sr = sf.read(study_dir / f, always_2d=True)
            assert sr == RATE and x.shape == (n, 2)
            assert loudness_lufs(x.T.astype(np.float32), sr) == pytest.approx(target, abs=0.1), what
            assert np.max(np.abs(x)) <= 10 ** (-1 / 20) + 1e-3
            # the same place: the clip is its source file from the excerpt's start (a gain and 20 ms fades aside)
            y, _ = sf.read(src, always_2d=True)
            mid = slice(int(0.05 * RATE), n - int(0.05 * RATE))  # away from the fades
            got = x[mid, 0]
            lags = list(range(-40, 41))
            corr = [np.corrcoef(y[a + lag:a + lag + n, 0][mid], got)[0, 1] for lag in lags]
            assert lags[int(np.argmax(corr))] == 0 and max(corr) > 0.9999, what


def test_prepare_controls_look_like_questions_and_have_known_answers(study_dir):
    study = load_study(study_dir)
    controls = study.control_items
    kinds = sorted((c.question.id, next(cl.source for cl in c.clips if cl.accept), next(cl.accept for cl in c.clips if cl.accept))
                   for c in controls)
    assert kinds == sorted([("vocals-removal", "mixture", (1, 2)), ("accompaniment-removal", "mixture", (1, 2)),
                            ("vocals-quality", "degraded", (1, 3)), ("accompaniment-quality", "degraded", (1, 3)),
                            ("vocals-removal", "vocals", (5, 7))])
    regular_files = {c.file for i in study.regular_items for c in i.clips} | {e.reference for e in study.excerpts}
    for c in controls:
        assert len(c.clips) == len(study.systems)  # as many clips as a regular question
        assert sum(cl.accept is not None for cl in c.clips) == 1
        assert not ({cl.file for cl in c.clips} & regular_files)  # own copies: no repeated URL gives it away
        planted = next(cl for cl in c.clips if cl.accept)
        x, _ = sf.read(study_dir / planted.file)
        if planted.source == "mixture":  # the mixture itself, same samples as the reference
            ref, _ = sf.read(study_dir / c.excerpt.reference)
            assert np.array_equal(x, ref)
        if planted.source == "degraded":
            twin = next(i for i in study.regular_items if i.question.id == c.question.id and i.excerpt.id == c.excerpt.id)
            clean, _ = sf.read(study_dir / twin.clip("unet").file)
            assert np.corrcoef(x[:, 0], clean[:, 0])[0, 1] < 0.95
        others = [cl for cl in c.clips if cl.accept is None]
        assert all(cl.source == "system" and cl.system in study.systems for cl in others)
    assert len(study.items) == 4 * 3 + 5


def test_prepare_is_deterministic_and_refuses_to_overwrite(outputs, tmp_path, study_dir):
    out = tmp_path / "again"
    prepare(_config(outputs, out, vocals=str(outputs["vocals"])))
    a, b = json.loads((study_dir / STUDY_FILE).read_text()), json.loads((out / STUDY_FILE).read_text())
    for d in (a, b):
        d["prepare"].pop("created")
        d["prepare"]["config"].pop("out")
    assert a == b
    for f in (study_dir / "audio").iterdir():
        assert (out / "audio" / f.name).read_bytes() == f.read_bytes()
    with pytest.raises(ConfigError, match="use --force"):
        prepare(_config(outputs, out))
    prepare(_config(outputs, out, force=True, seed=5))  # replaces a study without responses
    assert load_study(out).data["prepare"]["config"]["seed"] == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left
    (out / "responses.sqlite").write_bytes(b"")
    with pytest.raises(ConfigError, match="holds collected responses"):
        prepare(_config(outputs, out, force=True))
    other = tmp_path / "not-a-study"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a study folder"):
        prepare(_config(outputs, other, force=True))
    assert (other / "keep.txt").exists()


def test_prepare_names_bad_inputs_and_goes_on(outputs, tmp_path):
    root = tmp_path / "partial"
    shutil.copytree(outputs["unet"], root / "unet")
    shutil.copytree(outputs["baseline"], root / "baseline")
    (root / "baseline" / "track1" / "accompaniment.flac").unlink()
    (root / "unet" / "track2" / "vocals.wav").write_bytes(b"not audio at all")
    cfg = PrepareConfig(systems=(("unet", str(root / "unet")), ("baseline", str(root / "baseline"))),
                        mixtures=str(outputs["mixtures"]), out=str(tmp_path / "s"), clips=3, duration=1.5)
    summary = prepare(cfg)
    assert summary["excerpts"] >= 2  # track0 has room for two or three; the broken tracks give none
    assert any("baseline" in f and "track1" in f and "no accompaniment" in f for f in summary["failed"])
    assert any("track2" in f and "vocals.wav" in f for f in summary["failed"])
    assert {e.track for e in load_study(tmp_path / "s").excerpts} == {"track0"}
    silent = tmp_path / "silent"
    for k in range(3):
        for stem in ("vocals", "accompaniment"):
            p = silent / f"track{k}" / f"{stem}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, np.zeros((RATE * 8, 2), np.float32), RATE)
    with pytest.raises(ConfigError, match="no excerpt with singing"):
        prepare(PrepareConfig(systems=(("quiet", str(silent)),), mixtures=str(outputs["mixtures"]), out=str(tmp_path / "q")))
    with pytest.raises(ConfigError, match="NAME=DIR|system names must differ"):
        PrepareConfig(systems=(("a", "x"), ("a", "y")), mixtures="m", out="o")
    with pytest.raises(ConfigError, match="duration"):
        _config(outputs, tmp_path / "d", duration=0.2)


# -- the study file

@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d.update(version=2), "version"),
    (lambda d: d.update(scale=["only"]), "scale"),
    (lambda d: d.update(extra=1), "extra: unknown field"),
    (lambda d: d["questions"][0].update(target="drums"), r"questions\[0\].target"),
    (lambda d: d["questions"][1].update(id=d["questions"][0]["id"]), r"questions\[1\].id"),
    (lambda d: d["excerpts"][0]["reference"].update(file="audio/../study.json"), r"excerpts\[0\].reference.file"),
    (lambda d: d["excerpts"][0]["reference"].update(file="/etc/passwd"), r"excerpts\[0\].reference.file"),
    (lambda d: d["excerpts"][0]["reference"].update(file="audio/missing.wav"), "does not exist"),
    (lambda d: d["excerpts"][0]["clips"].pop("unet"), r"excerpts\[0\].clips.unet"),
    (lambda d: d["controls"][0]["clips"][0].update(accept=[3, 9]), r"controls\[0\].clips\[0\].accept"),
    (lambda d: d["controls"][0]["clips"][0].update(accept=[5, 2]), r"controls\[0\].clips\[0\].accept"),
    (lambda d: [c.update(accept=None) for c in d["controls"][0]["clips"]], "needs a known answer"),
    (lambda d: d["controls"][0].update(question="nope"), r"controls\[0\].question"),
    (lambda d: d.update(min_listen_seconds=-1), "min_listen_seconds"),
    (lambda d: d.update(max_participants=0), "max_participants"),
    (lambda d: d.update(title=""), "title"),
])
def test_study_file_validation_names_the_field(study_dir, tmp_path, edit, message):
    study = _fresh_copy(study_dir, tmp_path)
    data = json.loads((study / STUDY_FILE).read_text())
    edit(data)
    (study / STUDY_FILE).write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as err:
        load_study(study)
    assert str(err.value).startswith(str(study / STUDY_FILE)) and "\n" not in str(err.value)


def test_study_file_edits_are_kept(study_dir, tmp_path):
    study = _fresh_copy(study_dir, tmp_path)
    data = json.loads((study / STUDY_FILE).read_text())
    data["scale"] = ["bad", "meh", "ok", "good", "great"]
    data["questions"][0]["text"] = "Wie klingt die Stimme?"
    data["min_listen_seconds"] = 1.0
    (study / STUDY_FILE).write_text(json.dumps(data, ensure_ascii=False))
    with pytest.raises(ConfigError, match=r"controls\[4\].clips\[0\].accept: \[5, 7\] must be .* <= 5"):
        load_study(study)  # the true-vocals control's range no longer fits a 5-step scale
    data["controls"][4]["clips"][0]["accept"] = [4, 5]
    data["controls"][0]["clips"][0]["accept"] = [1, 1]
    (study / STUDY_FILE).write_text(json.dumps(data, ensure_ascii=False))
    s = load_study(study)
    assert s.scale[-1] == "great" and s.questions[0].text == "Wie klingt die Stimme?"
    assert s.listen_seconds(s.items[0]) == 1.0 and s.control_items[0].clips[0].accept == (1, 1)
    with pytest.raises(ConfigError, match="not valid JSON: line 1"):
        (study / STUDY_FILE).write_text("{oops")
        load_study(study)
    with pytest.raises(ConfigError, match="not a study folder"):
        load_study(tmp_path / "nowhere")


# -- randomisation and controls

def test_plan_randomises_questions_and_clips(study_dir):
    study = load_study(study_dir)
    n_items = len(study.items)
    plans = [make_plan(study, seed) for seed in range(600)]
    for plan in plans[:50]:
        check_plan(study, plan)
    assert make_plan(study, 7) == make_plan(study, 7)
    assert len({tuple(p[0] for p in plan) for plan in plans}) == 600  # question orders differ
    # clip order: each system first about half of the time (binomial, 600 draws per item: 5 sigma = 61)
    first = Counter(plan_item[1][0] for plan in plans for plan_item in plan if not study.item(plan_item[0]).control)
    per_system = len(plans) * len(study.regular_items) / 2
    assert all(abs(first[s] - per_system) < 5 * math.sqrt(per_system / 2) for s in study.systems)
    # controls are interspersed: on average in the middle, and anywhere from the first to the last position
    positions = [k for plan in plans for k, (i, _) in enumerate(plan) if study.item(i).control]
    assert abs(np.mean(positions) - (n_items - 1) / 2) < 0.5
    assert min(positions) == 0 and max(positions) == n_items - 1
    with pytest.raises(ValueError):
        check_plan(study, plans[0][1:])


def test_control_failures(study_dir):
    study = load_study(study_dir)
    control = next(c for c in study.control_items if any(cl.accept == (1, 2) for cl in c.clips))
    key = next(cl.key for cl in control.clips if cl.accept)
    other = next(cl.key for cl in control.clips if not cl.accept)
    assert control_failures(control, {key: 1, other: 7}) == []
    assert control_failures(control, {key: 2, other: 1}) == []
    (reason,) = control_failures(control, {key: 3, other: 4})
    assert control.id in reason and "rated 3, acceptable 1-2" in reason
    assert control_failures(study.regular_items[0], {"unet": 1, "baseline": 1}) == []


# -- the store

def _answer(store, study, pid, plan, position, rating_of):
    item_id, keys = plan[position]
    item = study.item(item_id)
    rows = [(k, "ABCDEFG"[j], rating_of(item, item.clip(k)), 1.5) for j, k in enumerate(keys)]
    failures = control_failures(item, {k: r for k, _, r, _ in rows})
    return store.record_answer(pid, position, item_id, rows, elapsed_ms=10, failures=failures, total=len(plan))


def test_store_one_answer_per_question_and_disqualification(study_dir, tmp_path):
    study = load_study(study_dir)
    store = Store(tmp_path / "r.sqlite")
    store.bind(study)
    plan = make_plan(study, 3)
    pid, token = store.create_participant(plan, 3, external_id="x1")
    assert store.participant(token)["id"] == pid and store.participant("nope" * 6) is None

    def honest(item, clip):
        return clip.accept[0] if clip.accept else 4

    assert _answer(store, study, pid, plan, 0, honest) is True
    assert _answer(store, study, pid, plan, 0, honest) is False  # the same again: nothing changes
    with pytest.raises(Conflict, match="other ratings"):
        _answer(store, study, pid, plan, 0, lambda i, c: 7 if c.accept is None else c.accept[0])
    with pytest.raises(Conflict, match="next one"):
        _answer(store, study, pid, plan, 2, honest)
    assert len(store.ratings()) == len(plan[0][1])
    # fail the first control met; answers go on being stored
    first_control = next(k for k, (i, _) in enumerate(plan) if k > 0 and study.item(i).control)
    for pos in range(1, len(plan)):
        _answer(store, study, pid, plan, pos, (lambda i, c: 7 if c.accept and c.accept[1] < 7 else 1 if c.accept else 4)
                if pos == first_control else honest)
    p = store.participants()[0]
    assert p["answered"] == len(plan) and p["finished_at"] and p["disqualified_at"]
    assert plan[first_control][0] in p["disqualified_reason"]
    # the expert widens the range after the fact: the verdict follows the study file
    data = json.loads((study_dir / STUDY_FILE).read_text())
    for c in data["controls"]:
        for cl in c["clips"]:
            if cl["accept"]:
                cl["accept"] = [1, 7]
    edited = _fresh_copy(study_dir, tmp_path / "edited")
    (edited / STUDY_FILE).write_text(json.dumps(data))
    store.bind(load_study(edited))  # texts and ranges may change
    assert store.participants()[0]["disqualified_at"] is None


def test_store_refuses_a_changed_study(study_dir, small_study, tmp_path):
    store = Store(tmp_path / "r.sqlite")
    store.bind(load_study(study_dir))
    store.bind(load_study(small_study))  # nobody started yet: the database follows the study
    store.create_participant(make_plan(load_study(small_study), 1), 1)
    with pytest.raises(ConfigError, match="changed after 1 participant"):
        store.bind(load_study(study_dir))
    with pytest.raises(ConfigError, match="no responses yet"):
        Store(tmp_path / "missing.sqlite", create=False)
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database, no matter how long it is" * 100)
    with pytest.raises(ConfigError, match="not a usable response database"):
        Store(tmp_path / "junk.sqlite")


# -- statistics

def test_summary_statistics_by_hand():
    # 5 participants, each rating unet twice (two excerpts) and baseline twice on one question
    unet = {1: (6, 7), 2: (5, 5), 3: (7, 6), 4: (4, 6), 5: (6, 6)}
    base = {1: (3, 4), 2: (5, 4), 3: (2, 2), 4: (4, 4), 5: (3, 5)}
    ratings = [(p, "unet", "q", r) for p, rs in unet.items() for r in rs] + [(p, "base", "q", r) for p, rs in base.items() for r in rs]
    rows = {r["system"]: r for r in summarize(ratings, ["unet", "base"], ["q"])}
    u = rows["unet"]
    means = np.array([6.5, 5.0, 6.5, 5.0, 6.0])
    assert u["participants"] == 5 and u["ratings"] == 10
    assert u["mean"] == pytest.approx(5.8)
    assert u["sd"] == pytest.approx(np.std(means, ddof=1))
    half = 2.7764451051977987 * np.std(means, ddof=1) / math.sqrt(5)  # t(0.975, 4)
    assert (u["ci95_low"], u["ci95_high"]) == pytest.approx((5.8 - half, 5.8 + half))
    assert u["rating_sd"] == pytest.approx(np.std([6, 7, 5, 5, 7, 6, 4, 6, 6, 6], ddof=1))
    assert u["median"] == 6.0
    (test,) = paired_tests(ratings, ["unet", "base"], ["q"])
    # differences of participant means: 3, 0.5, 4.5, 1, 2 -> all positive: exact two-sided p = 2 / 2**5
    assert test["participants"] == 5 and test["nonzero"] == 5 and test["mean_difference"] == pytest.approx(2.2)
    assert test["p_value"] == pytest.approx(0.0625) and test["rank_biserial"] == pytest.approx(1.0)
    one = summarize([(1, "unet", "q", 5)], ["unet", "base"], ["q"])
    assert one[0]["participants"] == 1 and math.isnan(one[0]["sd"]) and math.isnan(one[0]["ci95_low"])
    assert one[1]["participants"] == 0 and math.isnan(one[1]["mean"])
    (same,) = paired_tests([(p, s, "q", 4) for p in range(4) for s in ("a", "b")], ["a", "b"], ["q"])
    assert math.isnan(same["p_value"]) and "differently" in same["note"]


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_report_excludes_the_disqualified(study_dir, tmp_path):
    study = load_study(study_dir)
    db = tmp_path / "r.sqlite"
    store = Store(db)
    store.bind(study)
    kinds = {0: "honest", 1: "honest", 2: "honest", 3: "cheat", 4: "quitter"}
    for k, kind in kinds.items():
        plan = make_plan(study, k)
        pid, _ = store.create_participant(plan, k)
        for pos in range(len(plan) if kind != "quitter" else 3):
            def rate(item, clip, kind=kind, k=k):
                if clip.accept:
                    return (7 if clip.accept[1] < 7 else 1) if kind == "cheat" else clip.accept[1]
                return 1 if kind == "cheat" else {"unet": 6, "baseline": 3}[clip.system] - (k % 2)
            _answer(store, study, pid, plan, pos, rate)
    summary = make_report(study_dir, tmp_path / "report", db=db)
    c = summary["participants"]
    assert (c["started"], c["finished"], c["disqualified"], c["incomplete"], c["included"]) == (5, 3, 1, 1, 3)
    stats = {(r["question"], r["system"]): r for r in summary["statistics"]}
    for q in study.questions:
        u, b = stats[(q.id, "unet")], stats[(q.id, "baseline")]
        assert u["participants"] == 3 and u["ratings"] == 9  # 3 counted participants x 3 excerpts
        assert u["mean"] == pytest.approx((6 + 5 + 6) / 3) and b["mean"] == pytest.approx((3 + 2 + 3) / 3)
    out = tmp_path / "report"
    assert (out / "ratings.png").read_bytes().startswith(PNG)
    import csv

    rows = list(csv.DictReader((out / "responses.csv").open()))
    assert {r["status"] for r in rows} == {"finished", "disqualified", "incomplete"}
    assert len(rows) == len(store.ratings())  # every rating, the excluded included
    assert all(r["included"] == "False" for r in rows if r["status"] != "finished" or r["control"] == "True")
    tests = list(csv.DictReader((out / "tests.csv").open()))
    assert len(tests) == 4 and all(float(t["mean_difference"]) > 0 for t in tests)
    md = (out / "summary.md").read_text()
    assert "1 disqualified" in md and "ratings.png" in md and "Counted: **3**" in md
    again = make_report(study_dir, tmp_path / "report2", db=db, include_incomplete=True, error_bars="ci")
    assert again["participants"]["included"] == 4
    with pytest.raises(ConfigError, match="no responses yet"):
        make_report(study_dir, tmp_path / "r3", db=tmp_path / "none.sqlite")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="afile is a file, not a folder"):
        make_report(study_dir, tmp_path / "afile" / "report", db=db)
    assert not md.startswith("# Listening test: Listening test")  # the default title said once


# -- the HTTP API

@pytest.fixture(scope="module")
def server(small_study, tmp_path_factory):
    app = create_app(small_study, db=tmp_path_factory.mktemp("db") / "r.sqlite", admin_token="test-admin-token-0123456789")
    with BackgroundServer(app, threads=4) as srv:
        yield srv, app


def test_http_participant_flow_and_validation(server, small_study):
    srv, app = server
    study = app.config["STUDY"]
    c = Client(srv.url)
    page = c.call("GET", "")
    assert page[0] == 200 and b"participant.js" in page[1]
    info = c.ok("GET", "api/study")
    assert info["scale"][0] == "Poor" and info["scale"][-1] == "Perfect" and info["items"] == len(study.items)
    token = c.ok("POST", "api/participants", {"external_id": "prolific-42"})["token"]
    state = c.ok("GET", f"api/p/{token}/state")
    item = state["item"]
    assert state["answered"] == 0 and state["total"] == len(study.items) and item["position"] == 0
    assert "control" not in json.dumps(state)  # nothing tells a control apart
    slots = [x["slot"] for x in item["clips"]]
    good = {"position": 0, "ratings": {s: 4 for s in slots}, "listened": {s: item["listen_seconds"] for s in slots}}
    bad = [
        ({**good, "ratings": {slots[0]: 4}}, 400, "every clip"),
        ({**good, "ratings": {s: 8 for s in slots}}, 400, "integer from 1 to 7"),
        ({**good, "ratings": {s: True for s in slots}}, 400, "integer from 1 to 7"),
        ({**good, "ratings": {s: "4" for s in slots}}, 400, "integer from 1 to 7"),
        ({**good, "listened": {s: 0.2 for s in slots}}, 400, "has not been played"),
        ({**good, "listened": {s: float("nan") for s in slots}}, 400, "number of seconds"),
        ({**good, "position": 5}, 409, "is the next one"),
        ({**good, "position": 99}, 400, "position must be"),
        ({**good, "position": "0"}, 400, "position must be"),
        ({**good, "extra": 1}, 400, "unknown field"),
        ({**good, "elapsed_ms": -5}, 400, "elapsed_ms"),
    ]
    for body, status, message in bad:
        got = c.call("POST", f"api/p/{token}/answer", body)
        assert got[0] == status and message in got[1]["error"], (body, got)
    assert c.call("POST", f"api/p/{token}/answer", raw=b"{not json")[0] == 400
    assert c.call("POST", f"api/p/{token}/answer", raw=b"[1, 2]")[0] == 400
    assert c.call("POST", f"api/p/{token}/answer", raw=json.dumps(good).encode(), content_type="text/plain")[0] == 415
    assert c.call("POST", f"api/p/{token}/answer", raw=b" " * 70000)[0] == 413
    assert c.call("GET", "api/p/" + "x" * 32 + "/state")[0] == 404
    assert c.call("GET", "api/p/../../etc/state")[0] == 404
    assert c.call("POST", "api/participants", {"external_id": "<script>"})[0] == 400
    first = c.ok("POST", f"api/p/{token}/answer", good)
    again = c.ok("POST", f"api/p/{token}/answer", good)
    assert first["repeated"] is False and again["repeated"] is True
    assert first["state"]["answered"] == again["state"]["answered"] == 1
    assert c.call("POST", f"api/p/{token}/answer", {**good, "ratings": {s: 5 for s in slots}})[0] == 409


def test_http_audio_only_from_the_study(server, small_study):
    srv, app = server
    c = Client(srv.url)
    study = app.config["STUDY"]
    name = study.excerpts[0].reference.split("/", 1)[1]
    status, body = c.call("GET", f"audio/{name}", headers={"Range": "bytes=0-99"})
    assert status == 206 and len(body) == 100
    assert c.call("GET", f"audio/{name}")[1] == (small_study / "audio" / name).read_bytes()
    (small_study / "audio" / "stray.wav").write_bytes(b"RIFF")  # in the folder, not in the study
    try:
        for path in ("audio/stray.wav", "audio/..%2fstudy.json", "audio/%2e%2e/study.json", "audio/../study.json",
                     "audio/study.json", "static/../server.py", "static/..%2f__init__.py", "study.json", "responses.sqlite"):
            assert c.call("GET", path)[0] == 404, path
    finally:
        (small_study / "audio" / "stray.wav").unlink()
    assert c.call("GET", "static/participant.js")[0] == 200


def test_http_headers_and_admin(server):
    srv, app = server
    c = Client(srv.url)
    import urllib.request

    with urllib.request.urlopen(srv.url) as r:
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and r.headers["X-Content-Type-Options"] == "nosniff"
        html = r.read().decode()
    assert "http://" not in html and "https://" not in html  # no CDN, nothing from elsewhere
    for asset in ("participant.js", "admin.js", "listen.css"):
        text = c.call("GET", f"static/{asset}")[1].decode()
        assert "http://" not in text and "https://" not in text
    assert c.call("GET", "api/admin/progress")[0] == 401
    assert c.call("GET", "api/admin/progress", headers={"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
    auth = {"Authorization": "Bearer test-admin-token-0123456789"}
    progress = c.ok("GET", "api/admin/progress", headers=auth)
    assert progress["items"] == len(app.config["STUDY"].items) and "rows" in progress
    status, csv_text = c.call("GET", "api/admin/responses.csv", headers=auth)
    assert status == 200 and csv_text.decode().startswith("participant,")
    assert c.call("GET", "admin")[0] == 200


def test_fifty_participants_at_once(small_study, tmp_path):
    """50 simulated participants answer at the same time through the HTTP API of a server process
    (``serve``, 8 threads); every 5th sends each answer twice, every 7th fails the controls.  No response
    is lost, none is counted twice."""
    db = tmp_path / "r.sqlite"
    study = load_study(small_study)
    index = clip_index(study)
    n = 50
    start = threading.Barrier(n)
    proc, url = _serve_process(small_study, db, admin_token="admin-token-for-the-test")
    try:
        def participant(k: int):
            c = Client(url)
            start.wait(timeout=60)
            token = c.ok("POST", "api/participants", {"external_id": f"sim-{k}"})["token"]
            state = c.ok("GET", f"api/p/{token}/state")
            while not state["done"]:
                body = answer_body(state, study, index, fail_controls=k % 7 == 3)
                reply = c.ok("POST", f"api/p/{token}/answer", body)
                assert reply["repeated"] is False
                if k % 5 == 0:
                    assert c.ok("POST", f"api/p/{token}/answer", body)["repeated"] is True
                state = reply["state"]
            return state["completion_code"]

        with ThreadPoolExecutor(n) as pool:
            codes = list(pool.map(participant, range(n)))
        progress = Client(url).ok("GET", "api/admin/progress", headers={"Authorization": "Bearer admin-token-for-the-test"})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    store = Store(db, create=False)
    people = store.participants()
    assert len(people) == n and len(set(codes)) == n
    assert sorted(p["external_id"] for p in people) == sorted(f"sim-{k}" for k in range(n))
    assert all(p["answered"] == len(study.items) and p["finished_at"] for p in people)
    per_participant = sum(len(i.clips) for i in study.items)
    ratings = store.ratings()
    assert len(ratings) == n * per_participant
    assert len({(r["participant_id"], r["item"], r["clip"]) for r in ratings}) == n * per_participant
    cheats = {f"sim-{k}" for k in range(n) if k % 7 == 3}
    assert {p["external_id"] for p in people if p["disqualified_at"]} == cheats
    assert progress["participants"] == {"started": n, "finished": n, "disqualified": len(cheats),
                                        "finished_qualified": n - len(cheats), "in_progress": 0}
    summary = make_report(small_study, tmp_path / "report", db=db)
    assert summary["participants"]["included"] == n - len(cheats)
    assert {r["participants"] for r in summary["statistics"]} == {n - len(cheats)}


def _serve_process(study: Path, db: Path, admin_token: str | None = None) -> tuple[subprocess.Popen, str]:
    """``serve`` in a process of its own (so that it can be killed); returns it and its address."""
    code = ("import sys; from vocalsep.listen.server import serve; "
            "serve(sys.argv[1], port=0, db=sys.argv[2], admin_token=(sys.argv[3] or None), "
            "announce=lambda s: print(s, flush=True))")
    return start_server([sys.executable, "-c", code, str(study), str(db), admin_token or ""], "participants: ",
                        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_killed_server_loses_nothing(small_study, tmp_path):
    study = load_study(small_study)
    index = clip_index(study)
    db = tmp_path / "r.sqlite"
    proc, url = _serve_process(small_study, db)
    try:
        c = Client(url)
        token = c.ok("POST", "api/participants", {})["token"]
        state = c.ok("GET", f"api/p/{token}/state")
        for _ in range(5):
            state = c.ok("POST", f"api/p/{token}/answer", answer_body(state, study, index))["state"]
        before = Store(db, create=False).ratings()
    finally:
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait(timeout=30)
    proc, url = _serve_process(small_study, db)
    try:
        c = Client(url)
        state = c.ok("GET", f"api/p/{token}/state")
        assert state["answered"] == 5 and state["item"]["position"] == 5  # resumes where it was
        while not state["done"]:
            state = c.ok("POST", f"api/p/{token}/answer", answer_body(state, study, index))["state"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    after = Store(db, create=False).ratings()
    assert before == [r for r in after if r["position"] < 5]
    assert sorted({r["position"] for r in after}) == list(range(len(study.items)))


def test_max_participants(small_study, tmp_path):
    study = _fresh_copy(small_study, tmp_path)
    data = json.loads((study / STUDY_FILE).read_text())
    data["max_participants"] = 2
    (study / STUDY_FILE).write_text(json.dumps(data))
    with BackgroundServer(create_app(study)) as srv:
        c = Client(srv.url)
        assert c.call("POST", "api/participants", {})[0] == 201
        assert c.call("POST", "api/participants", {})[0] == 201
        status, body = c.call("POST", "api/participants", {})
        assert status == 409 and "all the participants" in body["error"]
    assert (study / "responses.sqlite").is_file()


# -- the command line (needs the one-line hook in vocalsep/cli/__init__.py: add_listen_parser(sub, common))

def test_cli_prepare_serve_report(outputs, tmp_path, capsys):
    from vocalsep.cli import main

    out = tmp_path / "cli-study"
    code = main(["listen", "prepare", "--system", f"unet={outputs['unet']}", "--system", f"baseline={outputs['baseline']}",
                 "--mixtures", str(outputs["mixtures"]), "--clips", "2", "--duration", "1", "--controls", "2",
                 "--format", "flac", "--mono", "--title", "CLI study", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    study = load_study(out)
    assert study.title == "CLI study" and len(study.control_items) == 2
    assert study.data["prepare"]["command"].startswith("vocalsep listen prepare --system unet=")
    info = sf.info(out / study.excerpts[0].reference)
    assert info.format == "FLAC" and info.channels == 1
    assert main(["listen", "report", str(out), "-o", str(tmp_path / "rep")]) == 2  # nothing served yet
    assert "no responses yet" in capsys.readouterr().err
    store = Store(out / "responses.sqlite")
    store.bind(study)
    quitter = make_plan(study, 1)
    pid, _ = store.create_participant(quitter, 1)
    _answer(store, study, pid, quitter, 0, lambda i, c: c.accept[0] if c.accept else 5)
    assert main(["listen", "report", str(out), "-o", str(tmp_path / "rep")]) == 1  # nobody counts yet
    assert "no participant counts yet" in capsys.readouterr().err
    plan = make_plan(study, 0)
    pid, _ = store.create_participant(plan, 0)
    for pos in range(len(plan)):
        _answer(store, study, pid, plan, pos, lambda i, c: c.accept[0] if c.accept else 5)
    assert main(["listen", "report", str(out), "-o", str(tmp_path / "rep")]) == 0
    assert "Ratings per system and question" in capsys.readouterr().out
    assert (tmp_path / "rep" / "ratings.png").read_bytes().startswith(PNG)


def test_cli_usage_errors(outputs, tmp_path, capsys):
    from vocalsep.cli import main

    def run(*argv) -> tuple[int, str]:
        code = main(list(argv))
        return code, capsys.readouterr().err

    assert run("listen")[0] == 2
    code, err = run("listen", "prepare", "--system", "unet", "--mixtures", "m", "-o", str(tmp_path / "x"))
    assert code == 2 and "NAME=DIR" in err
    code, err = run("listen", "prepare", "--system", f"u={outputs['unet']}", "--mixtures", str(outputs["mixtures"]),
                    "--duration", "0.1", "-o", str(tmp_path / "x"))
    assert code == 2 and "1 to 120 seconds" in err
    code, err = run("listen", "prepare", "--system", f"u={tmp_path / 'none'}", "--mixtures", str(outputs["mixtures"]),
                    "-o", str(tmp_path / "x"))
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err and str(tmp_path / "none") in err
    code, err = run("listen", "serve", str(tmp_path / "nowhere"))
    assert code == 2 and err.count("\n") == 1 and "not a study folder" in err
    code, err = run("listen", "report", str(tmp_path / "nowhere"), "-o", str(tmp_path / "r"))
    assert code == 2 and "not a study folder" in err
    assert not (tmp_path / "x").exists()


def test_cli_help_is_instant():
    code = ("import sys; from vocalsep import cli; cli.main(['listen', 'prepare', '--help'])\n"
            "assert not {'flask', 'waitress', 'pyloudnorm', 'torch', 'matplotlib'} & set(sys.modules), sys.modules.keys()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "--system NAME=DIR" in r.stdout and "--vocals" in r.stdout


def test_pages_and_scripts_are_packaged():
    """The pages live beside the code; a wheel carries them only if pyproject.toml lists them as package data."""
    import re

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    section = pyproject.split("[tool.setuptools.package-data]", 1)[-1].split("\n[", 1)[0]
    line = re.search(r'^"vocalsep\.listen"\s*=\s*\[(.*)\]', section, re.MULTILINE)
    assert line, 'pyproject.toml: add "vocalsep.listen" = ["static/*", "templates/*"] under [tool.setuptools.package-data]'
    assert "static/*" in line.group(1) and "templates/*" in line.group(1)
    here = Path(__import__("vocalsep.listen", fromlist=["x"]).__file__).parent
    assert {p.name for p in (here / "static").iterdir()} >= {"participant.js", "admin.js", "listen.css"}
    assert {p.name for p in (here / "templates").iterdir()} >= {"participant.html", "admin.html"}


# -- issue 24: a relative study path (item 1), hostile requests and spreadsheet formulas (item 21)

def _audio_name(study) -> str:
    return study.excerpts[0].reference.split("/", 1)[1]


def test_item01_serve_with_a_relative_study_path(small_study, tmp_path, monkeypatch):
    study = _fresh_copy(small_study, tmp_path)
    for cwd, arg in ((tmp_path, study.name), (study, ".")):  # the README's 'serve study/' and 'serve .'
        monkeypatch.chdir(cwd)
        app = create_app(arg, db=tmp_path / f"{cwd.name}.sqlite", admin_token="test-admin-token-0123456789")
        name = _audio_name(app.config["STUDY"])
        got = app.test_client().get(f"/audio/{name}")
        assert got.status_code == 200 and got.data == (study / "audio" / name).read_bytes()


def test_item21_deeply_nested_json_is_a_400(small_study, tmp_path):
    app = create_app(_fresh_copy(small_study, tmp_path), db=tmp_path / "r.sqlite", admin_token="test-admin-token-0123456789")
    client = app.test_client()
    nested = b"[" * 30000 + b"]" * 30000  # within the size limit, past the parser's depth
    for path in ("/api/participants", "/api/p/" + "x" * 32 + "/answer"):
        got = client.post(path, data=nested, content_type="application/json")
        assert got.status_code in (400, 404) and got.is_json and "error" in got.get_json()
    got = client.post("/api/participants", data=nested, content_type="application/json")
    assert got.status_code == 400 and got.get_json()["error"] == "the body is nested too deeply"


def test_item21_a_clip_replaced_by_a_link_is_not_followed(small_study, tmp_path):
    study = _fresh_copy(small_study, tmp_path)
    app = create_app(study, db=tmp_path / "r.sqlite", admin_token="test-admin-token-0123456789")
    client = app.test_client()
    name = _audio_name(app.config["STUDY"])
    assert client.get(f"/audio/{name}").status_code == 200
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF not for participants")
    (study / "audio" / name).unlink()
    (study / "audio" / name).symlink_to(secret)  # after start-up
    got = client.get(f"/audio/{name}")
    assert got.status_code == 404 and b"not for participants" not in got.data


def test_item21_participant_text_never_starts_a_formula(small_study, tmp_path):
    study_path = _fresh_copy(small_study, tmp_path)
    app = create_app(study_path, db=tmp_path / "r.sqlite", admin_token="test-admin-token-0123456789")
    client = app.test_client()
    study = app.config["STUDY"]
    ids = ("-2+3", "+1", "@A1:B2")
    for external in ids:
        token = client.post("/api/participants", json={"external_id": external}, headers={"User-Agent": "=HYPERLINK(1)"}).get_json()["token"]
        state = client.get(f"/api/p/{token}/state").get_json()
        assert client.post(f"/api/p/{token}/answer", json=answer_body(state, study, clip_index(study))).status_code == 200
    text = client.get("/api/admin/responses.csv", headers={"Authorization": "Bearer test-admin-token-0123456789"}).data.decode()
    import csv
    import io

    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells), [c for c in cells if c[:1] in "=+-@"]
    assert {f"'{x}" for x in ids} <= set(cells)
    summary = make_report(study_path, tmp_path / "report", db=tmp_path / "r.sqlite", include_incomplete=True)
    for name in ("responses.csv", "participants.csv"):
        cells = [c for row in csv.reader(open(summary["files"][name], encoding="utf-8")) for c in row]
        assert all(not c.startswith(("=", "+", "-", "@")) for c in cells), (name, [c for c in cells if c[:1] in "=+-@"])
