"""Events for the central tests, made valid against protocol/schemas.py: a test names what it
tests (type, seq, deltas, lots, …) and `complete` fills the other required fields with the
smallest valid values of their schema (`at` from `at_ms`, the card from `deltas`/`lots`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from protocol import schemas

DEFAULT_AT_MS = 1_790_000_000_000  # 2026-09-21


def iso(ms: int) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)).isoformat()


def _sample(spec: Any, card: str | None, at: str) -> Any:
    if isinstance(spec, schemas.Nullable):
        return card if isinstance(spec.inner, schemas.CardNumber) else None
    if isinstance(spec, schemas.Int):
        return 0 if spec.low <= 0 <= spec.high else spec.low
    if isinstance(spec, schemas.Text):
        return spec.choices[0] if spec.choices else "x" * spec.chars_min
    if isinstance(spec, schemas.CardNumber):
        return card or "C1"
    if isinstance(spec, schemas.Time):
        return at
    if isinstance(spec, schemas.Bool):
        return False
    if isinstance(spec, schemas.ListOf):
        return []
    if isinstance(spec, schemas.MapOf):
        return {}
    if isinstance(spec, schemas.Scalar):
        return None
    if isinstance(spec, schemas.Record):
        return {f.name: _sample(f.spec, card, at) for f in spec.fields if f.required}
    raise AssertionError(f"no sample for {spec!r}")


def complete(event: dict[str, Any]) -> dict[str, Any]:
    """`event` with every missing required field of its type filled in (unknown types untouched)."""
    kind = event.get("type")
    if kind not in schemas.EVENTS:
        return event
    at_ms = event.get("at_ms", DEFAULT_AT_MS)
    at = event["at"] if "at" in event else iso(at_ms) if type(at_ms) is int else iso(DEFAULT_AT_MS)
    card = event.get("card")
    if card is None and "card" not in event:
        named = [*(event.get("deltas") or {}), *(event.get("lots") or {})]
        card = named[0] if named else None
    out = {"at_ms": at_ms, "at": at, "shift": 1, "deltas": {}}
    for f in schemas.EVENTS[kind]:
        if f.required and f.name not in event:
            out[f.name] = _sample(f.spec, card, at)
    return {**out, **event}


def padding(size: int) -> list[dict[str, Any]]:
    """Sale lines adding about `size` bytes to an event (for batch-size tests)."""
    line = {"sku": "x" * 64, "qty_milli": 1000, "price": 1, "amount": 1, "discount": 1,
            "redeem_amount": 0, "paid": 0, "rules": []}
    return [dict(line) for _ in range(max(1, size // 120))]
