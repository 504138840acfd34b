"""The listening test in a real browser, end to end: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium; nothing is downloaded) completes a study as one participant
using only the keyboard, and as another using the mouse who fails a control and is left out of the
report.  It also takes the screenshots of ``docs/listening/``: written to the test's temporary folder,
and copied into ``docs/listening/`` when ``VOCALSEP_UPDATE_DOCS=1``.

To keep the test short the page's audio plays at 8x speed (``playbackRate``, set by a script the test
adds to the page); the page's rule still holds: every clip must be heard to its end before it can be
rated, counted in seconds of the clip."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("flask", reason="the listening test needs vocalsep[listen] (flask, waitress, pyloudnorm)")
pytest.importorskip("pyloudnorm", reason="the listening test needs vocalsep[listen] (flask, waitress, pyloudnorm)")
from browser_support import MISSING

if MISSING:
    pytest.skip(MISSING, allow_module_level=True)
pytest.importorskip("selenium", reason="the browser test drives Chromium with Selenium: pip install selenium (vocalsep[test])")

from browser_support import chromium, no_errors, wait
from browser_support import shot as take_shot
from listen_support import Client, clip_index, make_outputs, scripted_rating
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from vocalsep.listen.prepare import PrepareConfig, prepare
from vocalsep.listen.report import make_report
from vocalsep.listen.server import BackgroundServer, create_app
from vocalsep.listen.store import Store

DOCS = Path(__file__).resolve().parents[1] / "docs" / "listening"
ADMIN = "browser-test-admin-token"
SPEED_UP = """
(() => {
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () { this.playbackRate = 8; return play.call(this); };
})();
"""


@pytest.fixture
def browser():
    """Start headless Chromium drivers (each with a fresh, empty profile) whose pages play audio 8x faster."""
    with chromium(SPEED_UP) as start:
        yield start


def _token(driver) -> str:
    return wait(driver, lambda d: d.execute_script("return (location.hash.match(/^#t=(.+)$/) || [])[1] || null"), "the token")


def _page(driver, position: int):
    wait(driver, lambda d: d.find_element(By.ID, "counter").text.startswith(f"Question {position + 1} of"), f"question {position + 1}")


def _played(card) -> bool:
    return "is-played" in card.find_element(By.CSS_SELECTOR, ".player").get_attribute("class")


def _answer_page(driver, client, token, index, *, keyboard: bool, fail_controls: bool, shot: Path | None = None) -> bool:
    """Play and rate every clip of the current page, then press Next.  True when the page was a control that was failed."""
    state = client.ok("GET", f"api/p/{token}/state")
    item_view = state["item"]
    _page(driver, item_view["position"])
    cards = driver.find_elements(By.CSS_SELECTOR, "#clips .card")
    assert [c.find_element(By.TAG_NAME, "h3").text.rstrip(" \u2713") for c in cards] == [f"Clip {x['slot']}" for x in item_view["clips"]]
    failed = False
    for card, clip_view in zip(cards, item_view["clips"]):
        item, clip = index[clip_view["audio"]]
        rating = scripted_rating(item, clip, fail_controls=fail_controls)
        failed |= clip.accept is not None and not clip.accept[0] <= rating <= clip.accept[1]
        play = card.find_element(By.CSS_SELECTOR, ".play")
        if keyboard:
            play.send_keys(Keys.ENTER)  # focus the button and press Enter
        else:
            play.click()
        wait(driver, lambda d, card=card: _played(card), f"clip {clip_view['slot']} to be played", timeout=90,
             detail=lambda d, card=card: f"player: {card.find_element(By.CSS_SELECTOR, '.player').text!r}")
        if keyboard:
            ActionChains(driver).send_keys(str(rating)).perform()  # the shortcut rates the selected clip
        else:
            card.find_elements(By.CSS_SELECTOR, "label.step")[rating - 1].click()
        assert card.find_element(By.CSS_SELECTOR, f"input[value='{rating}']").is_selected()
    if shot is not None:
        take_shot(driver, shot)
    nxt = driver.find_element(By.ID, "next")
    assert nxt.is_enabled()
    if keyboard:
        nxt.send_keys(Keys.ENTER)
    else:
        nxt.click()
    wait(driver, lambda d: d.find_element(By.ID, "done").is_displayed()
          or d.find_element(By.ID, "counter").text.startswith(f"Question {item_view['position'] + 2} of"), "the next page")
    return failed


def test_two_participants_in_chromium(browser, tmp_path):
    outputs = make_outputs(tmp_path / "outputs", tracks=2)
    study_dir = tmp_path / "study"
    prepare(PrepareConfig(systems=(("unet", str(outputs["unet"])), ("baseline", str(outputs["baseline"]))),
                          mixtures=str(outputs["mixtures"]), out=str(study_dir), clips=2, duration=1.0, controls=2,
                          title="Listening test: singing voice separation"))
    shots = tmp_path / "shots"
    shots.mkdir()
    app = create_app(study_dir, admin_token=ADMIN)
    study = app.config["STUDY"]
    index = clip_index(study)
    total = len(study.items)
    with BackgroundServer(app, threads=4) as srv:
        client = Client(srv.url)

        # participant 1: keyboard only, answers every control as an attentive listener would
        one = browser(1000, 1000)
        one.get(srv.url)
        start = wait(one, lambda d: d.find_element(By.ID, "start") if d.find_element(By.ID, "start").is_displayed() else None,
                      "the welcome page")
        assert "Poor" in one.find_element(By.ID, "instructions").text
        take_shot(one, shots / "welcome.png")
        start.send_keys(Keys.ENTER)
        token_one = _token(one)
        for k in range(total):
            assert not _answer_page(one, client, token_one, index, keyboard=True, fail_controls=False,
                                    shot=shots / "participant.png" if k == 1 else None)
        wait(one, lambda d: d.find_element(By.ID, "done").is_displayed(), "the thank-you page")
        code_one = one.find_element(By.ID, "code").text
        assert len(code_one) == 10
        one.refresh()  # a reload resumes: still finished
        wait(one, lambda d: d.find_element(By.ID, "done").is_displayed(), "the thank-you page after a reload")
        no_errors(one)

        # participant 2: mouse; a clip cannot be rated before it is played; fails the controls
        two = browser(1000, 1000)
        two.get(srv.url)
        wait(two, lambda d: d.find_element(By.ID, "start").is_displayed(), "the welcome page")
        two.find_element(By.ID, "start").click()
        token_two = _token(two)
        assert token_two != token_one
        _page(two, 0)
        # the phone layout, at 390 x 844 CSS pixels (2x), taken before any clip is played: a media
        # element paused mid-play while the emulation switches to a mobile device could stall in CI
        two.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 1200, "deviceScaleFactor": 2, "mobile": True})
        time.sleep(0.3)
        take_shot(two, shots / "participant-phone.png")
        two.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        card = two.find_elements(By.CSS_SELECTOR, "#clips .card")[0]
        assert not any(i.is_enabled() for i in card.find_elements(By.CSS_SELECTOR, "input[type=radio]"))
        card.find_elements(By.CSS_SELECTOR, "label.step")[3].click()
        assert not any(i.is_selected() for i in card.find_elements(By.CSS_SELECTOR, "input[type=radio]"))
        card.find_element(By.CSS_SELECTOR, ".play").click()
        card.find_element(By.CSS_SELECTOR, ".play").click()  # pause at once: not heard to the end
        ActionChains(two).send_keys("4").perform()
        assert "before rating" in two.find_element(By.ID, "status").text
        assert not two.find_element(By.ID, "next").is_enabled()
        failed = [_answer_page(two, client, token_two, index, keyboard=False, fail_controls=True) for _ in range(total)]
        assert any(failed)
        wait(two, lambda d: d.find_element(By.ID, "done").is_displayed(), "the thank-you page")  # nothing gives it away
        no_errors(two)

        # the admin page shows both, the second disqualified
        two.get(srv.url + "admin#token=" + ADMIN)
        wait(two, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#participants tbody tr")) == 2, "the admin table")
        rows = [r.text for r in two.find_elements(By.CSS_SELECTOR, "#participants tbody tr")]
        assert "finished" in rows[0] and code_one in rows[0] and "disqualified" in rows[1]
        take_shot(two, shots / "admin.png")
        no_errors(two)

    store = Store(study_dir / "responses.sqlite", create=False)
    people = store.participants()
    assert [p["answered"] for p in people] == [total, total]
    assert people[0]["disqualified_at"] is None and people[1]["disqualified_at"] is not None
    summary = make_report(study_dir, tmp_path / "report")
    c = summary["participants"]
    assert (c["started"], c["finished"], c["disqualified"], c["included"]) == (2, 1, 1, 1)
    assert {r["participants"] for r in summary["statistics"]} == {1}
    means = {(r["question"], r["system"]): r["mean"] for r in summary["statistics"]}
    assert all(means[(q.id, "unet")] > means[(q.id, "baseline")] for q in study.questions)  # participant 1's ratings only
    shutil.copy(tmp_path / "report" / "ratings.png", shots / "report.png")
    assert (shots / "report.png").stat().st_size < 300_000
    if os.environ.get("VOCALSEP_UPDATE_DOCS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        for f in sorted(shots.iterdir()):
            shutil.copy(f, DOCS / f.name)
