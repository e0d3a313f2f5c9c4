import pytest

from terminal.ledger import LedgerBalanceError, LedgerInputError, LedgerNotFoundError

from .conftest import NOW, add_card, assert_ok, sell

SOON = "2026-11-23T10:05:00+03:00"
LATER = "2026-11-23T10:10:00+03:00"


def test_a_hold_reduces_what_other_checkouts_can_use(ledger, engine):
    add_card(ledger, "C1", 1000)
    ledger.hold("h1", "C1", "K1", 700, NOW, SOON)
    assert ledger.card("C1", NOW)["available"] == 300
    other = engine.quote(
        {"store": "S01", "lines": [{"sku": "A", "price": 10**7, "qty": 1}]},
        ledger.card_for_quote("C1", NOW, "K2"),
        NOW,
        "max",
    )
    assert other["redeem"]["points"] == 300
    own = engine.quote(
        {"store": "S01", "lines": [{"sku": "A", "price": 10**7, "qty": 1}]},
        ledger.card_for_quote("C1", NOW, "K1"),
        NOW,
        "max",
    )
    assert own["redeem"]["points"] == 1000
    with pytest.raises(LedgerBalanceError, match="300 points free, 301 asked"):
        ledger.hold("h2", "C1", "K2", 301, NOW, SOON)


def test_the_sale_posts_its_hold(ledger, engine):
    add_card(ledger, "C1", 1000)
    ledger.hold("h1", "C1", "K1", 600, NOW, SOON)
    quote, _ = sell(ledger, engine, "s1", "C1", [200000], redeem=600, checkout="K1")
    card = ledger.card("C1", NOW)
    assert card["holds"] == [] and card["held"] == 0
    assert card["balance"] == 400 + quote["accrual"]["points"]
    assert ledger.receipt("s1")["hold_posted"] == 600
    assert_ok(ledger)


def test_a_sale_of_another_checkout_cannot_take_held_points(ledger, engine):
    add_card(ledger, "C1", 1000)
    quote = engine.quote(
        {"store": "S01", "lines": [{"sku": "A", "price": 10**7, "qty": 1}]},
        ledger.card_for_quote("C1", NOW),
        NOW,
        "max",
    )
    ledger.hold("h1", "C1", "K1", 500, NOW, SOON)
    with pytest.raises(LedgerBalanceError, match="500 points available"):
        ledger.commit_sale(
            "s1",
            quote,
            "C1",
            {"tenders": [{"method": "cash", "amount": quote["to_pay"]}]},
            NOW,
            checkout="K2",
        )


def test_void_releases_and_timeouts_expire(ledger):
    add_card(ledger, "C1", 1000)
    ledger.hold("h1", "C1", "K1", 400, NOW, SOON)
    ledger.void_hold("v1", "C1", "K1", NOW)
    assert ledger.card("C1", NOW)["available"] == 1000
    with pytest.raises(LedgerNotFoundError, match="K1 holds no points"):
        ledger.void_hold("v2", "C1", "K1", NOW)
    ledger.hold("h2", "C1", "K2", 400, NOW, SOON)
    assert ledger.card("C1", LATER)["available"] == 1000  # timed out: ignored
    assert ledger.expire("e1", LATER)["holds_dropped"] == 1
    assert ledger.card("C1", LATER)["holds"] == []
    assert [e["type"] for e in ledger.outbox_pending()][-3:] == ["hold", "hold_void", "hold"]
    assert_ok(ledger)


def test_hold_limits(ledger):
    add_card(ledger, "C1", 1000)
    with pytest.raises(LedgerInputError, match="within"):
        ledger.hold("h1", "C1", "K1", 1, NOW, "2026-11-25T10:00:00+03:00")
    with pytest.raises(LedgerInputError, match="points"):
        ledger.hold("h1", "C1", "K1", 0, NOW, SOON)
    ledger.hold("h1", "C1", "K1", 1, NOW, SOON)
    with pytest.raises(LedgerInputError, match="already holds"):
        ledger.hold("h2", "C1", "K1", 1, NOW, SOON)


def test_a_timed_out_hold_of_the_same_checkout_is_replaced(ledger):
    add_card(ledger, "C1", 1000)
    ledger.hold("h1", "C1", "K1", 100, NOW, SOON)
    ledger.hold("h2", "C1", "K1", 200, LATER, "2026-11-23T10:15:00+03:00")
    assert ledger.card("C1", LATER)["held"] == 200
