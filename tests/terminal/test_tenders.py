"""Tenders: change, payment operations, refusals; refunds split back over the sale's tenders;
cash in/out and the shift report's tenders, refunds and VAT on a real ledger."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import core
from terminal.checkout import BadRequest, Register
from terminal.demo_run import DATA
from terminal.ledger import Ledger, LedgerInputError
from terminal.tenders import TenderError, paper_lines, plan, refund_split

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
MILK, FRIDGE = "4600000000022", "4006381333931"


def test_plan_computes_change_and_names_card_operations() -> None:
    out = plan([{"method": "cash", "amount": 3000, "tendered": 5000}, {"method": "card", "amount": 7000}],
               "card", 10000, "T01-x", card_terminal=True)
    assert out == [{"method": "cash", "amount": 3000, "tendered": 5000, "change": 2000},
                   {"method": "card", "amount": 7000, "op": "T01-x-a1p2", "status": "pending"}]
    assert plan(None, "card", 500, "T01-x", card_terminal=False) == [{"method": "card", "amount": 500}]
    assert paper_lines(out, 100, 100) == (("Points (100)", 100), ("Cash", 3000), ("  Cash given", 5000),
                                          ("Card", 7000))


@pytest.mark.parametrize(("tenders", "message"), [
    ([{"method": "cash", "amount": 3000, "tendered": 2000}], "only cash is tendered, at least its amount"),
    ([{"method": "card", "amount": 3000, "tendered": 5000}], "only cash is tendered"),
    ([{"method": "cash", "amount": 2999}], "add up to 2999, the sale asks 3000"),
    ([{"method": "points", "amount": 3000}], "points pay through POST /v1/checkout/redeem"),
    ([{"method": "cash", "amount": 3000, "change": 1}], "must be an object of"),
    ([{"method": "", "amount": 3000}], "method must be"),
    ([{"method": "cash", "amount": 1.5}], "whole minor units"),
    ([{"method": "cash", "amount": 1}] * 17, "at most 16"),
])
def test_plan_refuses_bad_tenders(tenders: list[Any], message: str) -> None:
    with pytest.raises(TenderError, match=message):
        plan(tenders, "card", 3000, "T01-x", card_terminal=True)


def test_refunds_go_to_the_card_first_then_cash() -> None:
    sale = [{"method": "cash", "amount": 3000}, {"method": "card", "amount": 7000, "op": "T01-x-p2"}]
    first = refund_split(sale, [], 5000)
    assert first == [{"tender": 1, "method": "card", "amount": 5000, "original": "T01-x-p2"}]
    second = refund_split(sale, [first], 4000)
    assert second == [{"tender": 1, "method": "card", "amount": 2000, "original": "T01-x-p2"},
                      {"tender": 0, "method": "cash", "amount": 2000}]
    assert refund_split(sale, [first, second], 1000) == [{"tender": 0, "method": "cash", "amount": 1000}]
    # a sale paid all in points (no money tender): what money there is comes from the drawer
    assert refund_split([], [], 0) == []


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    led = Ledger.init(tmp_path / "ledger", "T01", sync=False)
    led.import_catalog(DATA / "catalog.csv", NOW)
    led.import_cards(DATA / "cards.csv", NOW)
    yield led
    led.close()


def register(ledger: Ledger, tmp_path: Path) -> Register:
    return Register(terminal_id="T01", store="S01", ledger=ledger, program=core.load_rules(DATA / "rules.toml"),
                    record_path=tmp_path / "checkout.json", idle_timeout_s=300, hold_timeout_s=900,
                    publish=lambda kind, data: None)


def test_cash_with_change_a_return_and_the_shift_report(ledger: Ledger, tmp_path: Path) -> None:
    reg = register(ledger, tmp_path)
    reg.add(reg.product_line(MILK), NOW)  # 89.90 at VAT 10 % (the demo catalog's vat column)
    assert reg.current is not None and reg.current.lines[0]["vat"] == "10"
    sale = reg.pay([{"method": "cash", "amount": 8990, "tendered": 10000}], "cash", NOW)
    assert sale["change"] == 1010 and sale["shift"] == 1
    assert sale["quote"]["vat"] == [{"rate": 1000, "paid": 8990, "amount": 817}]
    reg.finish()
    record = ledger.receipt(sale["receipt"])
    assert record is not None and record["tenders"] == [
        {"method": "cash", "amount": 8990, "tendered": 10000, "change": 1010}]

    reg.add(reg.product_line(FRIDGE), NOW)
    card_sale = reg.pay([{"method": "cash", "amount": 200000}, {"method": "card", "amount": 1000000}], "card", NOW)
    reg.finish()
    ret = reg.return_lines(card_sale["receipt"], None, "R-1", NOW)
    assert ret["tenders"] == [{"tender": 1, "method": "card", "amount": 1000000},
                              {"tender": 0, "method": "cash", "amount": 200000}]
    ledger.cash_move("c-1", "in", 500000, "float for the day", NOW)
    ledger.cash_move("c-2", "out", 300000, "bank drop", NOW)
    assert ledger.cash_move("c-2", "out", 300000, "bank drop", NOW)["seq"]  # a retry: the same answer
    with pytest.raises(LedgerInputError, match="kind must be in or out"):
        ledger.cash_move("c-3", "sideways", 1, "x", NOW)
    with pytest.raises(LedgerInputError, match="reason"):
        ledger.cash_move("c-4", "in", 1, "", NOW)

    report = ledger.report_shift()
    assert report["tenders"] == {"card": 1000000, "cash": 208990}
    assert report["refunds"] == {"card": 1000000, "cash": 200000}
    assert report["totals"]["cash_in"] == 500000 and report["totals"]["cash_out"] == 300000
    assert report["vat"] == {"sales": [{"rate": 1000, "paid": 8990, "amount": 817},
                                       {"rate": 2000, "paid": 1200000, "amount": 200000}],
                             "returns": [{"rate": 2000, "money": 1200000, "amount": 200000}]}
    assert [m["reason"] for m in report["cash_moves"]] == ["float for the day", "bank drop"]
    assert ledger.verify()["ok"], ledger.verify()["problems"]


def test_a_tender_refusal_changes_nothing(ledger: Ledger, tmp_path: Path) -> None:
    reg = register(ledger, tmp_path)
    reg.add(reg.product_line(MILK), NOW)
    with pytest.raises(BadRequest, match="at least its amount"):
        reg.pay([{"method": "cash", "amount": 8990, "tendered": 5000}], "cash", NOW)
    assert reg.current is not None and reg.current.state == "paying" and reg.current.payment is None
    assert ledger.stats()["entries"]["receipts"] == 0


def test_catalog_vat_column_is_optional_and_checked(tmp_path: Path) -> None:
    from terminal.ledger import ImportRowsError

    led = Ledger.init(tmp_path / "ledger", "T01", sync=False)
    try:
        old = tmp_path / "old.csv"
        old.write_text("sku,barcode,name,price,categories,no_discount,no_bonus,min_price\na,1,A,100,,,,0\n")
        led.import_catalog(old, NOW)
        assert "vat" not in led.product("a")  # outside VAT: the cart line carries none
        new = tmp_path / "new.csv"
        new.write_text("sku,barcode,name,price,categories,no_discount,no_bonus,min_price,vat\n"
                       "b,2,B,100,,,,0,20.00\nc,3,C,100,,,,0,\nd,4,D,100,,,,0,7.5\n")
        led.import_catalog(new, NOW)
        assert [led.product(s).get("vat") for s in "bcd"] == ["20", None, "7.5"]
        bad = tmp_path / "bad.csv"
        bad.write_text("sku,barcode,name,price,categories,no_discount,no_bonus,min_price,vat\n"
                       "e,5,E,100,,,,0,101\nf,6,F,100,,,,0,1.234\n")
        with pytest.raises(ImportRowsError) as info:
            led.import_catalog(bad, NOW)
        assert [(row, field) for row, field, _ in info.value.problems] == [(2, "vat"), (3, "vat")]
    finally:
        led.close()
