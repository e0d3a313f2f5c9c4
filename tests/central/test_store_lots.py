"""Lots in the central database, on SQLite and on PostgreSQL: mirrored from two terminals'
events, consumed soonest-expiring first, debt on double spend, returns, expiry, older events,
published balances and adjustments, the migration of a database from before lots, the CLI."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from central.balances import CardState
from central.cli import main
from central.store import Store, StoreError
from protocol import wire
from tests.central.events import complete

JAN = "2027-01-01T00:00:00+00:00"
JUN = "2027-06-01T00:00:00+00:00"
DEC = "2027-12-01T00:00:00+00:00"
AT_MS = 1_795_000_000_000  # 2026-11: every date above is ahead
MAR_MS = 1_803_859_200_000  # 2027-03-01: JAN has expired
MACS = [bytes([i]) * 32 for i in range(1, 40)]


class Terminal:
    """Sends hand-made events of one terminal as chained batches straight to the store."""

    def __init__(self, store: Store, name: str) -> None:
        self.store, self.name, self.seq, self.prev = store, name, 0, b""

    def send(self, *events: dict[str, Any]) -> None:
        numbered = []
        for body in events:
            self.seq += 1
            numbered.append(complete({"id": os.urandom(16).hex(), "epoch": 1, "seq": self.seq, "at_ms": AT_MS, **body}))
        batch = wire.decode_batch(wire.encode_batch(self.name, 1, self.prev, numbered))
        mac = MACS[self.seq % len(MACS)]
        try:
            self.store.ingest(batch, mac)
        except Exception:
            self.seq -= len(events)  # refused: nothing stored, the terminal would resend
            raise
        self.prev = mac


def entry(points: int, expires_at: str | None = None, available_from: str | None = None) -> dict[str, Any]:
    return {"points": points, "available_from": available_from, "expires_at": expires_at}


def sale(card: str, accrued: int = 0, redeemed: list[dict[str, Any]] | None = None, **dates: Any) -> dict[str, Any]:
    """A sale event as a terminal writes it: redemption entries first, then the accrual lot."""
    moves = list(redeemed or [])
    if accrued:
        moves.append(entry(accrued, dates.get("expires_at"), dates.get("available_from")))
    delta = sum(m["points"] for m in moves)
    deltas = {card: delta} if delta else {}
    return {"type": "sale", "card": card, "total": 1000, "deltas": deltas, "lots": {card: moves}}


def lots_of(store: Store, number: str) -> list[tuple[int, str | None, str | None, bool]]:
    return [(lot["points"], lot["available_from"], lot["expires_at"], lot["debt"]) for lot in store.card_lots(number)]


def balance(store: Store, number: str) -> int:
    found = store.card(number)
    assert found is not None
    return found[0].balance


def assert_balance_is_lots(store: Store) -> None:
    for card in store.all_cards():
        assert card.balance == sum(lot["points"] for lot in store.card_lots(card.number)), card.number


def test_sales_of_two_terminals_are_mirrored_as_dated_lots(store: Store) -> None:
    t1, t2 = Terminal(store, "T01"), Terminal(store, "T02")
    t1.send(sale("C1", 40, expires_at=DEC, available_from=JAN))
    t2.send(sale("C1", 25, expires_at=JUN), sale("C2", 5))
    assert lots_of(store, "C1") == [(25, None, JUN, False), (40, JAN, DEC, False)]
    assert lots_of(store, "C2") == [(5, None, None, False)]
    dec = store.card_lots("C1")[1]
    assert (dec["source"], dec["terminal"], dec["epoch"], dec["seq"]) == ("sale", "T01", 1, 1)
    assert balance(store, "C1") == 65
    assert_balance_is_lots(store)


def test_an_accrual_joins_a_stored_lot_of_the_same_dates(store: Store) -> None:
    t1, t2 = Terminal(store, "T01"), Terminal(store, "T02")
    t1.send(sale("C1", 5, expires_at=DEC, available_from=JAN))
    t2.send(sale("C1", 7, expires_at=DEC, available_from=JAN))  # same dates: the same lot
    assert lots_of(store, "C1") == [(12, JAN, DEC, False)]
    assert store.card_lots("C1")[0]["terminal"] == "T01"  # it keeps the event that opened it
    assert_balance_is_lots(store)
    assert stored_rows(store, "C1") == 2  # appended as they came, without reading the card
    t1.send(sale("C1", redeemed=[entry(-2, DEC, JAN)]))  # a debit reads the card and rewrites it
    assert lots_of(store, "C1") == [(10, JAN, DEC, False)] and stored_rows(store, "C1") == 1
    assert store.card_lots("C1")[0]["terminal"] == "T01"
    assert_balance_is_lots(store)


def stored_rows(store: Store, number: str) -> int:
    return int(store._query("SELECT COUNT(*) FROM lots WHERE number = ?", (number,))[0][0])


def test_redemption_takes_soonest_expiring_when_the_terminal_names_no_lot(store: Store) -> None:
    t1, t2 = Terminal(store, "T01"), Terminal(store, "T02")
    t1.send(sale("C1", 100, expires_at=DEC), sale("C1", 100, expires_at=JUN))
    # T02 holds C1's points as a correction (no dates): it names none, the server picks JUN.
    t2.send(sale("C1", redeemed=[entry(-130)]))
    assert lots_of(store, "C1") == [(70, None, DEC, False)]
    # T01 names its DEC lot.
    t1.send(sale("C1", redeemed=[entry(-20, DEC)], accrued=3, expires_at=JUN))
    assert lots_of(store, "C1") == [(3, None, JUN, False), (50, None, DEC, False)]
    assert_balance_is_lots(store)


def test_double_spend_on_two_terminals_leaves_a_debt_lot(store: Store) -> None:
    store.put_cards([CardState("C9", balance=100, type="standard")])
    assert lots_of(store, "C9") == [(100, None, None, False)]
    t1, t2 = Terminal(store, "T01"), Terminal(store, "T02")
    t1.send(sale("C9", redeemed=[entry(-80)], accrued=4, expires_at=DEC))
    t2.send(sale("C9", redeemed=[entry(-80)], accrued=4, expires_at=DEC))
    # 100 - 80 + 4 = 24; then -80 takes 24 (T01's 4 expiring, then the dateless 20), 56 become
    # debt and T02's +4 pays 4 of it: the same 52 the shortfall booking counts from the deltas.
    assert balance(store, "C9") == -52
    assert lots_of(store, "C9") == [(-52, None, None, True)]
    assert sum(s["points"] for s in store.shortfalls()) == 52
    t1.send(sale("C9", 60, expires_at=DEC))
    assert lots_of(store, "C9") == [(8, None, DEC, False)]
    assert_balance_is_lots(store)


def test_a_return_restores_the_lot_and_claws_back_into_debt(store: Store) -> None:
    t1 = Terminal(store, "T01")
    t1.send(sale("C1", 60, expires_at=JUN))
    t1.send(sale("C1", redeemed=[entry(-50, JUN)], accrued=30, expires_at=DEC))
    assert lots_of(store, "C1") == [(10, None, JUN, False), (30, None, DEC, False)]
    ret = {"type": "return", "card": "C1", "deltas": {"C1": 20}, "lots": {"C1": [entry(50, JUN), entry(-30, DEC)]}}
    t1.send(ret)
    assert lots_of(store, "C1") == [(60, None, JUN, False)]
    # A clawback the card cannot cover (T01 booked a debt: a dateless debit) leaves a debt lot.
    claw = {"type": "return", "card": "C1", "deltas": {"C1": -70}, "lots": {"C1": [entry(-60, JUN), entry(-10)]}}
    t1.send(claw)
    assert lots_of(store, "C1") == [(-10, None, None, True)]
    assert_balance_is_lots(store)


def test_expiry_events_take_the_expired_lot(store: Store) -> None:
    t1, t2 = Terminal(store, "T01"), Terminal(store, "T02")
    t1.send(sale("C1", 10, expires_at=JAN))
    t2.send(sale("C1", 10, expires_at=JUN), sale("C1", 10))
    t1.send({"type": "expiry", "card": "C1", "at_ms": MAR_MS, "deltas": {"C1": -10}, "lots": {"C1": [entry(-10, JAN)]}})
    assert lots_of(store, "C1") == [(10, None, JUN, False), (10, None, None, False)]
    assert_balance_is_lots(store)


def test_old_events_without_lots_become_a_dateless_lot(store: Store) -> None:
    t1 = Terminal(store, "T01")
    t1.send({"type": "sale", "card": "C1", "deltas": {"C1": 30}}, {"type": "adjustment", "deltas": {"C1": -5}})
    t1.send(sale("C1", 7, expires_at=DEC))  # a terminal upgraded meanwhile
    assert lots_of(store, "C1") == [(7, None, DEC, False), (25, None, None, False)]
    assert_balance_is_lots(store)


def test_a_malformed_lots_field_stores_nothing(store: Store) -> None:
    t1 = Terminal(store, "T01")
    bad = {"type": "sale", "deltas": {"C1": 5}, "lots": {"C1": [entry(4, DEC)]}}
    with pytest.raises(wire.ProtocolError, match="add up"):
        t1.send(bad)
    assert list(store.events()) == [] and store.card("C1") is None and store.card_lots("C1") == []


def test_published_balances_and_adjustments_move_the_lots(store: Store) -> None:
    store.put_cards([CardState("C1", balance=100), CardState("C2", balance=-5)])
    Terminal(store, "T01").send(sale("C1", 10, expires_at=JUN))
    store.put_cards([CardState("C1", balance=150)])  # +40: the dateless lot grows
    assert lots_of(store, "C1") == [(10, None, JUN, False), (140, None, None, False)]
    store.put_cards([CardState("C1", balance=20)])  # -130: soonest-expiring first
    assert lots_of(store, "C1") == [(20, None, None, False)]
    assert store.adjust_card("C1", -25).balance == -5
    assert lots_of(store, "C1") == [(-5, None, None, True)]
    store.adjust_card("C2", 8)  # pays the debt first
    assert lots_of(store, "C2") == [(3, None, None, False)]
    assert_balance_is_lots(store)


def test_migration_gives_cards_from_before_lots_an_opening_lot(store: Store) -> None:
    store.put_cards([CardState("C1", balance=70), CardState("C2", balance=-4), CardState("C3", balance=0)])
    Terminal(store, "T01").send(sale("C4", 6, expires_at=DEC))
    with store.transaction() as tx:  # as a database written by an older server would be
        tx._rows("DELETE FROM lots WHERE number <> ? RETURNING number", ("C4",))
    store.migrate()
    store.migrate()  # idempotent
    assert lots_of(store, "C1") == [(70, None, None, False)]
    assert lots_of(store, "C2") == [(-4, None, None, True)]
    assert lots_of(store, "C3") == [] and lots_of(store, "C4") == [(6, None, DEC, False)]
    assert_balance_is_lots(store)


def test_lots_out_of_step_with_the_balance_are_found(
    store: Store, dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    t1 = Terminal(store, "T01")
    t1.send(sale("C1", 10, expires_at=DEC))
    assert store.verify() == {"ok": True, "cards": 1, "faults": [], "fault_count": 0}
    with store.transaction() as tx:  # a lot lost behind the server's back
        tx._rows("DELETE FROM lots WHERE number = ? RETURNING number", ("C1",))
    assert store.verify()["faults"] == ["card C1: balance 10 differs from the sum of its lots 0"]
    # An accrual reads no lots (ingest checks it by induction): stored, and still found by verify.
    t1.send(sale("C1", 1, expires_at=DEC))
    assert store.verify()["faults"] == ["card C1: balance 11 differs from the sum of its lots 1"]
    assert main(["--db", dsn, "verify"]) == 1
    assert json.loads(capsys.readouterr().out)["fault_count"] == 1
    # A debit reads them: the check after the read refuses the batch, nothing stored.
    with pytest.raises(StoreError, match="card C1: balance 11 differs from the sum of its lots 1"):
        t1.send(sale("C1", redeemed=[entry(-1)]))
    assert [s for _, _, s, _, _ in store.events()] == [1, 2]


def test_card_listing_shows_the_points_expiring_soonest(store: Store) -> None:
    t1 = Terminal(store, "T01")
    t1.send(sale("C1", 10, expires_at=DEC), sale("C1", 4, expires_at=JUN))
    t1.send(sale("C1", 3, expires_at=JUN, available_from=JAN))
    store.put_cards([CardState("C2", balance=9), CardState("C3", balance=-2)])
    listing = {row["number"]: row for row in store.card_listing()}
    assert listing["C1"]["expiring_soonest"] == {"points": 7, "expires_at": JUN}
    assert listing["C1"]["balance"] == 17
    assert listing["C2"]["expiring_soonest"] is None and listing["C3"]["expiring_soonest"] is None
    assert [row["number"] for row in store.card_listing(limit=2)] == ["C1", "C2"]


def test_cli_shows_a_card_with_its_lots_and_lists_cards(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", dsn, "card", "adjust", "C1", "12"]) == 0
    capsys.readouterr()
    assert main(["--db", dsn, "card", "show", "C1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["balance"] == 12
    assert [(lot["points"], lot["expires_at"], lot["source"]) for lot in shown["lots"]] == [(12, None, "adjust")]
    assert main(["--db", dsn, "card", "list"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["number"], r["balance"], r["expiring_soonest"]) for r in rows] == [("C1", 12, None)]
    assert main(["--db", dsn, "card", "show"]) == 2
    assert "give a card number" in capsys.readouterr().err


def test_cli_refuses_bad_listing_limits_and_an_empty_adjustment(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("-5", "0", "x"):
        with pytest.raises(SystemExit) as stopped:
            main(["--db", dsn, "card", "list", f"--limit={bad}"])
        assert stopped.value.code == 2 and "--limit" in capsys.readouterr().err
    assert main(["--db", dsn, "card", "adjust", "C1"]) == 2
    assert "give the points" in capsys.readouterr().err
    assert main(["--db", dsn, "card", "show", "C1"]) == 2  # nothing was created
