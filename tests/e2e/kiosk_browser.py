"""Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, for the kiosk tests.

The driver path is given, so Selenium Manager never downloads anything; the browser gets a new
profile directory and no background networking. The viewport is set exactly (CDP device
metrics), so screenshots are 800×480 or 1920×1080 pixels.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--lang=en-US")
WAIT_S = 20.0  # generous: CI shares two cores with the whole suite
POLL_S = 0.02
SCREENS_ENV = "POSTERM_SCREENSHOTS"  # a directory: screenshots are kept there (docs/screens)


# What the kiosk screen showed, for a timeout's message: screen, toast, panel.
KIOSK_SHOWN = ("return [document.body.dataset.screen, document.getElementById('toast').textContent,"
               "document.getElementById('panel').innerText.slice(0, 200)]")

class Browser:
    def __init__(self, profile: Path, width: int, height: int) -> None:
        if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
            pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        options = Options()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.size = f"{width}x{height}"
        self.shots: list[Path] = []

    def close(self) -> None:
        self.driver.quit()

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def until(self, script: str, *args: Any, timeout_s: float = WAIT_S, shown: str = KIOSK_SHOWN) -> Any:
        """Poll a JS expression (`return …`) until it is truthy; its value. On a timeout the
        error says what the page showed (`shown`, a JS expression)."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.js(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed it: {script} {args}; it showed: {self.js(shown)}")
            time.sleep(POLL_S)

    def click(self, selector: str) -> None:
        self.until("return document.querySelector(arguments[0]) && !document.querySelector(arguments[0]).disabled",
                   selector)
        self.js("document.querySelector(arguments[0]).click()", selector)

    def text(self, selector: str) -> str:
        text = self.js("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", selector)
        return str(text).replace("\u202f", " ")  # money groups thousands with a narrow no-break space

    def keypad(self, digits: str) -> None:
        for digit in digits:
            self.js("document.querySelector(`#panel [data-key='${arguments[0]}']`).click()", digit)

    def screen(self) -> str:
        return str(self.js("return document.body.dataset.screen"))

    def shot(self, name: str, out: Path) -> Path:
        """A screenshot into `out` (and into $POSTERM_SCREENSHOTS when set), PNG of the viewport."""
        time.sleep(0.3)  # let the fresh-line highlight fade a little
        path = out / f"{name}-{self.size}.png"
        self.driver.save_screenshot(str(path))
        keep = os.environ.get(SCREENS_ENV)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / path.name).write_bytes(path.read_bytes())
        self.shots.append(path)
        return path
