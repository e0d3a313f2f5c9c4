"""Retention: acked events and old receipts the server holds are dropped; nothing else is."""

from __future__ import annotations

import datetime as dt

import pytest

from terminal.ledger import LedgerInputError, LedgerNotFoundError, keys, retention

from .conftest import NOW, add_card, assert_ok, sell

START = dt.datetime.fromisoformat(NOW)


def _at(days: float) -> str:
    return (START + dt.timedelta(days=days)).isoformat()


def _sales(ledger, engine, count: int, first_day: int = 0) -> None:
    for i in range(count):
        sell(ledger, engine, f"s{first_day}-{i}", "C1", [10000], now=_at(first_day + i))


def _close_shift(ledger, days: float) -> None:
    ledger.close_shift(f"z-{days}", {}, _at(days))


def test_nothing_unacked_or_recent_is_dropped(ledger, engine):
    add_card(ledger, "C1")
    _sales(ledger, engine, 5)
    _close_shift(ledger, 5)
    result = ledger.prune(_at(400), 35, 30)
    assert result == {"events": 0, "receipts": 0, "ops": 0, "more": False}  # nothing acked yet
    ledger.mark_acked(ledger.meta()["next_seq"] - 1)
    assert ledger.prune(_at(10), 35, 30) == {"events": 0, "receipts": 0, "ops": 0, "more": False}  # too recent
    assert ledger.receipt("s0-0") is not None
    assert_ok(ledger)


def test_acked_old_events_of_closed_shifts_and_receipts_go(ledger, engine):
    add_card(ledger, "C1")
    _sales(ledger, engine, 10)
    ledger.commit_return("r1", "s0-1", [{"line": 0, "qty": 1}], _at(2))
    _close_shift(ledger, 10)
    _sales(ledger, engine, 3, first_day=100)  # the open shift: kept whatever its age
    last = ledger.meta()["next_seq"] - 1
    ledger.mark_acked(last)
    before = ledger.card("C1", _at(125))
    result = ledger.prune(_at(125), 35, 30)
    assert result["events"] > 0 and result["receipts"] == 10 and not result["more"]
    assert ledger.receipt("s0-1") is None and ledger.receipt("s100-0") is not None
    assert ledger.stats()["entries"]["returns"] == 0
    events = ledger.stats()["entries"]["outbox"]
    assert events == last - ledger.meta()["shift_first_seq"] + 1  # the open shift's events stay
    assert ledger.card("C1", _at(125)) == before  # balances and lots are untouched
    with pytest.raises(LedgerNotFoundError):
        ledger.commit_return("r2", "s0-2", [{"line": 0, "qty": 1}], _at(125))
    assert_ok(ledger)
    assert ledger.report_shift()["shift"] == ledger.meta()["shift"]


def test_a_receipt_whose_return_is_unsent_stays(ledger, engine):
    add_card(ledger, "C1")
    _sales(ledger, engine, 2)
    ledger.mark_acked(ledger.meta()["next_seq"] - 1)
    ledger.commit_return("r1", "s0-0", [{"line": 0, "qty": 1}], _at(3))
    _close_shift(ledger, 3)
    result = ledger.prune(_at(100), 35, 30)
    assert result["receipts"] == 1  # s0-1 only
    assert ledger.receipt("s0-0") is not None


def test_passes_are_bounded(ledger, engine, monkeypatch):
    from terminal.ledger import retention

    add_card(ledger, "C1")
    _sales(ledger, engine, 12)
    _close_shift(ledger, 12)
    ledger.mark_acked(ledger.meta()["next_seq"] - 1)
    monkeypatch.setattr(retention, "ITEMS_PER_PRUNE_MAX", 5)
    first = retention.prune(ledger.store, _at(300), 35, 30, items_max=5)
    assert first["events"] == 5 and first["more"]
    total = first["events"]
    while True:
        step = retention.prune(ledger.store, _at(300), 35, 30, items_max=5)
        total += step["events"]
        if not step["more"]:
            break
    assert ledger.stats()["entries"]["receipts"] == 0
    assert ledger.stats()["entries"]["outbox"] == 1  # the shift_close event: the newest stays
    assert_ok(ledger)


@pytest.mark.parametrize("days", [0, -1, 3661, "7", 1.5])
def test_bad_windows_are_refused(ledger, days):
    with pytest.raises(LedgerInputError, match="keep_days"):
        ledger.prune(NOW, days, 30)


def _op_ids(ledger, ids) -> set[str]:
    """Which of `ids` still have an op record."""
    with ledger.store.env.begin() as txn:
        return {i for i in ids if txn.get(keys.text(i), db=ledger.store.dbs["ops"]) is not None}


def test_op_records_of_other_operations_go_with_their_events(ledger, engine):
    """Cash moves, adjustments, holds, expiry (here: a sweep that expired nothing, no event) and
    shift closes leave op records; once their events are pruned (acked, closed shift, outside
    the window) the records go too — not before, and not those of the open shift."""
    add_card(ledger, "C1", balance=500)
    ledger.cash_move("m1", "in", 5_000, "float", _at(0))
    ledger.adjust("a1", "C1", 40, "goodwill", "tech-1", _at(0))
    ledger.hold("h1", "C1", "k1", 20, _at(0), _at(0.01))
    ledger.void_hold("v1", "C1", "k1", _at(0))
    ledger.expire("x1", _at(1))
    _close_shift(ledger, 1)
    ledger.cash_move("m2", "out", 1_000, "bank drop", _at(100))  # the open shift
    old = {"m1", "a1", "h1", "v1", "x1", "z-1"}
    everything = old | {"m2"}
    assert _op_ids(ledger, everything) == everything
    assert ledger.prune(_at(125), 35, 30)["ops"] == 0  # nothing acked: every record stays
    ledger.mark_acked(ledger.meta()["next_seq"] - 1)
    assert ledger.prune(_at(20), 35, 30)["ops"] == 0  # acked, but inside the window
    result = ledger.prune(_at(125), 35, 30)
    assert result["ops"] >= len(old) and _op_ids(ledger, everything) == {"m2"}  # m2: the open shift
    assert ledger.cash_move("m2", "out", 1_000, "bank drop", _at(100))  # still recognised: a replay
    assert ledger.stats()["entries"]["outbox"] == ledger.meta()["next_seq"] - ledger.meta()["shift_first_seq"]
    assert_ok(ledger)


def test_op_records_are_pruned_in_bounded_passes(ledger, engine):
    add_card(ledger, "C1", balance=500)
    for i in range(12):
        ledger.cash_move(f"m{i}", "in", 100, "float", _at(0))
    _close_shift(ledger, 1)
    ledger.cash_move("open", "in", 100, "float", _at(100))
    ledger.mark_acked(ledger.meta()["next_seq"] - 1)
    counts = []
    for _ in range(10):
        step = retention.prune(ledger.store, _at(125), 35, 30, items_max=5)
        counts.append(step["ops"])
        if not step["more"]:
            break
    assert max(counts) <= 5 and sum(counts) >= 12 and not _op_ids(ledger, {f"m{i}" for i in range(12)})
    assert_ok(ledger)
