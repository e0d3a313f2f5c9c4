from terminal.ledger import codec, keys, lots

from .conftest import NOW, add_card, sell


def test_a_clean_ledger_verifies(ledger, engine):
    add_card(ledger, "C1", 100)
    sell(ledger, engine, "s1", "C1", [10000])
    ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW)
    result = ledger.verify()
    assert result["ok"] and (result["cards"], result["receipts"], result["returns"]) == (1, 1, 1)


def _tamper(ledger, fn):
    with ledger.store.env.begin(write=True) as txn:
        fn(txn, ledger.store.dbs)


def test_verify_finds_a_balance_that_differs_from_its_lots(ledger):
    add_card(ledger, "C1", 100)

    def bump(txn, dbs):
        key = keys.text("C1")
        card = codec.load(key, txn.get(key, db=dbs["cards"]))
        card["local_delta"] += 1
        txn.put(key, codec.dump(key, card), db=dbs["cards"])

    _tamper(ledger, bump)
    assert ledger.verify()["problems"] == ["card C1: balance 101 but its lots add up to 100"]


def test_verify_finds_a_negative_lot_and_an_outbox_gap(ledger):
    add_card(ledger, "C1", 100)
    ledger.adjust("a", "C1", 5, "x", "t", NOW)
    ledger.adjust("b", "C1", 5, "x", "t", NOW)

    def damage(txn, dbs):
        key = keys.lot(keys.text("C1"), 5, 99)
        txn.put(
            key,
            codec.seal(key, lots.encode(
                {
                    "points": -1,
                    "available_from": None,
                    "from_ms": 0,
                    "expires_at": None,
                    "source": "x",
                },
                "lot",
            )),
            db=dbs["lots"],
        )
        txn.delete(keys.u64(2), db=dbs["outbox"])

    _tamper(ledger, damage)
    problems = ledger.verify()["problems"]
    assert any("lot 99 holds -1 points" in p for p in problems)
    assert "outbox: gap, expected sequence 2, found 3" in problems


def test_verify_finds_a_return_without_its_receipt(ledger, engine):
    sell(ledger, engine, "s1", None, [100], qty=2)
    ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW)
    _tamper(ledger, lambda txn, dbs: txn.delete(keys.text("s1"), db=dbs["receipts"]))
    assert ledger.verify()["problems"] == ["return r1: receipt s1 is missing"]
