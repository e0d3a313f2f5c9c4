"""Coupons in the terminal's ledger (spec §13): fed codes, the presented-code check, the sale that
spends and issues in its own transaction, the return that empties the receipt, and feed states
that never undo a local spend central has not stored yet."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

import core
from protocol import coupons as codes
from protocol import schemas
from terminal.checkout import Register
from terminal.coupons import CouponRefused, check
from terminal.ledger import Ledger, LedgerBalanceError, LedgerInputError
from tests.central.helpers import outbox

from .conftest import assert_ok, tenders

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = core.load_rules(ROOT / "examples" / "coupons.toml")
NOW = "2026-04-10T10:00:00+03:00"
TODAY = dt.date(2026, 4, 10)
CART_LINES = [
    {"sku": "SPADE-1", "name": "Spade", "price": 200000, "qty": 1, "categories": ["garden/tools"], "vat": 20},
    {"sku": "LAMP-1", "name": "Lamp", "price": 150000, "qty": 1, "categories": ["home/light"], "vat": 20},
]


def feed(led: Ledger, batch: str, *items: dict[str, Any], acked: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"coupons": list(items)}
    if acked is not None:
        body["acked"] = acked
    return led.apply_updates(batch, body, NOW)


def fed(code: str, series: str = "spring", state: str = "unspent", valid_to: str | None = None) -> dict[str, Any]:
    return {"code": code, "series": series, "valid_to": valid_to, "state": state}


def events(led: Ledger) -> list[dict[str, Any]]:
    return outbox(led)


def sale(led: Ledger, sale_id: str, presented: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    cart = {"store": "S01", "lines": CART_LINES,
            "coupons": [{"code": p["code"], "series": p["series"]} for p in presented]}
    quote = core.Engine(PROGRAM).quote(cart, None, NOW, None)
    return quote, led.commit_sale(sale_id, quote, None, tenders(quote), NOW, None, presented)


@pytest.fixture
def spring(ledger: Ledger) -> dict[str, Any]:
    feed(ledger, "b1", fed("SPR-0001"))
    return check(ledger, PROGRAM, "spr-0001", TODAY, [])


def test_a_fed_code_is_checked_spent_by_the_sale_and_a_next_visit_code_issued(ledger: Ledger,
                                                                              spring: dict[str, Any]) -> None:
    assert spring == {"code": "SPR-0001", "series": "spring", "single_use": True}
    quote, result = sale(ledger, "s1", [spring])
    assert quote["coupons"] == [{"code": "SPR-0001", "series": "spring", "used": True}]
    assert quote["lines"][0]["discount"] == 30000
    [issued] = result["issued_coupons"]
    assert issued["series"] == "next-visit" and issued["rule"] == "issue-next-visit"
    assert issued["valid_to"] == "2026-05-10" and codes.is_coupon_code(issued["code"])
    assert issued["code"].startswith("CP-T01-1-")
    assert ledger.coupon("SPR-0001")["state"] == "spent"
    assert ledger.coupon(issued["code"])["state"] == "unspent"
    [event] = [e for e in events(ledger) if e["type"] == "sale"]
    schemas.check_event(event)
    assert event["coupons"] == [spring] and event["issued_coupons"] == [issued]
    receipt = ledger.receipt("s1")
    assert receipt["coupons_used"] == [spring] and receipt["issued_coupons"] == [issued]
    # the issued code is known here at once: the customer may come back to this terminal
    assert check(ledger, PROGRAM, issued["code"].lower(), TODAY, [])["series"] == "next-visit"
    with pytest.raises(CouponRefused, match=r"already used \(receipt s1\)"):
        check(ledger, PROGRAM, "SPR-0001", TODAY, [])
    assert_ok(ledger)


def test_a_retried_sale_returns_the_same_codes_and_changes_nothing(ledger: Ledger, spring: dict[str, Any]) -> None:
    quote, first = sale(ledger, "s1", [spring])
    again = ledger.commit_sale("s1", quote, None, tenders(quote), NOW, None, [spring])
    assert again == first and ledger.meta()["next_coupon"] == 1
    assert len([e for e in events(ledger) if e["type"] == "sale"]) == 1


def test_a_spent_code_refuses_the_second_sale_whole(ledger: Ledger, spring: dict[str, Any]) -> None:
    sale(ledger, "s1", [spring])
    before = ledger.meta()
    with pytest.raises(LedgerBalanceError, match="coupon SPR-0001: spent by sale s1"):
        sale(ledger, "s2", [spring])
    after = ledger.meta()
    assert (after["next_seq"], after["next_coupon"]) == (before["next_seq"], before["next_coupon"])
    assert ledger.receipt("s2") is None


def test_the_return_that_empties_the_receipt_restores_and_voids(ledger: Ledger, spring: dict[str, Any]) -> None:
    _, result = sale(ledger, "s1", [spring])
    code = result["issued_coupons"][0]["code"]
    part = ledger.commit_return("r1", "s1", [{"line": 1, "qty": 1}], NOW)
    assert part["coupons_restored"] == [] and part["coupons_voided"] == []
    assert ledger.coupon("SPR-0001")["state"] == "spent"
    rest = ledger.commit_return("r2", "s1", [{"line": 0, "qty": 1}], NOW)
    assert rest["coupons_restored"] == ["SPR-0001"] and rest["coupons_voided"] == [code]
    assert ledger.coupon("SPR-0001")["state"] == "unspent" and ledger.coupon(code)["state"] == "void"
    returns = [e for e in events(ledger) if e["type"] == "return"]
    for event in returns:
        schemas.check_event(event)
    assert "coupons_restored" not in returns[0] and returns[1]["coupons_voided"] == [code]
    with pytest.raises(CouponRefused, match="void"):
        check(ledger, PROGRAM, code, TODAY, [])
    assert check(ledger, PROGRAM, "SPR-0001", TODAY, [])["code"] == "SPR-0001"  # usable again
    assert_ok(ledger)


def test_an_issued_code_already_used_is_not_voided(ledger: Ledger, spring: dict[str, Any]) -> None:
    _, result = sale(ledger, "s1", [spring])
    code = result["issued_coupons"][0]["code"]
    visit = check(ledger, PROGRAM, code, TODAY, [])
    sale(ledger, "s2", [visit])  # the next visit used it
    done = ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}, {"line": 1, "qty": 1}], NOW)
    assert done["coupons_voided"] == [] and ledger.coupon(code)["state"] == "spent"


def test_an_older_feed_state_does_not_undo_a_local_spend(ledger: Ledger, spring: dict[str, Any]) -> None:
    sale(ledger, "s1", [spring])
    seq = next(e for e in events(ledger) if e["type"] == "sale")["seq"]
    epoch = ledger.meta()["epoch"]
    feed(ledger, "b2", fed("SPR-0001"), acked={"epoch": epoch, "seq": seq - 1})  # written before the sale
    assert ledger.coupon("SPR-0001")["state"] == "spent"
    feed(ledger, "b3", fed("SPR-0001"), acked={"epoch": epoch, "seq": seq})  # central stored it, then gave it back
    assert ledger.coupon("SPR-0001")["state"] == "unspent"


def test_a_bad_feed_entry_is_refused_alone(ledger: Ledger) -> None:
    result = feed(ledger, "b1", fed("CP-T01-1-AAAAX"), {"code": "X1"}, fed("SPR-0002", state="lost"),
                  fed("SPR-0003"))
    assert result["refused_count"] == 3 and [r["item"] for r in result["refused"]] == ["coupon"] * 3
    assert "check character" in result["refused"][0]["reason"]
    assert ledger.coupon("SPR-0003")["state"] == "unspent" and ledger.coupon("SPR-0002") is None
    assert [e["type"] for e in events(ledger)].count("update_refused") == 3


@pytest.mark.parametrize(("code", "today", "entry", "message", "status"), [
    ("SPR-0001", dt.date(2026, 6, 1), fed("SPR-0001"), "series spring ended on 2026-05-31", 409),
    ("SPR-0001", dt.date(2026, 2, 28), fed("SPR-0001"), "series spring starts on 2026-03-01", 409),
    ("NV-1", TODAY, fed("NV-1", "next-visit", valid_to="2026-04-09"), "expired on 2026-04-09", 409),
    ("NV-2", TODAY, fed("NV-2", "next-visit", state="spent"), "already used", 409),
    ("NV-3", TODAY, fed("NV-3", "autumn"), "series 'autumn' is not in this terminal's rules", 409),
    ("SPR-9999", TODAY, fed("SPR-0001"), "not known to this terminal", 404),
    ("<b>", TODAY, fed("SPR-0001"), "a coupon code is 3..32", 400),
    ("CP-T01-1-ABCDE", TODAY, fed("SPR-0001"), "check character is wrong", 400),
])
def test_refusals_say_why(ledger: Ledger, code: str, today: dt.date, entry: dict[str, Any], message: str,
                          status: int) -> None:
    feed(ledger, "b1", entry)
    with pytest.raises(CouponRefused, match=message) as refused:
        check(ledger, PROGRAM, code, today, [])
    assert refused.value.status == status


def test_at_most_sixteen_codes_each_once(ledger: Ledger, spring: dict[str, Any]) -> None:
    with pytest.raises(CouponRefused, match="already presented"):
        check(ledger, PROGRAM, "SPR-0001", TODAY, [spring])
    many = [{"code": f"X{i:03d}", "series": "spring", "single_use": True} for i in range(16)]
    with pytest.raises(CouponRefused, match="at most 16 coupons"):
        check(ledger, PROGRAM, "SPR-0001", TODAY, many)


def test_a_reusable_series_id_is_its_promo_code(ledger: Ledger) -> None:
    tree = {"program": {"point_value": 100}, "coupon_series": [{"id": "welcome", "single_use": False}],
            "rule": [{"id": "w5", "kind": "discount", "percent": 5, "when": {"coupon": "welcome"}}]}
    program = core.compile_rules(tree)
    assert check(ledger, program, "Welcome", TODAY, []) == {"code": "WELCOME", "series": "welcome",
                                                             "single_use": False}
    with pytest.raises(CouponRefused, match="not known"):
        check(ledger, PROGRAM, "SPRING", TODAY, [])  # spring is single-use: no series-wide code


def test_the_register_prices_presented_codes_and_prints_them_in_the_sale(tmp_path: Path, ledger: Ledger) -> None:
    feed(ledger, "b1", fed("SPR-0001"))
    for sku, line in (("SPADE-1", CART_LINES[0]), ("LAMP-1", CART_LINES[1])):
        ledger.apply_updates(f"p-{sku}", {"catalog": [{"sku": sku, "name": line["name"], "price": line["price"],
                                                        "categories": line["categories"], "barcodes": [sku]}]}, NOW)
    seen: list[tuple[str, dict[str, Any]]] = []
    reg = Register(terminal_id="T01", store="S01", ledger=ledger, program=PROGRAM,
                   record_path=tmp_path / "checkout.json", idle_timeout_s=300, hold_timeout_s=900,
                   publish=lambda kind, data: seen.append((kind, data)))
    now = dt.datetime.fromisoformat(NOW)
    reg.add(reg.product_line("SPADE-1"), now)
    reg.add(reg.product_line("LAMP-1"), now)
    view = reg.add_coupon("spr-0001", now)
    assert view["coupons"] == [{"code": "SPR-0001", "series": "spring"}]
    assert view["quote"]["discount"] == 30000 and view["quote"]["issued_coupons"][0]["valid_days"] == 30
    record = json.loads((tmp_path / "checkout.json").read_text())
    assert record["coupons"] == [{"code": "SPR-0001", "series": "spring", "single_use": True}]
    with pytest.raises(CouponRefused):
        reg.add_coupon("SPR-0001", now)
    assert reg.view()["coupons"] == view["coupons"]  # the refusal changed nothing
    sold = reg.pay(None, "cash", now)
    assert sold["issued_coupons"][0]["code"].startswith("CP-T01-")
    assert ledger.coupon("SPR-0001")["state"] == "spent"


def test_a_full_return_of_another_terminals_sale_lists_its_codes_for_central(ledger: Ledger) -> None:
    """Returns anywhere (issue 11): the server's copy of the sale carries its coupons; this ledger
    holds neither code, so the return only names them and central restores and voids them."""
    line = {"sku": "P0", "qty_milli": 1000, "price": 5000, "amount": 5000, "discount": 0, "redeem_amount": 0,
            "paid": 5000, "rules": []}
    issued = {"code": codes.terminal_code("T09", 3), "series": "next-visit", "rule": "issue-next-visit",
              "valid_to": "2026-05-10"}
    sold = {"receipt": "T09-s1", "terminal": "T09", "epoch": 1, "seq": 7, "at": NOW, "card": None,
            "card_type": None, "subtotal": 5000, "discount": 0, "total": 5000, "to_pay": 5000,
            "tenders": [{"method": "cash", "amount": 5000}], "redeemed": 0, "redeemed_money": 0, "accrued": 0,
            "referral": [], "lines": [line], "gifts": [],
            "coupons": [{"code": "SPR-0001", "series": "spring", "single_use": True}], "issued_coupons": [issued]}
    with pytest.raises(LedgerInputError, match="issued_coupons"):
        ledger.adopt_receipt({**sold, "issued_coupons": [{**issued, "valid_to": 5}]}, NOW)
    ledger.adopt_receipt(sold, NOW)
    done = ledger.commit_return("r1", "T09-s1", [{"line": 0, "qty": 1}], NOW)
    assert done["coupons_restored"] == ["SPR-0001"] and done["coupons_voided"] == [issued["code"]]
    schemas.check_event(events(ledger)[-1])
