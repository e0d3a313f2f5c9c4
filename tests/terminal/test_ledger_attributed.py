"""terminal.ledger.staff.attributed: a privileged action and its attendant_action event in ONE
LMDB write transaction (counted by LMDB's own transaction id), the event alone for an action that
writes nothing, nothing for a refused one; and the wrong-PIN counters kept in the ledger."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from terminal import attendants as att
from terminal.attendants import Desk, LoginRefused, TooManyTries
from terminal.ledger import Ledger, LedgerError

from .conftest import NOW, add_card, assert_ok, sell


def txn_id(led: Ledger) -> int:
    return int(led.store.env.info()["last_txnid"])


def events(led: Ledger) -> list[dict[str, Any]]:
    return led.outbox_pending()


def test_the_action_and_its_event_commit_in_one_transaction(ledger: Ledger, engine: Any) -> None:
    sell(ledger, engine, "S-1", None, [1000])
    before, seqs = txn_id(ledger), len(events(ledger))
    with ledger.attributed("att-1", "demo", "manager", "return", {"receipt": "S-1"}, NOW):
        ledger.commit_return("R-1", "S-1", [{"line": 0, "qty_milli": 1000}], NOW)
    assert txn_id(ledger) == before + 1  # one write transaction for both facts
    kinds = [(e["type"], e.get("attendant"), e.get("action")) for e in events(ledger)[seqs:]]
    assert kinds == [("return", None, None), ("attendant_action", "demo", "return")]
    assert_ok(ledger)


def test_only_the_first_write_carries_it_and_an_action_without_writes_gets_it_alone(ledger: Ledger) -> None:
    add_card(ledger, "7700000000026", 500)
    start = len(events(ledger))
    with ledger.attributed("att-2", "anna", "attendant", "line_removed", {"line": 0}, NOW):
        ledger.hold("h-1", "7700000000026", "CO-1", 100, NOW, "2026-11-23T10:10:00+03:00")
        ledger.void_hold("v-1", "7700000000026", "CO-1", NOW)
    actions = [e for e in events(ledger)[start:] if e["type"] == "attendant_action"]
    assert len(actions) == 1
    before = txn_id(ledger)
    with ledger.attributed("att-3", "demo", "manager", "reprint", {"receipt": "S-1"}, NOW):
        pass  # a reprint writes nothing in the ledger
    assert txn_id(ledger) == before + 1 and events(ledger)[-1]["action"] == "reprint"


def test_a_refused_action_records_nothing_and_leaves_nothing_pending(ledger: Ledger, engine: Any) -> None:
    start = len(events(ledger))
    with pytest.raises(LedgerError), \
            ledger.attributed("att-4", "demo", "manager", "return", {"receipt": "none"}, NOW):
        ledger.commit_return("R-2", "no-such-receipt", [{"line": 0, "qty_milli": 1000}], NOW)
    assert events(ledger)[start:] == []
    sell(ledger, engine, "S-2", None, [500])  # the next write carries no attendant
    assert [e["type"] for e in events(ledger)[start:]] == ["sale"]


def test_a_write_of_another_thread_does_not_carry_the_event(ledger: Ledger, engine: Any) -> None:
    start = len(events(ledger))
    seen: list[str] = []

    def other() -> None:
        sell(ledger, engine, "S-other", None, [700])
        seen.append("done")

    with ledger.attributed("att-5", "demo", "manager", "reprint", {"receipt": "S-1"}, NOW):
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
    assert seen == ["done"]
    first, second = events(ledger)[start:]
    assert first["type"] == "sale" and "attendant" not in first
    assert second["type"] == "attendant_action"


def test_wrong_pin_counters_survive_a_reopened_ledger(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "attendants.json"
    att.write_file(path, {"olga": att.new_entry("olga", "attendant", "9876")})
    desk = Desk(path, tries=ledger)
    for _ in range(att.FAILURES_FREE):
        with pytest.raises(LoginRefused):
            desk.check("olga", "0000", 1000.0)
    ledger_path = ledger.store.path
    ledger.close()
    reopened = Ledger(ledger_path)
    try:
        again = Desk(path, tries=reopened)  # the daemon restarted
        with pytest.raises(TooManyTries):
            again.check("olga", "9876", 1001.0)
        assert again.check("olga", "9876", 1000.0 + att.LOCK_S + 1)["name"] == "olga"
        assert reopened.read_pin_tries()["names"] == {}  # a right PIN clears the name's counter
        assert reopened.verify()["ok"]
        reopened.write_pin_tries({"names": {"x": "bad"}, "recent": ["bad", 5]})
        assert Desk(path, tries=reopened).recent_failures == [5.0]  # malformed parts dropped
    finally:
        reopened.close()


def test_the_counters_are_bounded(ledger: Ledger, tmp_path: Path) -> None:
    desk = Desk(tmp_path / "none.json", tries=ledger)
    for i in range(att.FAILURES_KEPT_MAX + 5):
        desk._failed(f"guess{i}", float(i))  # the bound itself is under test
    state = ledger.read_pin_tries()
    assert len(state["names"]) <= att.FAILURES_KEPT_MAX and len(state["recent"]) <= att.GLOBAL_FAILURES_MAX
