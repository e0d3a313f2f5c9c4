"""The systemd unit and udev rules: required settings present, and `systemd-analyze verify`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"


def unit_settings() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = ""
    for raw in (SYSTEMD / "posterm.service").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = {}
            continue
        key, _, value = line.partition("=")
        sections[current].setdefault(key, []).append(value)
    return sections


def test_unit_has_the_required_settings() -> None:
    s = unit_settings()["Service"]
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert int(s["WatchdogSec"][0]) >= 2 and s["Restart"] == ["on-failure"]
    assert s["ExecStart"] == ["/usr/bin/posterm run --config /etc/posterm/terminal.toml"]
    for key, value in [("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("NoNewPrivileges", "yes"), ("StateDirectory", "posterm"),
                       ("ConfigurationDirectory", "posterm"), ("RuntimeDirectory", "posterm"),
                       ("User", "posterm"), ("DevicePolicy", "closed")]:
        assert s[key] == [value], key
    assert set(s["SupplementaryGroups"][0].split()) == {"input", "dialout", "lp"}
    assert set(s["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert any(d.startswith("char-input") for d in s["DeviceAllow"])
    assert "PYTHONOPTIMIZE" not in "".join(s.get("Environment", []))  # ledger invariants need asserts
    assert unit_settings()["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify also checks that ExecStart exists; point it at this Python so only the unit is judged.
    text = (SYSTEMD / "posterm.service").read_text().replace("/usr/bin/posterm", sys.executable)
    unit = tmp_path / "posterm.service"
    unit.write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (done.stdout + done.stderr).splitlines() if "posterm.service" in ln]
    assert done.returncode == 0 and problems == [], done.stdout + done.stderr


def test_udev_rules_give_stable_names_and_groups() -> None:
    rules = [ln for ln in (SYSTEMD / "99-posterm.rules").read_text().splitlines() if ln and not ln.startswith("#")]
    assert rules
    for rule in rules:
        assert re.search(r'GROUP="(input|dialout|lp)"', rule), rule
        assert 'MODE="0660"' in rule, rule
        for part in rule.split(", "):
            assert re.fullmatch(r'[A-Z_]+(\{[A-Za-z_]+\})?(==|\+=|=)"[^"]*"', part), part
    names = {m for rule in rules for m in re.findall(r'SYMLINK\+="([^"]+)"', rule)}
    assert {"posterm/scanner0", "posterm/card0", "posterm/printer0"} <= names
