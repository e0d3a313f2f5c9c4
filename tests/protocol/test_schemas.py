"""protocol/schemas.py is the contract: every event a real ledger writes validates against it,
its refusals name the field, and docs/protocol.md lists exactly its types and fields."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest

import core
from protocol import schemas
from terminal.ledger import Ledger
from tests.central.events import complete
from tests.terminal.conftest import add_card, sell
from tests.terminal.ledger_rules import NOW, RULES

REPO = Path(__file__).resolve().parents[2]
LATER = "2028-01-01T10:00:00+03:00"
LATE = "9999-12-31T23:00:00-05:00"  # year 10000 in UTC
GIFT_RULES = {**RULES, "rule": [*RULES["rule"], {"id": "gift-1", "kind": "gift", "sku": "MUG", "qty": 2}]}


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def every_event_type(tmp_path: Path) -> list[dict[str, Any]]:
    """A ledger that emits each event type, several ways: sales with and without a card, with
    redemption, referral credits and a gift; returns; an adjustment each way; a hold and its
    void; expiry; card and catalog imports; an applied update; a shift close."""
    engine = core.Engine(core.compile_rules(GIFT_RULES))
    led = Ledger.init(tmp_path / "led", "T01", map_size_bytes=64 * 1024 * 1024)
    try:
        # First: a ledger that has applied an update (add_card) is synced and refuses a local import.
        cards = [{"number": "C7", "type": "standard", "holder": "", "cumulative": "0", "balance": "30",
                  "expires_at": "2029-01-01T00:00:00+00:00", "referrers": "", "blocked": "", "birth_date": "",
                  "issued_on": "", "tags": ""}]
        led.import_cards(write_csv(tmp_path / "cards.csv", cards), NOW)
        add_card(led, "R1", balance=0)
        add_card(led, "C1", balance=500, referrers=["R1", "R9"])
        sell(led, engine, "s1", "C1", [10_000, 2_500], qty=3)
        sell(led, engine, "s2", None, [700])
        sell(led, engine, "s3", "C1", [20_000], redeem=100)
        led.commit_return("r1", "s1", [{"line": 0, "qty_milli": 1_000}], NOW)
        led.commit_return("r2", "s3", [{"line": 0, "qty_milli": 1_000}], NOW)
        led.commit_return("r3", "s2", [{"line": 0, "qty_milli": 1_000}], NOW)
        led.adjust("a1", "C1", 40, "goodwill", "tech-1", NOW, LATER)
        led.adjust("a2", "C1", -10, "typo", "tech-1", NOW)
        led.hold("h1", "C1", "k1", 20, NOW, "2026-11-23T10:05:00+03:00")
        led.void_hold("v1", "C1", "k1", NOW)
        led.expire("x1", "2030-01-01T00:00:00+00:00")
        products = [{"sku": "P9", "barcode": "4600000000009", "name": "Tea", "price": "120", "categories": "",
                     "no_discount": "0", "no_bonus": "0", "min_price": "0"}]
        led.import_catalog(write_csv(tmp_path / "catalog.csv", products), NOW)
        led.apply_updates("bad", {"cards": [{"number": "C8", "version": 3, "balance": 10**16}]}, NOW)
        led.cash_move("m1", "in", 5_000, "float", NOW)
        led.cash_move("m2", "out", 2_000, "bank drop", NOW)
        led.attendant_action("t1", "anna", "manager", "return", {"receipt": "s1", "line": 0}, NOW)
        led.register_card("e1", "7700000000099", "standard", "+7 (912) 345-67-89",
                          {"terms_version": "1", "terms_sha256": "ab" * 32}, "S01", NOW)
        led.close_shift("z1", led.report_shift()["totals"], NOW)
        return led.outbox_pending(1_000)
    finally:
        led.close()


def test_every_event_a_real_ledger_writes_validates(tmp_path: Path) -> None:
    events = every_event_type(tmp_path)
    assert {e["type"] for e in events} == set(schemas.EVENTS)
    for event in events:
        schemas.check_event(event)
    sales = [e for e in events if e["type"] == "sale"]
    assert all(e["lines"] and sum(line["paid"] for line in e["lines"]) == e["to_pay"] for e in sales)
    first = sales[0]
    assert [(line["sku"], line["qty_milli"]) for line in first["lines"]] == [("P0", 3_000), ("P1", 3_000)]
    assert first["lines"][0]["rules"] == ["std-5"] and first["gifts"] == [{"rule": "gift-1", "sku": "MUG", "qty": 2}]
    assert any(r["local"] for r in first["referral"]) and any(not r["local"] for r in first["referral"])


def schemas_line() -> dict[str, Any]:
    return {"sku": "A", "qty_milli": 1000, "price": 5, "amount": 5, "discount": 0, "redeem_amount": 0, "paid": 5,
            "rules": []}


def valid(kind: str, **fields: Any) -> dict[str, Any]:
    return complete({"id": "0" * 32, "epoch": 1, "seq": 1, "type": kind, **fields})


@pytest.mark.parametrize(
    ("event", "path", "reason"),
    [
        (valid("foo"), "type", "unknown event type"),
        ({**valid("expiry"), "colour": "red"}, "", "unknown field"),
        ({k: v for k, v in valid("expiry").items() if k != "at_ms"}, "", "missing field(s) ['at_ms']"),
        (valid("expiry", at_ms="garbage"), "at_ms", "integer"),
        (valid("expiry", at="yesterday", at_ms=1_800_000_000_000), "at", "ISO-8601"),
        (valid("expiry", at="2026-11-23T10:00:00+03:00", at_ms=1_800_000_000_000), "at_ms", "is not `at`"),
        (valid("expiry", at="1999-12-31T23:59:59+00:00", at_ms=946_684_799_000), "at_ms", "integer"),
        (valid("expiry", at=schemas.TIME_MAX_ISO, at_ms=schemas.TIME_MS_MAX + 1), "at_ms", "integer"),
        (valid("expiry", points=10**15 + 1), "points", "integer 0..1000000000000000"),
        (valid("expiry", points=True), "points", "integer"),
        (valid("sale", card=None, accrued=5), "card", "must name its card"),
        (valid("sale", card=None, deltas={"C1": 5}), "card", "must name its card"),
        (valid("return", card=None, restored=1), "card", "must name its card"),
        (valid("adjustment", points=10**9 + 1), "points", "integer"),
        (valid("sale", lines=[{"sku": "A"}]), "lines[0]", "missing field(s)"),
        (valid("sale", lines=[schemas_line()]), "lines", "do not add up to to_pay 0"),
        (valid("sale", lines=[{**schemas_line(), "qty_milli": -1}]), "lines[0].qty_milli", "integer"),
        (valid("sale", gifts=[{"rule": "g", "sku": "M", "qty": 0}]), "gifts[0].qty", "integer 1..1000"),
        (valid("hold", expires_at="10000-01-01T00:00:00+00:00"), "expires_at", "ISO-8601"),
        (valid("expiry", lots={"C1": [{"points": 1, "available_from": None, "expires_at": LATE}]}),
         "lots['C1'][0].expires_at", "within"),
        (valid("import", what="both"), "what", "one of"),
        (valid("shift_close", totals={"sales": -1}), "totals['sales']", "integer"),
    ],
)
def test_refusals_name_the_field(event: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(schemas.Invalid) as caught:
        schemas.check_event(event)
    assert caught.value.path == path and reason in caught.value.reason


def test_the_sample_events_of_each_type_are_valid() -> None:
    for kind in schemas.EVENTS:
        schemas.check_event(valid(kind))
    schemas.check_event(valid("sale", lines=[schemas_line()], gifts=[], to_pay=5, total=5, subtotal=5))


def doc_tables() -> dict[str, list[tuple[str, ...]]]:
    """The event field tables of docs/protocol.md: `#### \\`type\\`` then `| field | … |` rows."""
    text = (REPO / "docs" / "protocol.md").read_text()
    tables: dict[str, list[tuple[str, ...]]] = {}
    current = None
    for line in text.splitlines():
        heading = re.fullmatch(r"#### (event `([a-z_]+)`|every event .*)", line.strip())
        if heading:
            current = heading.group(2) or "*"
            tables[current] = []
        elif current and line.startswith("| `"):
            cells = tuple(c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1]))
            tables[current].append(cells)
        elif current and (line.startswith("#") or line.startswith("<!-- end")):
            current = None
    return tables


def test_the_doc_lists_exactly_the_schema() -> None:
    tables = doc_tables()
    assert sorted(tables) == sorted(["*", *schemas.EVENTS])
    for kind in tables:
        wanted = [(f"`{name}`", kind_, unit, rng, req) for name, kind_, unit, rng, req, _ in schemas.field_rows(kind)]
        got = [row[:5] for row in tables[kind]]
        assert got == wanted, f"docs/protocol.md event {kind}: regenerate with `python -m protocol.schemas`"
