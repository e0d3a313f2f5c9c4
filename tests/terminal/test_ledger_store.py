import logging
import signal
import subprocess
import sys

import pytest

from terminal.ledger import Ledger, LedgerError, LedgerFullError
from terminal.ledger.store import USAGE_ALARM_RATIO, Store

from .conftest import NOW, add_card, assert_ok, tenders


def test_opened_with_full_sync_and_no_writemap(ledger):
    flags = ledger.store.env.flags()
    assert flags["sync"] and flags["metasync"]
    assert not flags["writemap"] and not flags["map_async"]
    assert flags["subdir"] and flags["lock"]


def test_open_refuses_a_directory_without_a_ledger(tmp_path):
    with pytest.raises(LedgerError, match="no ledger here"):
        Ledger(tmp_path)


def test_init_is_idempotent_but_keeps_the_terminal(tmp_path):
    Ledger.init(tmp_path / "l", "T01").close()
    Ledger.init(tmp_path / "l", "T01").close()
    with pytest.raises(LedgerError, match="terminal T01"):
        Ledger.init(tmp_path / "l", "T02")


def test_map_size_is_bounded(tmp_path):
    with pytest.raises(LedgerError, match="map size"):
        Store(tmp_path, map_size_bytes=10, create=True)


def _child(path, body):
    script = (
        "import lmdb, time\n"
        f"env = lmdb.open({str(path)!r}, max_dbs=16)\n"
        f"{body}\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def _kill(child):
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()


def test_stale_reader_slots_of_a_killed_process_are_cleared_on_open(tmp_path):
    Ledger.init(tmp_path / "l", "T01").close()
    # A second process keeps the environment open, so LMDB does not reset the reader table
    # itself (the first opener does); the killed reader's slot stays behind until reader_check.
    holder = _child(tmp_path / "l", "pass")
    try:
        _kill(_child(tmp_path / "l", "txn = env.begin()"))
        led = Ledger(tmp_path / "l")
        assert led.store.stale_readers == 1
        led.close()
    finally:
        _kill(holder)


def _fill(led, engine, count, prefix="fill"):
    for i in range(count):
        quote = engine.quote(
            {
                "store": "S01",
                "lines": [{"sku": "A" * 60, "price": 1000 + i, "qty": 1} for _ in range(50)],
            },
            None,
            NOW,
        )
        led.commit_sale(f"{prefix}-{i}", quote, None, tenders(quote), NOW)


def test_full_map_refuses_clearly_and_leaves_a_valid_file(tmp_path, engine):
    led = Ledger.init(tmp_path / "l", "T01", map_size_bytes=256 * 1024)
    add_card(led, "C1", 100)
    with pytest.raises(LedgerFullError, match="raise map_size"):
        _fill(led, engine, 10_000)
    before = led.meta()["next_seq"]
    with pytest.raises(LedgerFullError):
        _fill(led, engine, 1, "more")
    assert led.meta()["next_seq"] == before  # the refused sale left nothing behind
    assert_ok(led)
    led.close()
    # a bigger map makes room again; everything committed is still there
    bigger = Ledger(tmp_path / "l", map_size_bytes=4 * 1024 * 1024)
    _fill(bigger, engine, 1, "more")
    assert bigger.receipt("fill-0") is not None and bigger.receipt("more-0") is not None
    assert_ok(bigger)
    bigger.close()


def test_usage_alarm_is_logged_at_70_percent(tmp_path, engine, caplog):
    led = Ledger.init(tmp_path / "l", "T01", map_size_bytes=512 * 1024)
    with caplog.at_level(logging.WARNING, logger="posterm.ledger"):
        i = 0
        while led.usage() < USAGE_ALARM_RATIO and i < 500:
            _fill_one = engine.quote(
                {"store": "S01", "lines": [{"sku": "B", "price": 5, "qty": 1}] * 40}, None, NOW
            )
            led.commit_sale(f"u-{i}", _fill_one, None, tenders(_fill_one), NOW)
            i += 1
    assert led.usage() >= USAGE_ALARM_RATIO
    alarms = [r for r in caplog.records if getattr(r, "event", "") == "ledger_usage_alarm"]
    assert len(alarms) == 1 and alarms[0].usage_percent >= 70
    led.close()
