"""Small builders shared by the pricing tests: carts, cards, rules and one-call quotes.

Every engine test passes `make_engine` (from tests/conftest.py), so it runs on both engines.
"""

from __future__ import annotations

from typing import Any

NOW = "2026-12-01T10:00:00+03:00"  # a Tuesday (ISO weekday 2), 10:00 local time


def line(sku: str = "a", price: int = 100_000, qty: Any = 1, **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "price": price, "qty": qty, **extra}


def cart(*lines: dict[str, Any], store: str = "S01") -> dict[str, Any]:
    return {"store": store, "lines": list(lines)}


def card(number: str = "C1", **extra: Any) -> dict[str, Any]:
    return {"number": number, **extra}


def rule(rid: str, kind: str = "discount", **fields: Any) -> dict[str, Any]:
    return {"id": rid, "kind": kind, **fields}


def rules(*items: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A rules tree: `rules(rule(...), ..., program={...}, redeem={...}, group=[...])`."""
    return {**sections, "rule": list(items)}


def quote(make_engine: Any, tree: dict[str, Any], lines: list[dict[str, Any]],
          card: dict[str, Any] | None = None, now: str = NOW, redeem: Any = None,
          store: str = "S01") -> dict[str, Any]:
    engine = make_engine(tree)
    return engine.quote({"store": store, "lines": lines}, card, now, redeem)


def line_discounts(result: dict[str, Any]) -> list[int]:
    return [item["discount"] for item in result["lines"]]


def line_rules(result: dict[str, Any]) -> list[list[str]]:
    return [item["rules"] for item in result["lines"]]
