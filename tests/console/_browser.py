"""A real browser (Debian's chromium, headless, driven by chromedriver through Selenium) and
real `seml console` processes for the end-to-end tests.

Chromium runs with the flags this machine needs (no sandbox as root, no GPU, no background
networking: the network is closed) and a fresh profile folder per browser, so each party's
browser has its own cookies. `shoot` saves a full-page screenshot into the test's folder and,
when SEML_SCREENSHOTS names a folder (`make screenshots`), there too.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def need_chromium() -> None:
    for program in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(program) is None:
            pytest.skip(
                f"{program} is not installed: scripts/install-system-deps.sh (run by make test) "
                "installs Debian's chromium and chromium-driver; it needs root and apt"
            )


@contextmanager
def browser(
    profile: Path, width: int = 1280, height: int = 900, *, phone: bool = False
) -> Iterator[WebDriver]:
    """A headless chromium with a fresh profile folder; yields the Selenium driver. `phone`
    emulates a phone's screen (`width` x `height` CSS pixels, touch, 3x pixels)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    need_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    # A click that submits a form returns before the next page is there; every lookup waits
    # up to this long for its element (the tests look only for elements of the next page).
    driver.implicitly_wait(30)
    if phone:  # a headless window is at least 500 px wide: emulate the phone's screen
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True},
        )
    try:
        yield driver
    finally:
        driver.quit()


def shoot(driver: WebDriver, folder: Path, name: str) -> Path:
    """A PNG of the whole page (not only the window) as `folder/name.png`, and a copy in
    $SEML_SCREENSHOTS when set."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    width = int(metrics["cssLayoutViewport"]["clientWidth"])
    height = min(int(size["height"]), 3000)
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    data = base64.b64decode(shot["data"])
    path = folder / f"{name}.png"
    path.write_bytes(data)
    extra = os.environ.get("SEML_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        (Path(extra) / f"{name}.png").write_bytes(data)
    return path


def csp_violations(driver: WebDriver) -> list[str]:
    """What the browser logged about Content-Security-Policy (nothing if the pages comply)."""
    logs: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [e["message"] for e in logs if "Content Security Policy" in e["message"]]


def unlabelled(driver: WebDriver) -> list[str]:
    """Form fields (not hidden) without a label, by id or name: none on an accessible page."""
    fields: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'input:not([type=hidden]), textarea, select'))"
        ".filter(e => !e.labels || e.labels.length === 0).map(e => e.id || e.name);"
    )
    return fields


class ConsoleProcess:
    """`seml console` in a child process; `.url` is the link it printed."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "seml", "console", *args],
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        found = threading.Event()
        self.url = ""

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                m = re.search(r"open: (http://\S+)", line)
                if m and not self.url:
                    self.url = m.group(1)
                    found.set()
            found.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not found.wait(60) or not self.url:
            self.stop()
            raise AssertionError(f"seml console printed no URL: {''.join(self.output)}")

    @property
    def base(self) -> str:
        return self.url.split("/?token=")[0]

    def __enter__(self) -> ConsoleProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
