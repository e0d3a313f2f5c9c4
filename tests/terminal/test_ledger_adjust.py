import pytest

from terminal.ledger import LedgerBalanceError, LedgerInputError, LedgerNotFoundError

from .conftest import NOW, add_card, assert_ok


def test_adjust_up_and_down_with_reason_in_the_event(ledger):
    add_card(ledger, "C1", 100)
    assert ledger.adjust("a1", "C1", 50, "goodwill", "ivan", NOW)["balance"] == 150
    assert ledger.adjust("a2", "C1", -120, "duplicate card", "ivan", NOW)["balance"] == 30
    event = ledger.outbox_pending()[-1]
    assert (event["type"], event["points"], event["reason"], event["technician"]) == (
        "adjustment",
        -120,
        "duplicate card",
        "ivan",
    )
    assert_ok(ledger)


def test_adjust_cannot_make_a_debt(ledger):
    add_card(ledger, "C1", 100)
    with pytest.raises(LedgerBalanceError, match="card C1: has 100 unexpired points"):
        ledger.adjust("a1", "C1", -101, "x", "t", NOW)
    assert ledger.card("C1", NOW)["balance"] == 100


@pytest.mark.parametrize(
    "points, reason, message",
    [
        (0, "x", "must not be 0"),
        (10**10, "x", "points"),
        (5, "", "reason"),
        (5, "x" * 300, "reason"),
    ],
)
def test_adjust_refuses_bad_input(ledger, points, reason, message):
    add_card(ledger, "C1", 100)
    with pytest.raises(LedgerInputError, match=message):
        ledger.adjust("a1", "C1", points, reason, "t", NOW)


def test_adjust_of_an_unknown_card(ledger):
    with pytest.raises(LedgerNotFoundError, match="card C404"):
        ledger.adjust("a1", "C404", 5, "x", "t", NOW)
