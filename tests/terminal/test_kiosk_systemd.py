"""systemd/posterm-kiosk.service: Chromium in kiosk mode on the daemon's loopback page."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "posterm-kiosk.service"


def test_the_kiosk_unit_opens_the_loopback_screen_in_kiosk_mode() -> None:
    text = UNIT.read_text()
    assert "Environment=POSTERM_SCREEN_URL=http://127.0.0.1:" in text
    assert "/usr/bin/chromium --kiosk" in text and "--disable-background-networking" in text
    assert "After=posterm.service" in text and "User=kiosk" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_the_kiosk_unit(tmp_path: Path) -> None:
    unit = tmp_path / "posterm-kiosk.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/cage", shutil.which("true") or "/bin/true"))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (done.stdout + done.stderr).splitlines() if "posterm-kiosk.service" in ln]
    assert done.returncode == 0 and problems == [], done.stdout + done.stderr
