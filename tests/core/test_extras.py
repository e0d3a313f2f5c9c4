"""Messages, card upgrades, gifts, referral credit and cumulative_after (spec §7), both engines."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.pricing_helpers import card, line, quote, rule, rules

BIG = {"receipt_min": 1_000_000}


def msg(rid: str, text: str = "", **fields: Any) -> dict[str, Any]:
    return rule(rid, "message", text=text or f"text of {rid}", **fields)


def test_every_matching_message_in_file_order(make_engine) -> None:
    tree = rules(msg("big", "Issue a Silver card", when=BIG, priority=5),
                 msg("hello", "Hello", priority=0),
                 msg("anon", "Get a card", when={"card": False}),
                 msg("small", when={"receipt_min": 2_000_000}))
    q = quote(make_engine, tree, [line(price=1_200_000)], card=card())
    assert q["messages"] == [{"rule": "big", "text": "Issue a Silver card"},
                             {"rule": "hello", "text": "Hello"}]


UPGRADES = rules(msg("to-silver", upgrade_to="silver", when=BIG), msg("note"),
                 msg("to-gold", upgrade_to="gold"))


@pytest.mark.parametrize(("amount", "the_card", "expected"), [
    (1_200_000, card(type="standard"), "silver"),  # the first matching upgrade wins
    (500_000, card(type="standard"), "gold"),  # to-silver does not match
    (1_200_000, card(type="silver"), None),  # already silver: no change, no fall-through
    (500_000, card(type="gold"), None),
    (1_200_000, card(), "silver"),  # a card without a type
    (1_200_000, None, None),  # nothing to upgrade without a card
])
def test_upgrade_to(make_engine, amount: int, the_card, expected) -> None:
    q = quote(make_engine, UPGRADES, [line(price=amount)], card=the_card)
    assert q["card_type_after"] == expected


def test_gifts(make_engine) -> None:
    tree = rules(rule("bag", "gift", sku="BAG", name="Shopping bag", qty=2),
                 rule("pen", "gift", sku="PEN"),
                 rule("tv", "gift", sku="REMOTE", scope={"categories": ["tv"]}),
                 rule("vip", "gift", sku="WINE", when={"card": True}))
    q = quote(make_engine, tree, [line(price=5_000)])
    assert q["gifts"] == [{"rule": "bag", "sku": "BAG", "name": "Shopping bag", "qty": 2},
                          {"rule": "pen", "sku": "PEN", "name": "PEN", "qty": 1}]
    assert (q["subtotal"], q["total"], len(q["lines"])) == (5_000, 5_000, 1)  # gifts are free


REFERRERS = ["R1", "R2", "R3"]


@pytest.mark.parametrize(("credit", "expected"), [
    # to_pay 1 234 567: level 1 floor(37 037.01) = 37 037 → 370 points;
    # level 2 floor(12 345.67) = 12 345 → 123 points; R3 has no level
    ("points", [{"card": "R1", "level": 1, "points": 370, "cumulative": 0},
                {"card": "R2", "level": 2, "points": 123, "cumulative": 0}]),
    ("cumulative", [{"card": "R1", "level": 1, "points": 0, "cumulative": 37_037},
                    {"card": "R2", "level": 2, "points": 0, "cumulative": 12_345}]),
])
def test_referral_levels(make_engine, credit: str, expected) -> None:
    tree = rules(rule("ref", "referral", levels=[3, 1], credit=credit))
    q = quote(make_engine, tree, [line(price=1_234_567)], card=card(referrers=REFERRERS))
    assert q["referral"] == expected


def test_referral_stops_at_the_last_known_referrer(make_engine) -> None:
    tree = rules(rule("ref", "referral", levels=[3, 1, 0.5], credit="points"))
    q = quote(make_engine, tree, [line(price=100_000)], card=card(referrers=["R1"]))
    assert q["referral"] == [{"card": "R1", "level": 1, "points": 30, "cumulative": 0}]


def test_referral_is_paid_on_to_pay_after_redemption(make_engine) -> None:
    tree = rules(rule("ref", "referral", levels=[10], credit="cumulative"),
                 redeem={"max_percent": 50})
    q = quote(make_engine, tree, [line(price=100_000)],
              card=card(referrers=["R1"], balance=10_000), redeem="max")
    assert q["to_pay"] == 50_000
    assert q["referral"][0]["cumulative"] == 5_000  # 10 % of 50 000


@pytest.mark.parametrize(("the_card", "expected_level_1"), [
    (card(type="gold", referrers=["R1"]), 1_000),  # 'low' (priority 1) applies: 1 %
    (card(type="plain", referrers=["R1"]), 10_000),  # 'low' needs gold: 'high' (10 %)
])
def test_first_applying_referral_rule_by_priority(make_engine, the_card, expected_level_1):
    tree = rules(rule("high", "referral", levels=[10], credit="cumulative", priority=5),
                 rule("low", "referral", levels=[1], credit="cumulative", priority=1,
                      when={"card_types": ["gold"]}))
    q = quote(make_engine, tree, [line(price=100_000)], card=the_card)
    assert [r["cumulative"] for r in q["referral"]] == [expected_level_1]


def test_no_referral_without_a_card_or_referrers(make_engine) -> None:
    tree = rules(rule("ref", "referral", levels=[3], credit="points"))
    assert quote(make_engine, tree, [line()])["referral"] == []
    assert quote(make_engine, tree, [line()], card=card())["referral"] == []


@pytest.mark.parametrize(("the_card", "redeem", "expected"), [
    (card(cumulative=6_650_000), None, 7_580_000),  # spec §10.1: + total 930 000
    (card(), None, 930_000),
    (card(cumulative=100, balance=10**6), "max", 930_100),  # total, not to_pay
    (None, None, None),
])
def test_cumulative_after(make_engine, the_card, redeem, expected) -> None:
    tree = rules(rule("cum", "discount", tiers=[[0, 7]], basis="receipt"),
                 redeem={"max_percent": 50})
    q = quote(make_engine, tree, [line(price=1_000_000)], card=the_card, redeem=redeem)
    assert q["total"] == 930_000
    assert q["cumulative_after"] == expected
