"""Levels in the ledger (spec §11): a sale's `card_type_after` raises the card's level at commit;
a return that lowers its cumulative lowers it to the level of the lowered cumulative
(`level_downgrade`, the running program's `type_after_return`), named in the return's result,
record and outbox event; with `level_downgrade = false`, for a card that is no level card, or
without a program the type stays."""

from __future__ import annotations

from typing import Any

import pytest

import core
from protocol import schemas
from tests.central.helpers import outbox

from .conftest import NOW, add_card, assert_ok, sell

LEVELS = [{"type": "bronze", "cumulative_min": 0}, {"type": "silver", "cumulative_min": 3_000_000},
          {"type": "gold", "cumulative_min": 10_000_000}]


def program(downgrade: bool = True) -> core.Program:
    return core.compile_rules({
        "program": {"point_value": 100, "level_downgrade": downgrade},
        "level": LEVELS,
        "rule": [{"id": "earn", "kind": "accrual", "percent": 1}],
    })


def gold_sale(ledger: Any, prog: core.Program, card_type: str = "bronze") -> dict[str, Any]:
    """A bronze card buys 6 000 000 + 5 000 000: cumulative 11 000 000, the card becomes gold."""
    add_card(ledger, "C1", 0, card_type)
    quote, _ = sell(ledger, core.Engine(prog), "s1", "C1", [6_000_000, 5_000_000])
    return quote


def returned(ledger: Any, return_id: str, line: int, prog: core.Program | None) -> dict[str, Any]:
    level_after = None if prog is None else prog.type_after_return
    return dict(ledger.commit_return(return_id, "s1", [{"line": line, "qty": 1}], NOW, None, level_after))


def test_a_sale_raises_the_level_and_returns_lower_it_step_by_step(ledger: Any) -> None:
    prog = program()
    quote = gold_sale(ledger, prog)
    assert quote["card_type_after"] == "gold" and quote["level"] == {"type": "gold", "next": None, "to_next": None}
    assert ledger.card("C1", NOW)["type"] == "gold"
    first = returned(ledger, "r1", 1, prog)  # cumulative 6 000 000: silver
    assert first["card_type_after"] == "silver"
    card = ledger.card("C1", NOW)
    assert (card["type"], card["cumulative"]) == ("silver", 6_000_000)
    second = returned(ledger, "r2", 0, prog)  # 0: bronze
    assert second["card_type_after"] == "bronze" and ledger.card("C1", NOW)["type"] == "bronze"
    events = [e for e in outbox(ledger) if e["type"] == "return"]
    assert [e["card_type_after"] for e in events] == ["silver", "bronze"]
    for event in events:
        schemas.check_event(event)
    assert ledger.receipt("s1") is not None
    assert_ok(ledger)


def test_a_retried_return_changes_the_level_once(ledger: Any) -> None:
    prog = program()
    gold_sale(ledger, prog)
    first = returned(ledger, "r1", 1, prog)
    assert returned(ledger, "r1", 1, prog) == first
    assert ledger.card("C1", NOW)["type"] == "silver"
    assert len([e for e in outbox(ledger) if e["type"] == "return"]) == 1


def test_a_return_that_stays_above_the_threshold_keeps_the_level(ledger: Any) -> None:
    prog = program()
    add_card(ledger, "C1", 0, "bronze")
    sell(ledger, core.Engine(prog), "s1", "C1", [12_000_000, 1_000_000])
    assert returned(ledger, "r1", 1, prog)["card_type_after"] is None  # 12 000 000: still gold
    assert ledger.card("C1", NOW)["type"] == "gold"


@pytest.mark.parametrize(("downgrade", "card_type", "with_program", "kept"), [
    (False, "bronze", True, "gold"),  # level_downgrade = false: the level stays
    (True, "bronze", False, "gold"),  # no program given (an older caller): the type stays
])
def test_the_level_stays_when_the_program_says_so(
    ledger: Any, downgrade: bool, card_type: str, with_program: bool, kept: str
) -> None:
    prog = program(downgrade)
    gold_sale(ledger, prog, card_type)
    done = returned(ledger, "r1", 1, prog if with_program else None)
    assert done["card_type_after"] is None and ledger.card("C1", NOW)["type"] == kept
    [event] = [e for e in outbox(ledger) if e["type"] == "return"]
    assert event["card_type_after"] is None


def test_a_card_that_is_no_level_card_keeps_its_type(ledger: Any) -> None:
    prog = program()
    gold_sale(ledger, prog, "vip")
    assert ledger.card("C1", NOW)["type"] == "vip"  # no level card: no card_type_after at the sale
    assert returned(ledger, "r1", 1, prog)["card_type_after"] is None
    assert ledger.card("C1", NOW)["type"] == "vip"
