"""The systemd units and udev rules: required settings present, `systemd-analyze verify`, the
exposure score of `systemd-analyze security` ≤ 1.5, every default writable path inside the
unit's writable directories, and the IP allow-list drop-in."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
UNITS = ("posterm.service", "posterm-central.service")
INSTALLED_BIN = "/opt/posterm/bin/"  # where systemd/README.md installs posterm (a venv)
EXPOSURE_MAX = 1.5
# Character-device class names as the kernel lists them in /proc/devices (DeviceAllow=char-NAME
# matches nothing for a name not there: "usbmisc" is a udev subsystem, its nodes are "usb").
CHAR_CLASSES = {"input", "ttyUSB", "ttyACM", "ttyS", "usb", "usb_device", "lp"}
WRITABLE = ("/var/lib/posterm/", "/run/posterm/")  # StateDirectory= and RuntimeDirectory=


def unit_settings(name: str = "posterm.service") -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = ""
    for raw in (SYSTEMD / name).read_text().splitlines():
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
    assert s["ExecStart"] == [INSTALLED_BIN + "posterm run --config /etc/posterm/terminal.toml"]
    for key, value in [("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("NoNewPrivileges", "yes"), ("StateDirectory", "posterm"),
                       ("ConfigurationDirectory", "posterm"), ("RuntimeDirectory", "posterm"),
                       ("User", "posterm"), ("DevicePolicy", "closed"), ("RemoveIPC", "yes"),
                       ("ProtectProc", "invisible"), ("ProcSubset", "pid"), ("PrivateMounts", "yes"),
                       ("IPAddressDeny", "any"), ("IPAddressAllow", "localhost")]:
        assert s[key] == [value], key
    assert set(s["SupplementaryGroups"][0].split()) == {"input", "dialout", "lp"}
    assert set(s["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert any(d.startswith("char-input") for d in s["DeviceAllow"])
    for allow in s["DeviceAllow"]:
        kind, _, access = allow.partition(" ")
        assert kind.startswith("char-") and kind[5:] in CHAR_CLASSES and access == "rw", allow
    assert "PYTHONOPTIMIZE" not in "".join(s.get("Environment", []))  # ledger invariants need asserts
    assert unit_settings()["Install"]["WantedBy"] == ["multi-user.target"]


def test_central_unit_runs_the_installed_server_hardened() -> None:
    s = unit_settings("posterm-central.service")["Service"]
    assert s["ExecStart"][0].startswith(INSTALLED_BIN + "posterm-central serve --host 127.0.0.1 ")
    for key, value in [("ProtectSystem", "strict"), ("StateDirectory", "posterm-central"),
                       ("User", "posterm-central"), ("NoNewPrivileges", "yes"), ("PrivateDevices", "yes")]:
        assert s[key] == [value], key
    assert any(e.startswith("POSTERM_CENTRAL_DB=sqlite:////var/lib/posterm-central/") for e in s["Environment"])


def _judged_unit(tmp_path: Path, name: str) -> Path:
    # verify also checks that ExecStart exists; point it at this Python so only the unit is judged.
    text = re.sub(re.escape(INSTALLED_BIN) + r"posterm(-central)?", sys.executable, (SYSTEMD / name).read_text())
    unit = tmp_path / name
    unit.write_text(text)
    return unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    unit = _judged_unit(tmp_path, name)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (done.stdout + done.stderr).splitlines() if name in ln]
    assert done.returncode == 0 and problems == [], done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_security_exposure(tmp_path: Path, name: str) -> None:
    unit = _judged_unit(tmp_path, name)
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=60)
    if "--offline" in done.stderr and "unrecognized" in done.stderr:
        pytest.skip("this systemd-analyze cannot judge a unit file offline (systemd < 250)")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert found, done.stdout[-2000:] + done.stderr
    assert float(found.group(1)) <= EXPOSURE_MAX, done.stdout


def test_every_default_writable_path_is_inside_the_units_writable_directories(tmp_path: Path) -> None:
    from terminal.config import parse_config
    from terminal.provision import ProvisionRequest

    doc = {"terminal": {"id": "T01", "store": "S01"},
           "device": [{"role": "printer", "driver": "network", "host": "192.0.2.9"}]}
    cfg = parse_config(doc, tmp_path / "terminal.toml")
    # [sync] has no path defaults; `posterm provision` puts its files in --state-dir.
    state_dir = ProvisionRequest.__dataclass_fields__["state_dir"].default
    paths = [cfg.ledger_path, cfg.rules_path, cfg.key_path, cfg.checkout_path, cfg.api_socket,
             *(Path(p.spool) for p in cfg.devices.printers), Path(f"{state_dir}/x")]
    for path in paths:
        assert str(path).startswith(WRITABLE), path


def test_unit_network_dropin_allows_the_configured_peers(tmp_path: Path) -> None:
    from terminal.config import parse_config
    from terminal.unit_network import network_dropin

    doc = {"terminal": {"id": "T01", "store": "S01", "server_url": "https://central.example"},
           "device": [{"role": "printer", "driver": "network", "host": "printer.local"}],
           "sync": {"url": "https://central.example/", "key": "00" * 32}}
    cfg = parse_config(doc, tmp_path / "terminal.toml")
    names = {"central.example": ["192.0.2.10", "2001:db8::10"], "printer.local": ["192.0.2.9"]}
    text = network_dropin(cfg, ["192.0.2.53"], resolver=lambda host: names[host])
    allowed = [ln.split("=", 1)[1] for ln in text.splitlines() if ln.startswith("IPAddressAllow=")]
    assert text.splitlines()[2] == "[Service]"
    assert allowed == ["192.0.2.10/32 2001:db8::10/128", "192.0.2.9/32", "192.0.2.53/32"]


def test_unit_network_command_writes_the_dropin_or_refuses(tmp_path: Path) -> None:
    config = tmp_path / "terminal.toml"
    config.write_text('[terminal]\nid = "T01"\nstore = "S01"\nserver_url = "http://127.0.0.1:8780"\n')
    out = tmp_path / "posterm.service.d" / "network.conf"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "terminal.cli", "unit-network", "--config", str(config)]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert "IPAddressAllow=127.0.0.1/32" in out.read_text().splitlines()
    done = subprocess.run([*cmd, "--allow", "not-an-address"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "--allow" in done.stderr


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
