"""Headless Chromium for the browser tests (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium; nothing is downloaded).  A test module checks :data:`MISSING` and skips, saying why, before
it imports Selenium; the functions here import it when they run."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = None if CHROMIUM and CHROMEDRIVER else \
    "headless Chromium is not installed: apt-get install chromium chromium-driver (.ci/run does)"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
         "--hide-scrollbars", "--mute-audio")


@contextmanager
def chromium(script: str | None = None) -> Iterator[Callable]:
    """Yields ``start(width, height, downloads=None)``, which starts a driver with a fresh, empty
    profile (``script`` runs in every page before the page's own; ``downloads`` is the folder that
    downloads go to); every driver is quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    made = []

    def start(width: int = 1000, height: int = 1000, downloads: Path | None = None):
        profile = tempfile.mkdtemp(prefix="vocalsep-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        if downloads is not None:
            options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                      "download.prompt_for_download": False})
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        made.append((driver, profile))
        if downloads is not None:
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        if script:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
        return driver

    try:
        yield start
    finally:
        for driver, profile in made:
            try:
                driver.quit()
            finally:
                shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, what: str, timeout: float = 30, detail: Callable | None = None):
    """``condition(driver)`` once it is true; a timeout fails with the page's ``#status`` text (and
    ``detail(driver)``, where given)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))
    except TimeoutException:
        extra = f"; {detail(driver)}" if detail is not None else ""
        raise AssertionError(f"timed out waiting for {what}; page status: "
                             f"{driver.find_element(By.ID, 'status').text!r}{extra}") from None


def no_errors(driver, allow: tuple[str, ...] = ()) -> None:
    """No script error or Content-Security-Policy violation in the browser's log (messages that contain
    one of ``allow`` excepted)."""
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and not any(a in e["message"] for a in allow)]
    assert not severe, severe


def shot(driver, path: Path, limit: int = 300_000) -> None:
    driver.save_screenshot(str(path))
    assert path.stat().st_size < limit, f"{path.name} is {path.stat().st_size} bytes"
