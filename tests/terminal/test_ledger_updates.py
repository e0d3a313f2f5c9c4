import pytest

from terminal.ledger import LedgerInputError, LedgerNotFoundError

from .conftest import NOW, add_card, assert_ok, lots_of, sell


def test_batch_applies_catalog_cards_balances_and_versions_atomically(ledger):
    batch = {
        "catalog": [
            {
                "sku": "A1",
                "barcodes": ["4006381333931"],
                "name": "Kettle",
                "price": 349900,
                "categories": ["appliances/kitchen"],
                "min_price": 100000,
            }
        ],
        "cards": [{"number": "C1", "type": "gold", "holder": "Ann", "version": 3, "balance": 500}],
        "versions": {"rules": "2026-11-20", "catalog": "77"},
    }
    result = ledger.apply_updates("u1", batch, NOW)
    assert result["products"] == 1 and result["cards_applied"] == 1
    assert ledger.product("4006381333931")["name"] == "Kettle"
    assert ledger.product("A1")["price"] == 349900
    card = ledger.card("C1", NOW)
    assert (card["type"], card["balance"], card["server_balance"], card["local_delta"]) == (
        "gold",
        500,
        500,
        0,
    )
    assert ledger.meta()["versions"] == {"rules": "2026-11-20", "catalog": "77"}
    assert ledger.apply_updates("u1", batch, NOW) == result  # redelivered: nothing changes
    assert ledger.card("C1", NOW)["balance"] == 500


def test_a_bad_entry_is_refused_alone(ledger):
    batch = {
        "catalog": [{"sku": "A1", "name": "Kettle", "price": 10}],
        "cards": [{"number": "C1", "version": 1}, {"number": "C2", "version": 0}],
    }
    result = ledger.apply_updates("u1", batch, NOW)
    assert result["cards_applied"] == 1 and result["refused_count"] == 1
    assert result["refused"][0]["key"] == "C2" and "card 1 field 'version'" in result["refused"][0]["reason"]
    assert ledger.product("A1")["name"] == "Kettle" and ledger.card("C1", NOW)["balance"] == 0
    with pytest.raises(LedgerNotFoundError):
        ledger.card("C2", NOW)
    with pytest.raises(LedgerInputError, match="versions: must be"):
        ledger.apply_updates("u2", {"cards": [], "versions": "v1"}, NOW)  # malformed whole: refused


def test_balance_correction_keeps_local_movements_and_skips_stale_versions(ledger, engine):
    add_card(ledger, "C1", 1000)
    quote, _ = sell(ledger, engine, "s1", "C1", [50000], redeem=100)
    local = quote["accrual"]["points"] - 100
    assert ledger.card("C1", NOW)["local_delta"] == local
    ledger.apply_updates("u2", {"balances": [{"number": "C1", "balance": 800, "version": 2}]}, NOW)
    card = ledger.card("C1", NOW)
    assert (card["server_balance"], card["local_delta"], card["balance"]) == (
        800,
        local,
        800 + local,
    )
    stale = ledger.apply_updates(
        "u3", {"balances": [{"number": "C1", "balance": 5, "version": 2}]}, NOW
    )
    assert stale["cards_stale"] == 1 and ledger.card("C1", NOW)["balance"] == 800 + local
    assert_ok(ledger)


def test_correction_below_the_lots_leaves_a_debt(ledger):
    add_card(ledger, "C1", 100)
    ledger.apply_updates("u2", {"balances": [{"number": "C1", "balance": -40, "version": 2}]}, NOW)
    assert [lot["points"] for lot in lots_of(ledger, "C1")] == [-40]
    assert_ok(ledger)


def test_product_update_moves_barcodes_and_delete_removes(ledger):
    ledger.apply_updates(
        "u1", {"catalog": [{"sku": "A", "barcodes": ["111"], "name": "a", "price": 1}]}, NOW
    )
    ledger.apply_updates(
        "u2", {"catalog": [{"sku": "A", "barcodes": ["222"], "name": "a", "price": 2}]}, NOW
    )
    assert ledger.product("222")["price"] == 2
    with pytest.raises(LedgerNotFoundError, match="product 111"):
        ledger.product("111")
    with pytest.raises(LedgerInputError, match="already belongs to sku A"):
        ledger.apply_updates(
            "u3", {"catalog": [{"sku": "B", "barcodes": ["222"], "name": "b", "price": 2}]}, NOW
        )
    ledger.apply_updates("u4", {"catalog": [{"sku": "A", "deleted": True}]}, NOW)
    with pytest.raises(LedgerNotFoundError):
        ledger.product("A")
    assert_ok(ledger)
