"""Ingest semantics on both backends: exactly once, gaps, chain, conflicts, balances, feed."""

from __future__ import annotations

import os
from typing import Any

import pytest

from central.balances import CardState
from central.feed import build_updates
from central.ingest import ChainError, ConflictError, GapError
from central.store import Store
from protocol import wire
from tests.central.events import complete


def event(seq: int, deltas: dict[str, int] | None = None, epoch: int = 1, **extra: Any) -> dict[str, Any]:
    return complete(
        {
            "id": os.urandom(16).hex(),
            "epoch": epoch,
            "seq": seq,
            "type": "adjustment",
            "deltas": deltas or {},
            **extra,
        }
    )


def batch(events: list[dict[str, Any]], prev_mac: bytes = b"", terminal: str = "T01") -> wire.Batch:
    return wire.decode_batch(wire.encode_batch(terminal, events[0]["epoch"], prev_mac, events))


MAC1, MAC2, MAC3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def test_append_then_duplicate_is_idempotent(store: Store) -> None:
    evs = [event(s, {"C1": -5}) for s in range(1, 4)]
    first = store.ingest(batch(evs), MAC1)
    assert (first.acked_through, first.stored, first.duplicates) == (3, 3, 0)
    again = store.ingest(batch(evs), MAC1)
    assert (again.acked_through, again.stored, again.duplicates) == (3, 0, 3)
    assert again.prev_mac == MAC1
    assert len(list(store.events())) == 3
    found = store.card("C1")
    assert found is not None and found[0].balance == -15


def test_overlap_stores_only_the_new_part(store: Store) -> None:
    evs = [event(s, {"C1": 1}) for s in range(1, 6)]
    store.ingest(batch(evs[:2]), MAC1)
    result = store.ingest(batch(evs, prev_mac=b""), MAC2)
    assert (result.stored, result.duplicates, result.acked_through) == (3, 2, 5)
    assert [s for _, _, s, _, _ in store.events()] == [1, 2, 3, 4, 5]
    assert store.stream_state("T01", 1) == (5, MAC2)


def test_gap_is_refused_with_the_expected_seq(store: Store) -> None:
    store.ingest(batch([event(1)]), MAC1)
    with pytest.raises(GapError):
        store.ingest(batch([event(3)], prev_mac=MAC1), MAC2)
    assert store.stream_state("T01", 1) == (1, MAC1)
    assert len(list(store.events())) == 1


def test_chain_must_continue(store: Store) -> None:
    store.ingest(batch([event(1)]), MAC1)
    with pytest.raises(ChainError):
        store.ingest(batch([event(2)], prev_mac=MAC3), MAC2)
    assert store.ingest(batch([event(2)], prev_mac=MAC1), MAC2).stored == 1


def test_same_seq_other_event_is_a_conflict_and_stores_nothing(store: Store) -> None:
    store.ingest(batch([event(1, {"C1": 5})]), MAC1)
    with pytest.raises(ConflictError):
        store.ingest(batch([event(1, {"C1": 7}), event(2, {"C1": 7})]), MAC2)
    assert len(list(store.events())) == 1
    found = store.card("C1")
    assert found is not None and found[0].balance == 5


def test_event_id_unique_across_terminals(store: Store) -> None:
    shared = event(1)
    store.ingest(batch([shared]), MAC1)
    with pytest.raises(ConflictError):
        store.ingest(batch([shared], terminal="T02"), MAC2)
    assert [t for t, *_ in store.events()] == ["T01"]


def test_epochs_are_separate_streams(store: Store) -> None:
    store.ingest(batch([event(1), event(2)]), MAC1)
    assert store.ingest(batch([event(1, epoch=2)]), MAC2).stored == 1
    assert store.latest_acked("T01") == {"epoch": 2, "seq": 1}


def test_double_spend_books_a_shortfall_and_publishes_the_correction(store: Store) -> None:
    store.put_cards([CardState("C9", balance=100, type="standard")])
    store.ingest(batch([event(1, {"C9": -80})], terminal="T01"), MAC1)
    store.ingest(batch([event(1, {"C9": -80})], terminal="T02"), MAC2)
    card, version = store.card("C9") or (None, 0)
    assert card is not None and card.balance == -60 and card.shortfall == 60
    assert [(s["terminal"], s["card"], s["points"]) for s in store.shortfalls()] == [("T02", "C9", 60)]
    page = build_updates(store, "T01", 0)
    entry = next(c for c in page["cards"] if c["number"] == "C9")
    assert entry["balance"] == -60 and entry["version"] == version
    assert page["acked"] == {"epoch": 1, "seq": 1}


def test_sales_and_returns_move_cumulative(store: Store) -> None:
    store.put_cards([CardState("C1", cumulative=1000)])
    store.ingest(
        batch(
            [
                event(1, {"C1": 10}, type="sale", card="C1", total=5000, card_type="gold"),
                event(2, {"C1": -2}, type="return", card="C1", cumulative_decrease=1000),
            ]
        ),
        MAC1,
    )
    card, _ = store.card("C1") or (None, 0)
    assert card is not None and (card.cumulative, card.balance, card.type) == (5000, 8, "gold")


def test_feed_is_compacted_and_ordered(store: Store) -> None:
    c1 = store.publish("product", [("A", {"sku": "A", "price": 1}), ("B", {"sku": "B", "price": 5})])
    store.put_cards([CardState("C1", balance=5)])
    c3 = store.publish("product", [("A", {"sku": "A", "price": 2})])
    page = build_updates(store, "T01", 0)
    assert [p["price"] for p in page["catalog"]] == [5, 2] and page["cursor"] == c3 > c1
    assert [c["number"] for c in page["cards"]] == ["C1"]
    assert build_updates(store, "T01", page["cursor"])["catalog"] == []
    small = build_updates(store, "T01", 0, limit=1)
    assert small["more"] and len(small["cards"]) + len(small["catalog"]) == 1


def test_upgrades_and_referrals_from_sales(store: Store) -> None:
    store.put_cards([CardState("C1", type="standard"), CardState("R1", balance=10), CardState("R2", balance=10)])
    referral = [
        {"card": "R1", "level": 1, "points": 30, "cumulative": 0, "local": True},
        {"card": "R2", "level": 2, "points": 10, "cumulative": 500, "local": False},
    ]
    store.ingest(
        batch(
            [
                event(
                    1,
                    {"C1": 5, "R1": 30},
                    type="sale",
                    card="C1",
                    total=100,
                    card_type="standard",
                    card_type_after="silver",
                    referral=referral,
                )
            ]
        ),
        MAC1,
    )
    cards = {c.number: c for c in store.all_cards()}
    assert cards["C1"].type == "silver" and cards["C1"].cumulative == 100
    assert (cards["R1"].balance, cards["R2"].balance, cards["R2"].cumulative) == (40, 20, 500)
