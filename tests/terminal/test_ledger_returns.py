import pytest

from terminal.ledger import LedgerInputError, LedgerNotFoundError

from .conftest import NOW, add_card, assert_ok, lots_of, sell

LATER = "2027-03-01T10:00:00+03:00"


def test_partial_returns_add_up_to_the_sale_exactly(ledger, engine):
    add_card(ledger, "C1", 5000)
    quote, _ = sell(ledger, engine, "s1", "C1", [33333, 10001], redeem="max", qty=3)
    parts = [
        ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW),
        ledger.commit_return("r2", "s1", [{"line": 1, "qty": 2}, {"line": 0, "qty": 1}], NOW),
        ledger.commit_return("r3", "s1", [{"line": 0, "qty": 1}, {"line": 1, "qty": 1}], NOW),
    ]
    refunds = [p["refund"] for p in parts]
    assert sum(r["money"] for r in refunds) == quote["to_pay"]
    assert sum(r["points_restored"] for r in refunds) == quote["redeem"]["points"]
    assert sum(r["points_clawed"] for r in refunds) == quote["accrual"]["points"]
    card = ledger.card("C1", NOW)
    assert card["balance"] == 5000 and card["cumulative"] == 0
    assert_ok(ledger)


def test_a_full_return_gives_back_exactly_what_the_sale_took(ledger, engine):
    add_card(ledger, "C1", 2000)
    before = lots_of(ledger, "C1")
    sell(ledger, engine, "s1", "C1", [250000], redeem=700)
    ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW)
    assert lots_of(ledger, "C1") == before
    assert ledger.card("C1", NOW)["local_delta"] == 0


def test_restored_points_go_latest_expiring_first_and_expired_ones_are_annulled(ledger, engine):
    add_card(ledger, "C1")
    ledger.adjust("a", "C1", 200, "x", "t", NOW, "2027-01-01T00:00:00+03:00")
    ledger.adjust("b", "C1", 300, "x", "t", NOW, "2027-06-01T00:00:00+03:00")
    quote, _ = sell(ledger, engine, "s1", "C1", [100000], redeem=400, qty=2)
    assert quote["redeem"]["points"] == 400
    half = ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW)
    assert half["points"] == {
        "restored": 200,
        "annulled": 0,
        "clawed": half["refund"]["points_clawed"],
        "debt": 0,
    }
    by_expiry = {lot["expires_at"]: lot["points"] for lot in lots_of(ledger, "C1")}
    assert by_expiry["2027-06-01T00:00:00+03:00"] == 300  # the later lot is whole again
    assert "2027-01-01T00:00:00+03:00" not in by_expiry
    rest = ledger.commit_return("r2", "s1", [{"line": 0, "qty": 1}], LATER)
    assert rest["points"]["restored"] == 0 and rest["points"]["annulled"] == 200
    assert ledger.outbox_pending()[-1]["annulled"] == 200
    assert_ok(ledger)


def test_a_clawback_the_balance_cannot_cover_leaves_a_debt_paid_by_the_next_accrual(ledger, engine):
    add_card(ledger, "C1")
    quote, _ = sell(ledger, engine, "s1", "C1", [100000])
    earned = quote["accrual"]["points"]
    ledger.adjust("spend", "C1", -earned, "spent elsewhere", "t", NOW)
    result = ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW)
    assert result["points"]["debt"] == earned
    card = ledger.card("C1", NOW)
    assert card["balance"] == -earned and card["available"] == 0
    assert card["lots"] == [
        {
            "id": 0,
            "points": -earned,
            "available_from": None,
            "expires_at": None,
            "source": "debt",
            "debt": True,
        }
    ]
    assert ledger.card_for_quote("C1", NOW)["lots"][0]["points"] == -earned
    quote2, sale2 = sell(ledger, engine, "s2", "C1", [200000])
    assert sale2["debt_paid"] == earned
    assert ledger.card("C1", NOW)["balance"] == quote2["accrual"]["points"] - earned
    assert_ok(ledger)


def test_return_is_idempotent_and_checked(ledger, engine):
    add_card(ledger, "C1", 100)
    sell(ledger, engine, "s1", "C1", [1000], qty=2)
    first = ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW)
    assert ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW) == first
    assert len(ledger.receipt("s1")["refunds"]) == 1
    with pytest.raises(LedgerInputError, match="line 0 has 1 left to return, asked 2"):
        ledger.commit_return("r2", "s1", [{"line": 0, "qty": 2}], NOW)
    with pytest.raises(LedgerInputError, match="no line 5"):
        ledger.commit_return("r2", "s1", [{"line": 5, "qty": 1}], NOW)
    with pytest.raises(LedgerNotFoundError, match="receipt s9"):
        ledger.commit_return("r2", "s9", [{"line": 0, "qty": 1}], NOW)
    assert_ok(ledger)


def test_return_of_a_sale_without_card_moves_only_money(ledger, engine):
    quote, _ = sell(ledger, engine, "s1", None, [1999], qty=3)
    result = ledger.commit_return("r1", "s1", [{"line": 0, "qty_milli": 3000}], NOW)
    assert result["refund"]["money"] == quote["to_pay"] and result["points"] == {}
    assert_ok(ledger)


def test_returns_take_back_referral_credits_in_proportion_to_the_money(ledger, engine):
    add_card(ledger, "UP1", 0)
    add_card(ledger, "C1", 0, referrers=["UP1", "FAR"])  # FAR: only the server holds it
    quote, _ = sell(ledger, engine, "s1", "C1", [33333, 10001], qty=3)
    credits = {r["card"]: r["points"] for r in quote["referral"]}
    assert credits["UP1"] > 0 and credits["FAR"] > 0
    assert ledger.card("UP1", NOW)["balance"] == credits["UP1"]
    parts = [
        ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW),
        ledger.commit_return("r2", "s1", [{"line": 1, "qty": 2}, {"line": 0, "qty": 1}], NOW),
    ]
    returned = sum(p["refund"]["money"] for p in parts)
    taken = {c: sum(r["points"] for p in parts for r in p["referral"] if r["card"] == c) for c in credits}
    for card, credit in credits.items():  # after each return: round_half_up(credit × returned / paid)
        assert taken[card] == (2 * credit * returned + quote["to_pay"]) // (2 * quote["to_pay"])
    assert ledger.card("UP1", NOW)["balance"] == credits["UP1"] - taken["UP1"]
    last = ledger.commit_return("r3", "s1", [{"line": 0, "qty": 1}, {"line": 1, "qty": 1}], NOW)
    total = {c: taken[c] + sum(r["points"] for r in last["referral"] if r["card"] == c) for c in credits}
    assert total == credits  # the last return takes the exact remainder
    assert ledger.card("UP1", NOW)["balance"] == 0
    events = [e for e in ledger.outbox_pending() if e["type"] == "return"]
    far = [r for e in events for r in e["referral"] if r["card"] == "FAR"]
    assert all(not r["local"] for r in far) and sum(r["points"] for r in far) == credits["FAR"]
    assert_ok(ledger)


def test_a_referral_clawback_the_upline_cannot_cover_leaves_a_debt(ledger, engine):
    add_card(ledger, "UP1", 0)
    add_card(ledger, "C1", 0, referrers=["UP1"])
    quote, _ = sell(ledger, engine, "s1", "C1", [500000])
    credit = quote["referral"][0]["points"]
    ledger.adjust("spend", "UP1", -credit, "spent", "t", NOW)
    ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW)
    up = ledger.card("UP1", NOW)
    assert up["balance"] == -credit and any(lot["debt"] for lot in up["lots"])
    assert_ok(ledger)
