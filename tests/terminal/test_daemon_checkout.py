"""The checkout state machine against a real temporary ledger and the demo rules."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

import core
from terminal.checkout import BadRequest, CheckoutError, NotFound, Register, parse_qty
from terminal.demo_run import DATA
from terminal.ledger import Ledger

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
STANDARD, GOLD = "7700000000026", "7700000000033"
FRIDGE, MILK = "4006381333931", "4600000000022"


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    led = Ledger.init(tmp_path / "ledger", "T01", sync=False)
    led.import_catalog(DATA / "catalog.csv", NOW)
    led.import_cards(DATA / "cards.csv", NOW)
    yield led
    led.close()


def make_register(ledger: Ledger, tmp_path: Path, seen: Seen | None = None, idle_s: int = 300) -> Register:
    return Register(terminal_id="T01", store="S01", ledger=ledger, program=core.load_rules(DATA / "rules.toml"),
                    record_path=tmp_path / "checkout.json", idle_timeout_s=idle_s, hold_timeout_s=900,
                    publish=seen or Seen())


def held(ledger: Ledger, number: str, at: dt.datetime = NOW) -> int:
    return ledger.card(number, at)["held"]


def test_scan_card_redeem_pay_commits_once_and_posts_the_hold(ledger: Ledger, tmp_path: Path) -> None:
    seen = Seen()
    reg = make_register(ledger, tmp_path, seen)
    reg.add(reg.product_line(FRIDGE), NOW)
    reg.attach_card(STANDARD, NOW)
    view = reg.set_redeem("max", NOW)
    assert view["quote"]["redeem"]["points"] == 5700 and view["quote"]["to_pay"] == 570000
    assert held(ledger, STANDARD) == 5700
    sale = reg.pay(None, "card", NOW)
    reg.finish()
    assert sale["receipt"] == view["id"] and sale["balance_after"] == 10000 - 5700 + 114
    assert sale["points_before"] == 10000
    assert held(ledger, STANDARD) == 0
    assert ledger.receipt(view["id"]) is not None
    assert reg.current is None and not (tmp_path / "checkout.json").exists()
    assert seen.kinds().count("sale") == 1 and "checkout_closed" in seen.kinds()


def test_counted_product_scanned_twice_is_one_line_and_weighed_lines_stay_apart(ledger: Ledger, tmp_path: Path) -> None:
    reg = make_register(ledger, tmp_path)
    reg.add(reg.product_line(MILK), NOW)
    view = reg.add(reg.product_line(MILK), NOW)
    assert [ln["qty"] for ln in view["lines"]] == ["2"]
    apples = reg.product_line("2100123003501", qty_milli=350, weight_code="2100123")
    reg.add(apples, NOW)
    view = reg.add(dict(apples), NOW)
    assert [ln["qty"] for ln in view["lines"]] == ["2", "0.350", "0.350"]
    assert view["quote"]["total"] == 2 * 8990 + 2 * 4200


def test_payment_freezes_the_cart(ledger: Ledger, tmp_path: Path) -> None:
    reg = make_register(ledger, tmp_path)
    reg.add(reg.product_line(MILK), NOW)
    reg.begin_payment(NOW)
    with pytest.raises(CheckoutError, match="waiting for payment"):
        reg.add(reg.product_line(FRIDGE), NOW)
    with pytest.raises(CheckoutError, match="waiting for payment"):
        reg.attach_card(STANDARD, NOW)
    with pytest.raises(CheckoutError, match="waiting for payment"):
        reg.remove(0, NOW)
    reg.back_to_cart(NOW)
    assert len(reg.add(reg.product_line(FRIDGE), NOW)["lines"]) == 2


def test_cancel_and_idle_timeout_release_the_hold(ledger: Ledger, tmp_path: Path) -> None:
    reg = make_register(ledger, tmp_path, idle_s=60)
    reg.add(reg.product_line(FRIDGE), NOW)
    reg.attach_card(STANDARD, NOW)
    reg.set_redeem(1000, NOW)
    assert held(ledger, STANDARD) == 1000
    assert reg.cancel(NOW)["points_released"] == 1000
    assert held(ledger, STANDARD) == 0
    reg.add(reg.product_line(FRIDGE), NOW)
    reg.attach_card(STANDARD, NOW)
    reg.set_redeem(300, NOW)
    assert reg.expire_idle(NOW + dt.timedelta(seconds=30)) is None
    closed = reg.expire_idle(NOW + dt.timedelta(seconds=61))
    assert closed is not None and closed["reason"] == "idle timeout" and closed["points_released"] == 300
    assert held(ledger, STANDARD) == 0 and reg.current is None


def test_changing_redemption_or_card_moves_the_hold(ledger: Ledger, tmp_path: Path) -> None:
    reg = make_register(ledger, tmp_path)
    reg.add(reg.product_line(FRIDGE), NOW)
    reg.attach_card(STANDARD, NOW)
    reg.set_redeem(2000, NOW)
    reg.set_redeem(500, NOW)
    assert held(ledger, STANDARD) == 500
    reg.set_redeem(0, NOW)
    assert held(ledger, STANDARD) == 0
    reg.set_redeem(700, NOW)
    reg.attach_card(GOLD, NOW)  # another card: the first card's hold is voided
    assert held(ledger, STANDARD) == 0 and reg.current is not None and reg.current.redeem is None


def test_refusals_are_clear(ledger: Ledger, tmp_path: Path) -> None:
    reg = make_register(ledger, tmp_path)
    with pytest.raises(NotFound, match="not in the catalog"):
        reg.product_line("1234567890128")
    with pytest.raises(CheckoutError, match="no open checkout"):
        reg.pay(None, "cash", NOW)
    reg.add(reg.product_line(MILK), NOW)
    with pytest.raises(NotFound, match="not known"):
        reg.attach_card("7799999999999", NOW)
    with pytest.raises(CheckoutError, match="attach a card"):
        reg.set_redeem("max", NOW)
    with pytest.raises(NotFound, match="no line 5"):
        reg.remove(5, NOW)
    with pytest.raises(BadRequest, match="tenders add up"):
        reg.pay([{"method": "cash", "amount": 1}], "cash", NOW)
    assert reg.current is not None and reg.current.state == "paying"  # nothing committed
    with pytest.raises(CheckoutError, match="finish or cancel"):
        reg.return_lines("whatever", None, None, NOW)
    for bad in (1.5, "abc", "0.0001", 0, True):
        with pytest.raises(BadRequest):
            parse_qty(bad)
    assert parse_qty("0.350") == 350 and parse_qty(2) == 2000


def test_crash_after_payment_confirmed_commits_exactly_once(ledger: Ledger, tmp_path: Path) -> None:
    reg = make_register(ledger, tmp_path)
    reg.add(reg.product_line(FRIDGE), NOW)
    reg.attach_card(STANDARD, NOW)
    reg.set_redeem("max", NOW)
    reg.pay(None, "card", NOW)  # committed, but "crashed" before finish(): the record remains
    record = json.loads((tmp_path / "checkout.json").read_text())
    assert record["state"] == "committing"
    seq = ledger.meta()["next_seq"]
    again = make_register(ledger, tmp_path)
    outcome, sale = again.recover(NOW)
    assert outcome == "committed" and sale is not None and sale["receipt"] == record["id"]
    assert ledger.meta()["next_seq"] == seq  # the ledger answered the retried id: nothing doubled
    again.finish()
    assert ledger.card(STANDARD, NOW)["balance"] == 10000 - 5700 + 114


def test_crash_with_confirmed_payment_not_yet_committed_commits_on_restart(ledger: Ledger, tmp_path: Path) -> None:
    reg = make_register(ledger, tmp_path)
    reg.add(reg.product_line(MILK), NOW)
    reg.begin_payment(NOW)
    co = reg.current
    assert co is not None
    co.state, co.commit_at = "committing", NOW.isoformat()
    co.payment = {"tenders": [{"method": "cash", "amount": 8990}]}
    reg._save()  # the record as it is between "payment confirmed" and the ledger commit
    outcome, sale = make_register(ledger, tmp_path).recover(NOW)
    assert outcome == "committed" and sale is not None and ledger.receipt(co.id) is not None


def test_open_checkout_resumes_after_restart_and_keeps_its_hold(ledger: Ledger, tmp_path: Path) -> None:
    reg = make_register(ledger, tmp_path)
    reg.add(reg.product_line(FRIDGE), NOW)
    reg.attach_card(STANDARD, NOW)
    reg.set_redeem(1234, NOW)
    again = make_register(ledger, tmp_path)
    outcome, sale = again.recover(NOW + dt.timedelta(seconds=5))
    assert outcome == "resumed" and sale is None
    assert again.view()["quote"]["redeem"]["points"] == 1234 and held(ledger, STANDARD) == 1234
    late = make_register(ledger, tmp_path)
    assert late.recover(NOW + dt.timedelta(seconds=400))[0] == "expired"  # idle 300 s < 400 s < hold 900 s
    assert held(ledger, STANDARD, NOW + dt.timedelta(seconds=400)) == 0 and not (tmp_path / "checkout.json").exists()


def test_return_all_then_nothing_left(ledger: Ledger, tmp_path: Path) -> None:
    reg = make_register(ledger, tmp_path)
    reg.add(reg.product_line(MILK), NOW)
    reg.add(reg.product_line(MILK), NOW)
    receipt = reg.pay(None, "cash", NOW)["receipt"]
    reg.finish()
    first = reg.return_lines(receipt, [{"line": 0, "qty": 1}], "ret-1", NOW)
    assert first["refund"]["money"] == 8990
    rest = reg.return_lines(receipt, None, None, NOW)
    assert rest["refund"]["money"] == 8990
    with pytest.raises(CheckoutError, match="returned already"):
        reg.return_lines(receipt, None, None, NOW)
    with pytest.raises(NotFound):
        reg.return_lines("T01-nope", None, None, NOW)


def test_a_refused_action_leaves_the_checkout_as_it_was(ledger: Ledger, tmp_path: Path) -> None:
    reg = make_register(ledger, tmp_path)
    with pytest.raises(NotFound):
        reg.attach_card("7799999999999", NOW)
    assert reg.current is None  # the checkout the card would have opened is gone again
    reg.add(reg.product_line(FRIDGE), NOW)
    reg.attach_card(STANDARD, NOW)
    before = reg.view()
    with pytest.raises(NotFound):
        reg.attach_card("7799999999999", NOW)
    assert reg.view() == before


def test_offline_card_redemption_is_capped(ledger: Ledger, tmp_path: Path) -> None:
    reg = make_register(ledger, tmp_path)
    reg.offline_cap_points = 1000
    reg.add(reg.product_line(FRIDGE), NOW)
    reg.attach_card(STANDARD, NOW, "offline")
    assert reg.set_redeem("max", NOW)["quote"]["redeem"]["points"] == 1000
    assert reg.set_redeem(800, NOW)["quote"]["redeem"]["points"] == 800  # its own hold is not counted twice
    assert reg.set_redeem("max", NOW)["quote"]["redeem"]["points"] == 1000
    reg.attach_card(STANDARD, NOW, "online")
    assert reg.set_redeem("max", NOW)["quote"]["redeem"]["points"] == 5700


def test_the_offline_cap_holds_over_the_whole_offline_period(ledger: Ledger, tmp_path: Path) -> None:
    """`offline_redeem_max_points` caps a card's redemptions on this terminal since the server
    last spoke of the card, not per sale; the server's next state of the card starts afresh."""
    reg = make_register(ledger, tmp_path)
    reg.offline_cap_points = 1000

    def offline_sale(redeem: Any) -> int:
        reg.add(reg.product_line(FRIDGE), NOW)
        reg.attach_card(STANDARD, NOW, "offline")
        points = int(reg.set_redeem(redeem, NOW)["quote"]["redeem"]["points"])
        reg.pay(None, "card", NOW)
        reg.finish()
        return points

    assert offline_sale(600) == 600
    assert offline_sale("max") == 400  # 1000 over the period, 600 of it already used
    assert offline_sale("max") == 0
    assert ledger.card(STANDARD, NOW)["offline_redeemed"] == 1000
    balance = ledger.card(STANDARD, NOW)["server_balance"]
    entry = {"number": STANDARD, "version": 10, "balance": balance,
             "lots": [{"points": balance, "available_from": None, "expires_at": None}]}
    ledger.apply_updates("server-speaks", {"cards": [entry], "acked": None}, NOW)  # contact again
    assert ledger.card(STANDARD, NOW)["offline_redeemed"] == 0
    assert offline_sale("max") == 1000
