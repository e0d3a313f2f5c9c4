"""A real ledger's outbox, ingested by the central store (SQLite and PostgreSQL), leaves the
server with the same lots as the terminal: accruals with their dates, redemptions, adjustments,
returns (restored, annulled, clawed back into debt), expiry sweeps and referral credits."""

from __future__ import annotations

from typing import Any

from central.lots import DEBT_KEY, NEVER_MS
from central.store import Store
from protocol import wire
from terminal.ledger import Ledger, moments
from terminal.ledger.movements import LOT_ENTRIES_MAX, Move, entries
from tests.central.conftest import dsn, store  # noqa: F401 — the sqlite/pg parametrized fixtures

from .conftest import NOW, add_card, assert_ok, sell

LATER = "2027-02-01T10:00:00+03:00"
MUCH_LATER = "2028-01-01T10:00:00+03:00"
JAN = "2027-01-01T00:00:00+03:00"


class Link:
    """The terminal's sync without the network: pending events → one batch → store → ack."""

    def __init__(self, ledger: Ledger, store: Store) -> None:  # noqa: F811
        self.ledger, self.store, self.prev = ledger, store, b""

    def ship(self) -> list[dict[str, Any]]:
        events = self.ledger.outbox_pending()
        if events:
            body = wire.encode_batch(self.ledger.terminal_id, events[0]["epoch"], self.prev, events)
            mac = bytes.fromhex(wire.sign(b"k" * 32, body))
            self.store.ingest(wire.decode_batch(body), mac)
            self.prev = mac
            self.ledger.mark_acked(events[-1]["seq"])
        return events


def ms(iso: str | None, default: int) -> int:
    return default if iso is None else moments.moment(iso, "lot date").ms


def terminal_lots(ledger: Ledger, number: str) -> dict[tuple[int, int], int]:
    """The ledger's lots keyed as the server keys them: (expires ms, available-from ms)."""
    out: dict[tuple[int, int], int] = {}
    for lot in ledger.card(number, NOW)["lots"]:
        key = DEBT_KEY if lot["debt"] else (ms(lot["expires_at"], NEVER_MS), ms(lot["available_from"], 0))
        out[key] = out.get(key, 0) + lot["points"]
    return out


def server_lots(store: Store, number: str) -> dict[tuple[int, int], int]:  # noqa: F811
    return {
        DEBT_KEY if lot["debt"] else (ms(lot["expires_at"], NEVER_MS), ms(lot["available_from"], 0)): lot["points"]
        for lot in store.card_lots(number)
    }


def assert_mirrored(ledger: Ledger, store: Store, *numbers: str) -> None:  # noqa: F811
    for number in numbers:
        found = store.card(number)
        assert found is not None and found[0].balance == ledger.card(number, NOW)["balance"], number
        assert server_lots(store, number) == terminal_lots(ledger, number), number


