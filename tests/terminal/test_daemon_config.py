"""The terminal config reader: good files parse, every bad value is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from terminal.config import ConfigError, load_config

GOOD = """
[terminal]
id = "T01"
store = "S01"
ledger_path = "/var/lib/posterm/ledger"

[api]
socket = "/run/posterm/api.sock"
tcp_port = 8081

[checkout]
idle_timeout_s = 120
hold_timeout_s = 600

[codes]
cards = [{ prefix = "77", digits = 13 }]

[[device]]
role = "scanner"
driver = "simulated"
script = "/tmp/scan.fifo"

[[device]]
role = "printer"
driver = "simulated"
dir = "/tmp/printer"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "terminal.toml"
    path.write_text(text)
    return path


def test_good_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert (cfg.terminal_id, cfg.store, cfg.api_tcp_port, cfg.idle_timeout_s) == ("T01", "S01", 8081, 120)
    assert cfg.checkout_path == Path("/var/lib/posterm/checkout.json")
    assert cfg.devices.inputs[0].source == "/tmp/scan.fifo" and cfg.devices.printers[0].spec.path == "/tmp/printer"
    assert cfg.printer_retry_s == 10 and cfg.server_url == ""


@pytest.mark.parametrize(("old", "new", "message"), [
    ('id = "T01"', 'id = "T-01 with spaces"', "id"),
    ('id = "T01"', "", "id is required"),
    ('store = "S01"', "store = 5", "store must be text"),
    ("tcp_port = 8081", "tcp_port = 70000", "tcp_port must be an integer 0..65535"),
    ("idle_timeout_s = 120", "idle_timeout_s = 1", "idle_timeout_s"),
    ("hold_timeout_s = 600", "hold_timeout_s = 60", "hold_timeout_s (60) must be at least idle_timeout_s"),
    ("[checkout]", "[checkout]\ncolour = 1", "'colour' is not a known setting"),
    ("[codes]", "[extra]\n[codes]", "[extra] is not a known table"),
    ('driver = "simulated"\nscript', 'driver = "telepathy"\nscript', "device 0"),
    ('socket = "/run/posterm/api.sock"', 'socket = "/' + "x" * 120 + '"', "socket path is longer"),
    ('ledger_path = "/var/lib/posterm/ledger"', 'server_url = "ftp://x"', "server_url must start with http"),
])
def test_bad_values_are_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_config(write(tmp_path, GOOD.replace(old, new, 1)))


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[terminal\nid="))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(write(tmp_path, "#" * (1024 * 1024 + 10)))
