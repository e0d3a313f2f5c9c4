"""`posterm provision` and `posterm status` through the CLI, as a technician runs them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from terminal.cli import main
from terminal.config import load_config
from terminal.demo_run import DATA
from terminal.ledger import Ledger


def provision_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["provision", "--config", str(tmp_path / "etc" / "terminal.toml"), "--terminal", "T07",
            "--store", "S01", "--state-dir", str(tmp_path / "state"), "--socket", str(tmp_path / "api.sock"),
            "--scanner", "/dev/input/by-id/usb-Honeywell-event-kbd", "--card-reader", "serial:/dev/ttyACM0",
            "--printer", "usb:04b8:0202", *extra]


def test_provision_writes_config_ledger_key_and_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(provision_args(tmp_path, "--rules", str(DATA / "rules.toml"), "--catalog", str(DATA / "catalog.csv"),
                               "--server", "http://127.0.0.1:9"))
    out = capsys.readouterr().out
    assert code == 0 and "not reachable now" in out  # nothing listens on port 9: a warning
    cfg = load_config(tmp_path / "etc" / "terminal.toml")
    assert (cfg.terminal_id, cfg.server_url) == ("T07", "http://127.0.0.1:9")
    assert cfg.sync is not None and cfg.sync["key_file"] == str(cfg.key_path)
    assert [d.driver for d in cfg.devices.inputs] == ["evdev", "serial"]
    assert cfg.devices.printers[0].spec.vendor == 0x04B8
    key = cfg.key_path
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text().strip()) == 64
    assert cfg.rules_path.read_text() == (DATA / "rules.toml").read_text()
    with Ledger(cfg.ledger_path) as ledger:
        assert ledger.terminal_id == "T07"
        assert ledger.product("4006381333931")["sku"] == "fridge-x200"
    first_key = key.read_text()
    assert main([*provision_args(tmp_path), "--force"]) == 0
    assert key.read_text() == first_key  # re-provisioning keeps the key the server knows


@pytest.mark.parametrize(("extra", "message"), [
    (["--printer", "carrier-pigeon:1"], "--printer"),
    (["--scanner", "/dev/sda"], "--scanner"),
    (["--server", "central.example"], "server_url must start with http"),
    (["--rules", "/nonexistent/rules.toml"], "rules"),
    (["--catalog", "/nonexistent/catalog.csv"], "--catalog"),
    (["--cards", str(DATA / "cards.csv"), "--server", "http://127.0.0.1:9"], "posterm-central publish cards"),
])
def test_provision_refuses_bad_input_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             extra: list[str], message: str) -> None:
    assert main([*provision_args(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("posterm: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "etc" / "terminal.toml").exists()  # nothing written on a refusal


def test_provision_refuses_a_bad_terminal_id_and_an_existing_config(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    args = provision_args(tmp_path)
    args[args.index("T07")] = "T 07!"
    assert main(args) == 2 and "id" in capsys.readouterr().err
    assert main(provision_args(tmp_path)) == 0
    assert main(provision_args(tmp_path)) == 2 and "--force" in capsys.readouterr().err


def test_status_without_a_running_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(provision_args(tmp_path, "--rules", str(DATA / "rules.toml"))) == 0
    capsys.readouterr()
    assert main(["status", "--config", str(tmp_path / "etc" / "terminal.toml")]) == 1
    out = capsys.readouterr().out
    assert "outbox      0 event(s)" in out and "last sync   never" in out and "not reachable" in out


def test_status_refuses_an_unprovisioned_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(provision_args(tmp_path)) == 0
    cfg = load_config(tmp_path / "etc" / "terminal.toml")
    for item in cfg.ledger_path.iterdir():
        item.unlink()
    assert main(["status", "--config", str(cfg.path)]) == 2
    assert "run posterm provision" in capsys.readouterr().err


def test_a_ledger_that_cannot_be_made_leaves_no_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the checks' blind spot: the config used to be written before the ledger, so a
    ledger failure left a config that pointed at nothing (and a re-run needed --force)."""
    ledger_dir = tmp_path / "state" / "ledger"
    ledger_dir.mkdir(parents=True)
    (ledger_dir / "data.mdb").write_bytes(b"not an lmdb file")
    assert main(provision_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("posterm: ") and err.count("\n") == 1
    assert not (tmp_path / "etc" / "terminal.toml").exists()
    (ledger_dir / "data.mdb").unlink()
    assert main(provision_args(tmp_path)) == 0  # the fixed machine provisions without --force
    assert load_config(tmp_path / "etc" / "terminal.toml").terminal_id == "T07"
