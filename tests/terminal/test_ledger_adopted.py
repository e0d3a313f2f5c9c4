"""Receipts of other terminals adopted from the server's copy (terminal/ledger/adopted.py)."""

import pytest

from terminal.ledger import LedgerInputError, LedgerNotFoundError

from .conftest import NOW, add_card, assert_ok

LINE = {"sku": "P0", "qty_milli": 2000, "price": 5000, "amount": 10000, "discount": 500,
        "redeem_amount": 1000, "paid": 8500, "rules": ["std-5"]}
SALE = {"receipt": "T09-s1", "terminal": "T09", "epoch": 1, "seq": 7, "at": NOW, "card": "C1",
        "card_type": "standard", "subtotal": 10000, "discount": 500, "total": 9500, "to_pay": 8500,
        "tenders": [{"method": "cash", "amount": 8500}], "redeemed": 10, "redeemed_money": 1000,
        "accrued": 170, "referral": [{"card": "UP", "level": 1, "points": 25, "cumulative": 0, "local": False}],
        "lines": [LINE], "gifts": []}


def test_an_adopted_receipt_is_returned_like_our_own(ledger):
    add_card(ledger, "C1", 500)
    add_card(ledger, "UP", 25)
    assert ledger.adopt_receipt(SALE, NOW)["adopted"] is True
    assert ledger.adopt_receipt(SALE, NOW)["adopted"] is True  # a retry: the first result, nothing new
    done = ledger.commit_return("r1", "T09-s1", [{"line": 0, "qty": 2}], NOW)
    assert (done["refund"]["money"], done["points"]["restored"], done["points"]["clawed"]) == (8500, 10, 170)
    assert done["referral"] == [{"card": "UP", "points": 25, "cumulative": 0, "local": True}]
    assert ledger.card("C1", NOW)["balance"] == 500 + 10 - 170
    assert ledger.card("UP", NOW)["balance"] == 0
    assert ledger.outbox_pending()[-1]["type"] == "return"
    assert_ok(ledger)


@pytest.mark.parametrize(("change", "message"), [
    ({"to_pay": 9000}, "does not add up"),
    ({"lines": None}, "no lines"),
    ({"lines": [{**LINE, "paid": -1}]}, "paid"),
    ({"tenders": [{"method": "cash", "amount": 1}]}, "tender"),
    ({"extra": 1}, "unknown field"),
])
def test_a_bad_server_receipt_is_refused_and_nothing_is_stored(ledger, change, message):
    add_card(ledger, "C1", 500)
    with pytest.raises(LedgerInputError, match=message):
        ledger.adopt_receipt({**SALE, **change}, NOW)
    assert ledger.receipt("T09-s1") is None


def test_the_card_must_be_here_first(ledger):
    with pytest.raises(LedgerNotFoundError):
        ledger.adopt_receipt(SALE, NOW)
