"""The ledger's card dict feeds the pricing core exactly: spec §10 example 2 end to end."""

import core

from .conftest import NOW, add_card, assert_ok, sell


def test_spec_example_2_through_the_ledger(ledger, engine):
    add_card(ledger, "C1", 10000)
    quote, result = sell(ledger, engine, "s1", "C1", [1200000], redeem="max")
    assert quote["redeem"] == {"points": 5700, "amount": 570000, "max_points": 5700}
    assert (quote["to_pay"], quote["accrual"]["points"]) == (570000, 114)
    assert result["balance"] == 10000 - 5700 + 114
    card = ledger.card("C1", NOW)
    assert (card["type"], card["cumulative"]) == ("silver", 1140000)
    # the next quote sees exactly what is left
    assert sum(lot["points"] for lot in ledger.card_for_quote("C1", NOW)["lots"]) == 4414
    assert_ok(ledger)


def test_referral_credit_as_cumulative(ledger):
    rules = {
        "program": {"point_value": 100},
        "rule": [{"id": "ref", "kind": "referral", "levels": [5], "credit": "cumulative"}],
    }
    eng = core.Engine(core.compile_rules(rules))
    add_card(ledger, "UP")
    add_card(ledger, "C1", referrers=["UP"])
    quote, _ = sell(ledger, eng, "s1", "C1", [100000])
    assert quote["referral"] == [{"card": "UP", "level": 1, "points": 0, "cumulative": 5000}]
    assert ledger.card("UP", NOW)["cumulative"] == 5000
    assert ledger.card("UP", NOW)["balance"] == 0
    assert_ok(ledger)
