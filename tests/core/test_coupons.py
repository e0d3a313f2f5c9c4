"""Coupons and promo codes (spec §13, example §18.4) on both engines."""

from __future__ import annotations

import pytest

from core import compile_rules
from core.errors import CartError, RuleError
from tests.core.pricing_helpers import NOW, card, line, rule, rules

SERIES = [{"id": "spring", "single_use": True, "valid_from": "2026-03-01", "valid_to": "2026-03-31"},
          {"id": "visit", "single_use": False}]


def _quote(make_engine, tree, coupons, holder=None, lines=None):
    cart = {"lines": lines or [line("a", 50_000)], "coupons": coupons}
    return make_engine(tree).quote(cart, holder, NOW)


def test_example_18_4_a_coupon_rule(make_engine) -> None:
    tree = rules(rule("spring10", percent=10, when={"coupon": "spring"}), coupon_series=SERIES)
    result = _quote(make_engine, tree, [{"code": "SPR-1", "series": "spring"}])
    assert result["discount"] == 5_000
    assert result["coupons"] == [{"code": "SPR-1", "series": "spring", "used": True}]
    assert _quote(make_engine, tree, [])["discount"] == 0
    assert make_engine(tree).quote({"lines": [line("a", 50_000)]}, None, NOW)["coupons"] == []


def test_only_the_first_code_of_a_series_is_used(make_engine) -> None:
    tree = rules(rule("spring10", percent=10, when={"coupon": "spring"}), coupon_series=SERIES)
    result = _quote(make_engine, tree, [{"code": "V-1", "series": "visit"},
                                        {"code": "SPR-1", "series": "spring"},
                                        {"code": "SPR-2", "series": "spring"},
                                        {"code": "X-1", "series": "autumn"}])
    assert [c["used"] for c in result["coupons"]] == [False, True, False, False]
    assert result["discount"] == 5_000  # a second code gives nothing more


def test_a_coupon_is_unused_when_its_rule_does_not_contribute(make_engine) -> None:
    # the coupon rule loses to a bigger discount in the root `max` group
    tree = rules(rule("spring5", percent=5, when={"coupon": "spring"}), rule("all20", percent=20),
                 coupon_series=SERIES)
    result = _quote(make_engine, tree, [{"code": "SPR-1", "series": "spring"}])
    assert result["lines"][0]["rules"] == ["all20"]
    assert result["coupons"][0]["used"] is False


def test_accrual_message_and_gift_rules_use_coupons(make_engine) -> None:
    tree = rules(rule("double", "accrual", percent=2, when={"coupon": "visit"}),
                 rule("hello", "message", text="Thanks for coming back", when={"coupon": "spring"}),
                 coupon_series=SERIES, group=[{"id": "best", "kind": "accrual", "combine": "max"}])
    result = _quote(make_engine, tree, [{"code": "V-1", "series": "visit"},
                                        {"code": "SPR-1", "series": "spring"}], holder=card())
    assert result["accrual"]["points"] == 10
    assert [c["used"] for c in result["coupons"]] == [True, True]
    loser = rules(rule("base", "accrual", percent=5, group="best"),
                  rule("double", "accrual", percent=2, group="best", when={"coupon": "visit"}),
                  coupon_series=SERIES, group=[{"id": "best", "kind": "accrual", "combine": "max"}])
    result = _quote(make_engine, loser, [{"code": "V-1", "series": "visit"}], holder=card())
    assert result["accrual"]["points"] == 25 and result["coupons"][0]["used"] is False
    gift = rules(rule("bag", "gift", sku="BAG", when={"coupon": "visit"}), coupon_series=SERIES)
    result = _quote(make_engine, gift, [{"code": "V-1", "series": "visit"}])
    assert result["gifts"][0]["sku"] == "BAG" and result["coupons"][0]["used"] is True


def test_coupon_rules_issue_codes(make_engine) -> None:
    tree = rules(rule("next-visit", "coupon", series="visit", valid_days=30, when={"receipt_min": 40_000}),
                 coupon_series=SERIES)
    result = _quote(make_engine, tree, [])
    assert result["issued_coupons"] == [{"rule": "next-visit", "series": "visit", "valid_days": 30}]
    assert _quote(make_engine, tree, [], lines=[line("a", 100)])["issued_coupons"] == []


def test_v2_quote_fields_are_always_present(make_engine) -> None:
    result = make_engine(rules()).quote({"lines": []}, None, NOW)
    assert (result["coupons"], result["issued_coupons"], result["level"], result["vat"]) == ([], [], None, [])


@pytest.mark.parametrize(("tree", "problem"), [
    (rules(rule("r", percent=5, when={"coupon": "autumn"}), coupon_series=SERIES), "no \\[\\[coupon_series\\]\\]"),
    (rules(rule("r", "coupon", series="autumn", valid_days=3), coupon_series=SERIES), "'series'"),
    (rules(rule("r", "coupon", series="visit"), coupon_series=SERIES), "'valid_days': is missing"),
    (rules(rule("r", "coupon", series="visit", valid_days=3661), coupon_series=SERIES), "between 1 and 3660"),
    (rules(coupon_series=[{"id": "a"}, {"id": "a"}]), "used twice"),
    (rules(coupon_series=[{"id": "a", "single_use": "yes"}]), "true or false"),
    (rules(coupon_series=[{"id": "a", "valid_from": "2026-04-01", "valid_to": "2026-03-01"}]), "before valid_from"),
    (rules(coupon_series=[{"id": "a", "valid_to": "2026-02-30"}]), "no such date"),
])
def test_bad_series_and_coupon_rules_are_refused(tree, problem) -> None:
    with pytest.raises(RuleError, match=problem):
        compile_rules(tree, "c.toml")


def test_series_are_compiled_for_the_terminal() -> None:
    program = compile_rules(rules(coupon_series=SERIES))
    spring = program.coupon_series[0]
    assert (spring.id, spring.single_use, spring.valid_to - spring.valid_from) == ("spring", True, 30)
    assert program.coupon_series[1].valid_from == -1


@pytest.mark.parametrize(("coupons", "message"), [
    ("SPR-1", "'coupons' must be a list"),
    ([{"code": "A"}], "cart coupon 0: must be an object with 'code' and 'series'"),
    ([{"code": "A", "series": "s"}, {"code": "A", "series": "t"}], "listed twice"),
    ([{"code": "", "series": "s"}], "'code' must be a non-empty string"),
    ([{"code": f"C{i}", "series": "s"} for i in range(17)], "at most 16 coupons"),
])
def test_bad_coupons_are_refused(make_engine, coupons, message) -> None:
    with pytest.raises(CartError, match=message):
        _quote(make_engine, rules(), coupons)
