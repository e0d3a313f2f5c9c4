"""Backup, restore and compaction: verified copies, swapped in whole, refused while in use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from terminal.ledger import Ledger, LedgerError, LedgerInputError
from terminal.ledger.backup import restore

from .conftest import NOW, add_card, sell

ROOT = Path(__file__).resolve().parents[2]
MAP = 64 * 1024 * 1024


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "terminal.cli", "ledger", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_backup_while_open_then_restore_gives_the_same_ledger(ledger, engine, tmp_path):
    add_card(ledger, "C1", 500)
    sell(ledger, engine, "s1", "C1", [10000], redeem=100)
    copy = ledger.backup(tmp_path / "backup")
    assert copy["terminal"] == "T01" and copy["next_seq"] == ledger.meta()["next_seq"]
    sell(ledger, engine, "s2", "C1", [20000])  # after the backup: not in it
    card_then = None
    with Ledger(tmp_path / "backup", MAP) as led:
        card_then = led.card("C1", NOW)
        assert led.receipt("s2") is None
    ledger.close()
    done = restore(tmp_path / "backup", tmp_path / "ledger", MAP, force=True)
    assert done["path"] == str(tmp_path / "ledger")
    with Ledger(tmp_path / "ledger", MAP) as led:
        assert led.card("C1", NOW) == card_then
        assert led.receipt("s1") is not None and led.receipt("s2") is None
        assert led.verify()["ok"]


def test_backup_target_must_be_new(ledger, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(LedgerInputError, match="new or empty"):
        ledger.backup(tmp_path / "full")


def test_restore_refuses_a_damaged_backup_and_keeps_the_ledger(ledger, engine, tmp_path):
    add_card(ledger, "C1", 500)
    ledger.backup(tmp_path / "b")
    ledger.close()
    data = tmp_path / "b" / "data.mdb"
    data.write_bytes(data.read_bytes()[:8192])  # cut short
    before = (tmp_path / "ledger" / "data.mdb").read_bytes()
    with pytest.raises(LedgerError):
        restore(tmp_path / "b", tmp_path / "ledger", MAP, force=True)
    assert (tmp_path / "ledger" / "data.mdb").read_bytes() == before


def test_restore_over_a_ledger_needs_force(ledger, tmp_path):
    ledger.backup(tmp_path / "b")
    with pytest.raises(LedgerInputError, match="--force"):
        restore(tmp_path / "b", tmp_path / "ledger", MAP)


def test_compact_shrinks_after_prune_and_keeps_everything(ledger, engine, tmp_path):
    add_card(ledger, "C1")
    for i in range(300):
        sell(ledger, engine, f"s{i}", "C1", [10000 + i], now=f"2026-01-{1 + i % 28:02d}T10:00:00+03:00")
    ledger.close_shift("z1", {}, "2026-02-01T10:00:00+03:00")
    ledger.mark_acked(ledger.meta()["next_seq"] - 1)
    while ledger.prune("2026-06-01T10:00:00+03:00", 35, 30)["more"]:
        pass
    card = ledger.card("C1", NOW)
    result = ledger.compact()
    assert result["file_bytes"] < result["bytes_before"]
    with Ledger(tmp_path / "ledger", MAP) as led:
        assert led.card("C1", NOW) == card and led.verify()["ok"]


def test_compact_is_refused_while_another_process_has_the_ledger_open(ledger, tmp_path):
    path = tmp_path / "ledger"
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from terminal.ledger import Ledger; l = Ledger(sys.argv[1], 64 << 20); "
         "l.meta(); print('open', flush=True); time.sleep(30)", str(path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "open"
        with pytest.raises(LedgerError, match="stop the daemon"):
            ledger.compact()
        with pytest.raises(LedgerError, match="stop the daemon"):
            restore(tmp_path / "ledger", tmp_path / "ledger", MAP, force=True)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_cli_backup_restore_compact_prune(ledger, engine, tmp_path):
    add_card(ledger, "C1", 300)
    ledger.close()
    path = str(tmp_path / "ledger")
    done = _cli("backup", "--out", str(tmp_path / "b"), "--ledger", path, "--map-size-mb", "64")
    assert done.returncode == 0 and "verified" in done.stdout, done.stderr
    again = _cli("backup", "--out", str(tmp_path / "b"), "--ledger", path, "--map-size-mb", "64")
    assert again.returncode == 2 and "new or empty" in again.stderr and "Traceback" not in again.stderr
    refused = _cli("restore", "--from", str(tmp_path / "b"), "--ledger", path, "--map-size-mb", "64")
    assert refused.returncode == 2 and "--force" in refused.stderr
    restored = _cli("restore", "--from", str(tmp_path / "b"), "--ledger", path, "--force", "--map-size-mb", "64")
    assert restored.returncode == 0, restored.stderr
    compacted = _cli("compact", "--ledger", path, "--map-size-mb", "64")
    assert compacted.returncode == 0 and "compacted" in compacted.stdout, compacted.stderr
    pruned = _cli("prune", "--ledger", path, "--map-size-mb", "64", "--now", NOW)
    assert pruned.returncode == 0 and "pruned 0 events" in pruned.stdout, pruned.stderr
    bad = _cli("prune", "--ledger", path, "--events-keep-days", "0", "--now", NOW)
    assert bad.returncode == 2 and "events_keep_days" in bad.stderr
