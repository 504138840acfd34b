"""``vocalsep web`` in a real browser, end to end: headless Chromium (Debian's packages, driven by
Selenium) uploads the shared real song and a file that is not audio, waits for the song to be
separated by the installed default model, plays it, moves the vocal slider and checks the gains
the Web Audio graph applies, mutes and solos, downloads a stem and a mix and decodes them, and
deletes the job, mostly with the keyboard.  It takes the screenshots of ``docs/web/`` (desktop and
phone widths): written to the test's temporary folder, and copied into ``docs/web/`` when
``VOCALSEP_UPDATE_DOCS=1``."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flask", reason="the web app needs vocalsep[web] (flask, waitress)")
pytest.importorskip("waitress", reason="the web app needs vocalsep[web] (flask, waitress)")
from browser_support import MISSING

if MISSING:
    pytest.skip(MISSING, allow_module_level=True)
pytest.importorskip("selenium", reason="the browser test drives Chromium with Selenium: pip install selenium (vocalsep[test])")

from browser_support import chromium, no_errors, shot, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from vocalsep._webapp import BackgroundServer
from vocalsep.audio import load
from vocalsep.web.server import create_app, offered_models

DOCS = Path(__file__).resolve().parents[1] / "docs" / "web"
# a refused upload is an answer with an error status, which Chromium logs as a failed resource load
EXPECTED_LOG = ("Failed to load resource: the server responded with a status of 415",)


def state(d) -> dict:
    return d.execute_script("return window.vocalsep.state()")


def gains_settle(d, vocals: float, accompaniment: float) -> dict:
    """The levels asked for are applied by the gain nodes (they glide there in a few tens of ms)."""
    def close(d):
        s = state(d)
        want = {"vocals": vocals, "accompaniment": accompaniment}
        ok = all(abs(s["levels"][k] - want[k]) < 1e-6 and abs(s["gains"][k] - want[k]) < 0.01 for k in want)
        return s if ok else None

    return wait(d, close, f"gains {vocals} / {accompaniment}", timeout=10)


def downloaded(folder: Path, suffix: str, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.name.endswith(suffix)]
        if done and not any(p.name.endswith(".crdownload") for p in folder.iterdir()):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} download in {sorted(p.name for p in folder.iterdir())}")


def test_separate_and_sing_along_in_chromium(tmp_path, data_dir):
    song = data_dir / "mixtures" / "slow-motion-dream.mp3"
    if not song.is_file():
        pytest.skip(f"{song} is missing")
    not_audio = tmp_path / "<img src=x onerror=window.pwned=1>.mp3"
    not_audio.write_text("these are lyrics, not audio\n" * 40)
    shots, downloads = tmp_path / "shots", tmp_path / "downloads"
    shots.mkdir()
    downloads.mkdir()
    models, default = offered_models(None)  # every installed model; the registry's default
    app = create_app(tmp_path / "data", models=models, default_model=default, workers=1)
    try:
        with BackgroundServer(app, threads=8, max_request_body_size=app.config["MAX_REQUEST_BODY"]) as srv, chromium() as start:
            d = start(1100, 1300, downloads=downloads)
            d.get(srv.url)
            wait(d, lambda d: d.find_element(By.ID, "upload").is_displayed(), "the upload zone")
            assert "Nothing here yet" in d.find_element(By.ID, "no-jobs").text
            # the file input is reachable with the keyboard and takes several files at once
            files = d.find_element(By.ID, "files")
            assert files.get_attribute("multiple") == "true" and ".mp3" in files.get_attribute("accept")
            files.send_keys(f"{song}\n{not_audio}")

            refused = wait(d, lambda d: [li for li in d.find_elements(By.CSS_SELECTOR, "#jobs > li.refused")], "the refusal")[0]
            assert refused.find_element(By.CSS_SELECTOR, ".job-name").text == not_audio.name  # shown as text
            assert "is not an audio or video file that vocalsep can read" in refused.find_element(By.CSS_SELECTOR, ".job-state").text
            assert d.execute_script("return window.pwned === undefined && document.querySelectorAll('#jobs img').length === 0")

            # the song is separated; the page shows its progress, then opens the player by itself
            wait(d, lambda d: d.find_element(By.ID, "player").is_displayed() and d.find_element(By.ID, "play").is_enabled(),
                 "the separated song in the player", timeout=300)
            job = d.find_element(By.CSS_SELECTOR, "#jobs > li.done")
            assert job.find_element(By.CSS_SELECTOR, ".job-name").text == song.name
            assert job.find_element(By.CSS_SELECTOR, ".job-state").text.startswith("Ready \u00b7 0:10")
            assert d.find_element(By.ID, "player-title").text == song.name
            s = state(d)
            assert s["ready"] and not s["playing"] and abs(s["duration"] - 10.9) < 0.2
            assert s["levels"] == {"vocals": 1, "accompaniment": 1}

            # play with the keyboard; both stems run on one clock
            d.find_element(By.ID, "play").send_keys(Keys.ENTER)
            wait(d, lambda d: state(d)["playing"] and state(d)["position"] > 0.2, "playback")
            assert d.find_element(By.ID, "play").text == "Pause"
            gains_settle(d, 1, 1)

            # the vocal slider: Home is karaoke, then 35 % with the arrow keys
            slider = d.find_element(By.ID, "vocal-level")
            slider.send_keys(Keys.HOME)
            gains_settle(d, 0, 1)
            assert d.find_element(By.ID, "vocal-level-out").text == "0 %"
            slider.send_keys(*[Keys.ARROW_RIGHT] * 35)
            gains_settle(d, 0.35, 1)
            assert d.find_element(By.ID, "vocal-level-out").text == "35 %"
            assert d.find_element(By.CSS_SELECTOR, '.stem[data-stem="vocals"] .stem-gain').text == "35 %"
            mix = d.find_element(By.ID, "dl-mix")
            assert mix.get_attribute("href").endswith("/mix.wav?vocals=0.35&accompaniment=1.00")
            shot(d, shots / "desktop.png")

            # mute and solo
            acc = d.find_element(By.CSS_SELECTOR, '.stem[data-stem="accompaniment"] .mute')
            acc.send_keys(Keys.ENTER)
            gains_settle(d, 0.35, 0)
            assert acc.get_attribute("aria-pressed") == "true"
            acc.send_keys(Keys.ENTER)
            d.find_element(By.CSS_SELECTOR, '.stem[data-stem="accompaniment"] .solo').send_keys(Keys.ENTER)
            gains_settle(d, 0, 1)
            d.find_element(By.CSS_SELECTOR, '.stem[data-stem="accompaniment"] .solo').send_keys(Keys.ENTER)
            gains_settle(d, 0.35, 1)

            # seeking on the waveform, then pause
            wave = d.find_element(By.ID, "wave")
            wave.send_keys(Keys.HOME)
            wave.send_keys(Keys.ARROW_RIGHT)
            assert 5.0 <= state(d)["position"] < 6.0 and state(d)["playing"]
            d.find_element(By.ID, "play").send_keys(Keys.ENTER)
            wait(d, lambda d: not state(d)["playing"], "the pause")

            # downloads: the vocals as FLAC, and the mix as heard (vocals at 35 %)
            Select(d.find_element(By.ID, "format")).select_by_value("flac")
            d.find_element(By.ID, "dl-vocals").send_keys(Keys.ENTER)
            vocals_file = downloaded(downloads, "(vocals).flac")
            assert vocals_file.name == "slow-motion-dream (vocals).flac"
            x, rate = load(vocals_file)
            assert rate == 44100 and x.shape[0] == 2 and abs(x.shape[1] / rate - s["duration"]) < 0.05 and np.abs(x).max() > 0.05
            Select(d.find_element(By.ID, "format")).select_by_value("wav")
            d.find_element(By.ID, "dl-mix").send_keys(Keys.ENTER)
            mix_file = downloaded(downloads, ").wav")
            m, _ = load(mix_file)
            job_id = d.execute_script("return window.vocalsep.state().job")
            v, _ = load(tmp_path / "data" / "jobs" / job_id / "vocals.wav")
            a, _ = load(tmp_path / "data" / "jobs" / job_id / "accompaniment.wav")
            assert np.abs(m - np.clip(0.35 * v + a, -1, 1)).max() < 2 / 32768

            # the phone layout, at 390 CSS pixels (2x)
            d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
            d.execute_script("window.scrollTo(0, document.getElementById('player').offsetTop - 8)")
            time.sleep(0.3)
            shot(d, shots / "phone.png")
            d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

            # dismiss the refusal, delete the job (a second press confirms)
            refused.find_element(By.CSS_SELECTOR, "button.dismiss").send_keys(Keys.ENTER)
            delete = d.find_element(By.CSS_SELECTOR, "#jobs > li.done button.delete")
            delete.send_keys(Keys.ENTER)
            assert delete.text == "Confirm"
            delete.send_keys(Keys.ENTER)
            wait(d, lambda d: not d.find_elements(By.CSS_SELECTOR, "#jobs > li"), "an empty list")
            assert not d.find_element(By.ID, "player").is_displayed()
            assert app.config["STORE"].all() == [] and not (tmp_path / "data" / "jobs" / job_id).exists()
            no_errors(d, allow=EXPECTED_LOG)
    finally:
        app.config["POOL"].stop()
    if os.environ.get("VOCALSEP_UPDATE_DOCS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        for f in sorted(shots.iterdir()):
            shutil.copy(f, DOCS / f.name)


def test_the_token_in_chromium(tmp_path, tiny_model_dir):
    token = "browser-test-token-0123456789"
    app = create_app(tmp_path / "data", models={"tiny": str(tiny_model_dir)}, default_model="tiny", token=token, start=False)
    with BackgroundServer(app) as srv, chromium() as start:
        d = start(900, 700)
        d.get(srv.url)
        wait(d, lambda d: d.find_element(By.ID, "login").is_displayed(), "the token form")
        assert not d.find_element(By.ID, "upload").is_displayed()
        d.find_element(By.ID, "token").send_keys("not-the-token-not-the-token" + Keys.ENTER)
        wait(d, lambda d: "not this server's" in d.find_element(By.ID, "status").text, "the refusal")
        d.find_element(By.ID, "token").send_keys(token + Keys.ENTER)  # the wrong one is selected: typing replaces it
        wait(d, lambda d: d.find_element(By.ID, "upload").is_displayed(), "the page after the token")
        d.refresh()  # the session cookie keeps it open
        wait(d, lambda d: d.find_element(By.ID, "upload").is_displayed(), "the page after a reload")
        no_errors(d, allow=("status of 401",))
        # the address the command prints logs in at once, and the token leaves the address bar
        e = start(900, 700)
        e.get(f"{srv.url}#token={token}")
        wait(e, lambda d: d.find_element(By.ID, "upload").is_displayed(), "the page from the printed address")
        assert token not in e.current_url
        no_errors(e)
