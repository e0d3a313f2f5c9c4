"""Levels at central (spec §11), on SQLite and PostgreSQL, with real batches: a sale's
`card_type_after` becomes the card's type; a return lowers a level card to the level of
central's lowered cumulative (every terminal's sales in it) by the published program's levels;
`level_downgrade = false` keeps it; with no published program the returning terminal's
`card_type_after` is taken. The new type goes out in the feed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from central.balances import CardState
from central.cli import main
from central.feed import build_updates
from central.store import Store
from tests.central.test_store_lots import Terminal

LEVELS = """
[program]
point_value = 100
level_downgrade = {downgrade}
[[level]]
type = "bronze"
cumulative_min = 0
[[level]]
type = "silver"
cumulative_min = 3000000
[[level]]
type = "gold"
cumulative_min = 10000000
"""


def publish(dsn: str, tmp: Path, downgrade: bool = True) -> None:
    path = tmp / "levels.toml"
    path.write_text(LEVELS.format(downgrade="true" if downgrade else "false"))
    assert main(["--db", dsn, "publish", "rules", str(path)]) == 0


def sold(card: str, total: int, before: str, after: str | None) -> dict[str, Any]:
    return {"type": "sale", "card": card, "total": total, "card_type": before, "card_type_after": after}


def returned(card: str, decrease: int, after: str | None) -> dict[str, Any]:
    return {"type": "return", "card": card, "cumulative_decrease": decrease, "card_type": "gold",
            "card_type_after": after}


def card(store: Store, number: str) -> CardState:
    found = store.card(number)
    assert found is not None
    return found[0]


def test_a_sale_raises_and_a_return_lowers_the_level(dsn: str, store: Store, tmp_path: Path) -> None:
    publish(dsn, tmp_path)
    store.put_cards([CardState("C1", type="bronze")])
    t1 = Terminal(store, "T01")
    t1.send(sold("C1", 11_000_000, "bronze", "gold"))
    assert (card(store, "C1").type, card(store, "C1").cumulative) == ("gold", 11_000_000)
    t1.send(returned("C1", 5_000_000, "silver"))
    assert (card(store, "C1").type, card(store, "C1").cumulative) == ("silver", 6_000_000)
    [entry] = [c for c in build_updates(store, "T02", 0)["cards"] if c["number"] == "C1"]
    assert (entry["type"], entry["cumulative"]) == ("silver", 6_000_000)


def test_central_lowers_by_its_own_cumulative(dsn: str, store: Store, tmp_path: Path) -> None:
    publish(dsn, tmp_path)
    store.put_cards([CardState("C1", type="bronze")])
    t1, t2 = Terminal(store, "T01"), Terminal(store, "T02")
    t1.send(sold("C1", 11_000_000, "bronze", "gold"))
    t2.send(sold("C1", 4_000_000, "gold", None))  # T02's sale: T01 has not seen it
    # T01's ledger fell to 6 000 000 (silver); central still holds 10 000 000: gold stays.
    t1.send(returned("C1", 5_000_000, "silver"))
    assert (card(store, "C1").type, card(store, "C1").cumulative) == ("gold", 10_000_000)
    # A terminal that did not lower (its cumulative was higher) is lowered here all the same.
    t2.send(returned("C1", 8_000_000, None))
    assert (card(store, "C1").type, card(store, "C1").cumulative) == ("bronze", 2_000_000)


def test_level_downgrade_false_keeps_the_level(dsn: str, store: Store, tmp_path: Path) -> None:
    publish(dsn, tmp_path, downgrade=False)
    store.put_cards([CardState("C1", type="bronze")])
    t1 = Terminal(store, "T01")
    t1.send(sold("C1", 11_000_000, "bronze", "gold"), returned("C1", 11_000_000, "bronze"))
    assert (card(store, "C1").type, card(store, "C1").cumulative) == ("gold", 0)


def test_without_a_published_program_the_terminals_level_is_taken(store: Store) -> None:
    store.put_cards([CardState("C1", type="bronze")])
    t1 = Terminal(store, "T01")
    t1.send(sold("C1", 11_000_000, "bronze", "gold"))
    t1.send(returned("C1", 1_000_000, None))
    assert card(store, "C1").type == "gold"  # the terminal kept it: so does central
    t1.send(returned("C1", 5_000_000, "silver"))
    assert (card(store, "C1").type, card(store, "C1").cumulative) == ("silver", 5_000_000)
