"""Fixtures for the ledger tests: a real LMDB ledger in tmp_path and a pricing engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import core
from terminal.ledger import Ledger

from .ledger_rules import NOW, RULES

__all__ = ["NOW", "RULES"]


@pytest.fixture(scope="session")
def engine() -> Any:
    return core.Engine(core.compile_rules(RULES))


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    led = Ledger.init(tmp_path / "ledger", "T01", map_size_bytes=64 * 1024 * 1024)
    yield led
    led.close()


def add_card(
    led: Ledger,
    number: str,
    balance: int = 0,
    card_type: str = "standard",
    referrers: list[str] | None = None,
    version: int = 1,
    now: str = NOW,
) -> None:
    entry = {
        "number": number,
        "type": card_type,
        "version": version,
        "balance": balance,
        "referrers": referrers or [],
    }
    led.apply_updates(f"add-{number}-{version}", {"cards": [entry]}, now)


def tenders(quote: dict[str, Any]) -> dict[str, Any]:
    return {"tenders": [{"method": "cash", "amount": quote["to_pay"]}]}


def sell(
    led: Ledger,
    eng: Any,
    sale_id: str,
    card: str | None,
    prices: list[int],
    redeem: Any = None,
    now: str = NOW,
    qty: int = 1,
    checkout: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Quote a cart with the card as the ledger has it, then commit the sale."""
    cart = {
        "store": "S01",
        "lines": [{"sku": f"P{i}", "price": p, "qty": qty} for i, p in enumerate(prices)],
    }
    card_dict = led.card_for_quote(card, now, checkout) if card else None
    quote = eng.quote(cart, card_dict, now, redeem)
    return quote, led.commit_sale(sale_id, quote, card, tenders(quote), now, checkout)


def lots_of(led: Ledger, number: str, now: str = NOW) -> list[dict[str, Any]]:
    return led.card(number, now)["lots"]


def assert_ok(led: Ledger) -> None:
    result = led.verify()
    assert result["ok"], result["problems"]