def test_the_server_mirrors_a_terminals_lots(ledger: Ledger, engine: Any, store: Store) -> None:  # noqa: F811
    link = Link(ledger, store)
    add_card(ledger, "C1", referrers=["R1", "R-ELSEWHERE"])
    add_card(ledger, "R1")
    sell(ledger, engine, "s1", "C1", [100_000], now=NOW)
    sell(ledger, engine, "s2", "C1", [50_000], now="2026-12-01T10:00:00+03:00")
    ledger.adjust("a1", "C1", 300, "goodwill", "tech", NOW, JAN)
    sales = [e for e in link.ship() if e["type"] == "sale"]
    assert [e["points"] for e in sales[1]["lots"]["C1"]] == [sales[1]["accrued"]]
    assert_mirrored(ledger, store, "C1", "R1")
    # A referrer T01 does not hold is credited centrally, with the dates the sale gave it.
    elsewhere = {
        (ms(ref["expires_at"], NEVER_MS), ms(ref["available_from"], 0)): ref["points"]
        for sale in sales
        for ref in sale["referral"]
        if ref["card"] == "R-ELSEWHERE"
    }
    assert len(elsewhere) == 2 and all(elsewhere.values())
    assert server_lots(store, "R-ELSEWHERE") == elsewhere

    quote, _ = sell(ledger, engine, "s3", "C1", [60_000], redeem=310, qty=2, now=NOW)
    assert quote["redeem"]["points"] == 310  # the JAN lot, then the first sale's lot
    ledger.adjust("a2", "C1", -20, "correction", "tech", NOW)
    link.ship()
    assert_mirrored(ledger, store, "C1")

    ledger.commit_return("r1", "s3", [{"line": 0, "qty": 1}], NOW)  # restores 250, claws back
    link.ship()
    assert_mirrored(ledger, store, "C1")
    ledger.expire("e1", LATER)  # the JAN lot expires
    ledger.commit_return("r2", "s3", [{"line": 0, "qty": 1}], LATER)  # its part is annulled
    events = link.ship()
    assert [e["type"] for e in events] == ["expiry", "return"] and events[1]["annulled"] > 0
    assert_mirrored(ledger, store, "C1")

    ledger.adjust("a3", "C1", -ledger.card("C1", LATER)["balance"], "spent", "tech", LATER)
    ledger.commit_return("r3", "s1", [{"line": 0, "qty": 1}], LATER)  # nothing left: a debt
    link.ship()
    assert ledger.card("C1", LATER)["balance"] < 0
    assert_mirrored(ledger, store, "C1")
    sell(ledger, engine, "s4", "C1", [400_000], now=LATER)  # pays the debt first
    ledger.expire("e2", MUCH_LATER)
    link.ship()
    assert_mirrored(ledger, store, "C1", "R1")
    assert_ok(ledger)


def test_a_balance_correction_from_the_server_is_not_reported_back(ledger: Ledger, store: Store) -> None:  # noqa: F811
    add_card(ledger, "C1", 500)
    add_card(ledger, "C1", 200, version=2)  # the feed lowered it: the terminal's lots moved
    events = Link(ledger, store).ship()
    assert all("lots" not in e for e in events)
    assert_ok(ledger)


def test_more_distinct_lots_than_an_event_may_name_are_merged() -> None:
    dates = [f"2027-01-{day:02}T00:00:00+00:00" for day in range(1, 29)]
    moves = [Move(-1, None, dates[i % 28][:8] + f"{i % 28 + 1:02}T{i // 28:02}:00:00+00:00") for i in range(600)]
    moves += [Move(2, None, dates[0]), Move(3, dates[5], dates[9])]
    out = entries("C1", moves, -600 + 5)
    assert len(out) == LOT_ENTRIES_MAX and sum(e["points"] for e in out) == -595
    # Past the limit: one dateless debit and one credit, never living longer than its parts.
    assert out[-2:] == [
        {"points": 5, "available_from": dates[5], "expires_at": dates[0]},
        {"points": -(600 - (LOT_ENTRIES_MAX - 2)), "available_from": None, "expires_at": None},
    ]


def test_a_terminals_expiry_after_the_servers_sweep_takes_nothing_twice(
    ledger: Ledger, engine: Any, store: Store  # noqa: F811
) -> None:
    """The server swept a lot; the terminal, which had not pulled the feed yet, expires it too
    and sends an `expiry`: the server takes only what is still expired there (nothing)."""
    link = Link(ledger, store)
    add_card(ledger, "C1")
    sell(ledger, engine, "s1", "C1", [100_000], now=NOW)
    sell(ledger, engine, "s2", "C1", [50_000], now=MUCH_LATER)  # a lot that outlives the sweep
    link.ship()
    balance = ledger.card("C1", NOW)["balance"]
    first = next(lot for lot in ledger.card("C1", NOW)["lots"] if lot["expires_at"])
    sweep_ms = ms(first["expires_at"], 0) + 1
    assert store.expire(sweep_ms) == {"cards": 1, "points": first["points"]}
    swept = ledger.expire("e1", moments.iso_from_ms(sweep_ms))
    assert swept["points"] == first["points"]
    link.ship()
    found = store.card("C1")
    assert found is not None and found[0].balance == balance - first["points"]
    assert store.shortfalls() == [] and store.verify()["ok"]
    assert store.expiries("C1")[0]["points"] == first["points"]
    assert_mirrored(ledger, store, "C1")
