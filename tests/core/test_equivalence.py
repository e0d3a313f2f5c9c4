"""The compiled engine and the pure twin give identical quotes and refusals on generated inputs,
and every quote keeps the arithmetic invariants of the spec."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core
from core import fallback
from core.errors import PricingError
from core.inputs import read_card
from tests.conftest import _cengine
from tests.core.strategies import cards, carts, moments, redeem_requests, rules_trees

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _outcome(engine: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "quote", engine.quote(*args)
    except PricingError as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.skipif(_cengine is None, reason="compiled engine not built")
@SETTINGS
@given(tree=rules_trees(), cart=carts(), card=cards(odd_timestamps=True), now=moments,
       redeem=redeem_requests)
def test_compiled_and_pure_engines_agree(tree, cart, card, now, redeem) -> None:
    program = core.compile_rules(tree)
    compiled = _outcome(_cengine.Engine(program), cart, card, now, redeem)
    pure = _outcome(fallback.Engine(program), cart, card, now, redeem)
    assert compiled == pure


@pytest.mark.skipif(_cengine is None, reason="compiled engine not built")
@settings(max_examples=200, deadline=None)
@given(tree=rules_trees(), cart=carts(), garbage=st.sampled_from([
    ("price", -1), ("price", 1.5), ("price", True), ("price", 10**30), ("qty", 0), ("qty", 1.5),
    ("qty", "0.0001"), ("qty", "x"), ("qty", 10**7), ("sku", ""), ("sku", 5), ("categories", "a"),
    ("categories", None), ("categories", [1]), ("no_bonus", 1), ("min_price", -5), ("extra", 1),
    ("name", None), ("name", "Milk 1 l"),
]))
def test_engines_refuse_the_same_bad_lines(tree, cart, garbage) -> None:
    program = core.compile_rules(tree)
    field, value = garbage
    bad = {"store": cart["store"], "lines": [*cart["lines"], {"sku": "s1", "price": 100, "qty": 1}]}
    bad["lines"][-1][field] = value
    now = "2026-11-20T12:00:00+03:00"
    assert _outcome(_cengine.Engine(program), bad, None, now, None) == \
        _outcome(fallback.Engine(program), bad, None, now, None)


@SETTINGS
@given(tree=rules_trees(), cart=carts(), card=cards(), now=moments, redeem=redeem_requests)
def test_quote_invariants(engine_cls, tree, cart, card, now, redeem) -> None:
    quote = engine_cls(core.compile_rules(tree)).quote(cart, card, now, redeem)
    lines = quote["lines"]
    assert sum(line["discount"] for line in lines) == quote["discount"]
    assert quote["total"] == quote["subtotal"] - quote["discount"]
    assert sum(line["redeem_amount"] for line in lines) == quote["redeem"]["amount"]
    assert quote["to_pay"] == quote["total"] - quote["redeem"]["amount"]
    for line in lines:
        assert 0 <= line["discount"] <= line["amount"]
        assert line["paid"] == line["amount"] - line["discount"] - line["redeem_amount"] >= 0
        assert (line["discount"] > 0) == bool(line["rules"])
    available = read_card(card, now).available if card is not None else 0
    assert 0 <= quote["redeem"]["points"] <= quote["redeem"]["max_points"] <= available
    if quote["redeem"]["points"]:
        program = core.compile_rules(tree)
        assert quote["redeem"]["amount"] == quote["redeem"]["points"] * program.point_value
    assert quote["accrual"]["points"] >= 0
    by_rate: dict[int, list[int]] = {}
    for line in lines:
        if line["vat_rate"] is None:
            assert line["vat_amount"] == 0
        else:
            assert 0 <= line["vat_amount"] <= line["paid"]
            rate = by_rate.setdefault(line["vat_rate"], [0, 0])
            rate[0] += line["paid"]
            rate[1] += line["vat_amount"]
    assert quote["vat"] == [{"rate": r, "paid": p, "amount": a} for r, (p, a) in sorted(by_rate.items())]


def _returns_all(engine: Any, quote: dict[str, Any], cut: list[int]) -> list[dict[str, Any]]:
    """Return every line in up to two steps: first `cut[i]` thousandths of line i, then the rest."""
    refunds: list[dict[str, Any]] = []
    first = [{"line": i, "qty_milli": c} for i, c in enumerate(cut) if c > 0]
    rest = [{"line": i, "qty_milli": line["qty_milli"] - c}
            for i, (line, c) in enumerate(zip(quote["lines"], cut, strict=True))
            if line["qty_milli"] - c > 0]
    for step in (first, rest):
        if step:
            refunds.append(engine.refund(quote, {"lines": step, "previous": refunds}))
    return refunds


@SETTINGS
@given(tree=rules_trees(), cart=carts(), card=cards(), now=moments, redeem=redeem_requests,
       data=st.data())
def test_full_return_gives_back_exactly_the_sale(engine_cls, tree, cart, card, now, redeem, data):
    engine = engine_cls(core.compile_rules(tree))
    quote = engine.quote(cart, card, now, redeem)
    cut = [data.draw(st.integers(0, line["qty_milli"])) for line in quote["lines"]]
    refunds = _returns_all(engine, quote, cut)
    total = {key: sum(r[key] for r in refunds)
             for key in ("money", "points_restored", "points_clawed", "cumulative_decrease",
                         "vat_amount")}
    assert total == {
        "money": quote["to_pay"],
        "vat_amount": sum(line["vat_amount"] for line in quote["lines"]),
        "points_restored": quote["redeem"]["points"],
        "points_clawed": quote["accrual"]["points"],
        "cumulative_decrease": quote["total"],
    }
    for refund in refunds:
        for line in refund["lines"]:
            assert min(line["money"], line["points_restored"], line["points_clawed"],
                       line["vat_amount"]) >= 0


@pytest.mark.skipif(_cengine is None, reason="compiled engine not built")
@settings(max_examples=150, deadline=None)
@given(tree=rules_trees(), cart=carts(), card=cards(), garbage=st.sampled_from([
    ("card", "birth_date", "12-03"), ("card", "birth_date", "--02-30"), ("card", "birth_date", 19901120),
    ("card", "birth_date", "1990-02-29"), ("card", "issued_on", "2026-13-01"), ("card", "issued_on", 5),
    ("card", "tags", "staff"), ("card", "tags", [""]), ("card", "tags", ["t"] * 17),
    ("card", "cumulative", -1), ("cart", "coupons", "SPR-1"), ("cart", "coupons", [{"code": "A"}]),
    ("cart", "coupons", [{"code": "A", "series": "s"}] * 2), ("cart", "coupons", [{"code": 1, "series": "s"}]),
    ("cart", "coupons", [{"code": "A", "series": "s", "x": 1}]), ("cart", "coupons", None),
    ("line", "vat", 20.001), ("line", "vat", "20%"), ("line", "vat", 120), ("line", "vat", 7.5),
]))
def test_engines_refuse_the_same_bad_v2_inputs(tree, cart, card, garbage) -> None:
    """§12–§13 and §17 inputs: both engines accept and refuse alike, message for message."""
    program = core.compile_rules(tree)
    where, field, value = garbage
    card = dict(card or {"number": "C1"})
    cart = {**cart, "lines": [*cart["lines"], {"sku": "s1", "price": 100, "qty": 1}]}
    target = {"card": card, "cart": cart, "line": cart["lines"][-1]}[where]
    target[field] = value
    now = "2026-11-20T12:00:00+03:00"
    assert _outcome(_cengine.Engine(program), cart, card, now, None) == \
        _outcome(fallback.Engine(program), cart, card, now, None)
