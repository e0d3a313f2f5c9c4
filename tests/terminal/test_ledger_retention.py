"""Retention: acked events and old receipts the server holds are dropped; nothing else is."""

from __future__ import annotations

import datetime as dt

import pytest

from terminal.ledger import LedgerInputError, LedgerNotFoundError

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
    assert result == {"events": 0, "receipts": 0, "more": False}  # nothing acked yet
    ledger.mark_acked(ledger.meta()["next_seq"] - 1)
    assert ledger.prune(_at(10), 35, 30) == {"events": 0, "receipts": 0, "more": False}  # too recent
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
