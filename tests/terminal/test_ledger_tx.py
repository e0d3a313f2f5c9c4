"""The write transaction's invariant without a walk: each card record's stored lot sum and count,
kept from lots read back at commit, checked against the balance, cross-checked by verify."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from terminal.ledger import LedgerInvariantError, codec, keys, lots, tx
from terminal.ledger.tx import Tx, write

from .conftest import NOW, add_card, assert_ok, lots_of, sell

LEDGER_SOURCES = Path(tx.__file__).parent


def _record(ledger, number):
    with ledger.store.env.begin() as txn:
        return codec.load(keys.text(number), txn.get(keys.text(number), db=ledger.store.dbs["cards"]))


def _rewrite(ledger, number, change):
    with ledger.store.env.begin(write=True) as txn:
        record = codec.load(keys.text(number), txn.get(keys.text(number), db=ledger.store.dbs["cards"]))
        change(record)
        txn.put(keys.text(number), codec.dump(keys.text(number), record), db=ledger.store.dbs["cards"])


def _lot(points, source="test"):
    return lots.encode(
        {"points": points, "available_from": None, "from_ms": 0, "expires_at": None, "source": source},
        "lot",
    )


def _stray_lot(ledger, number, points, lot_id=999):
    """A lot written behind the ledger's back (damage, or a bug that bypassed Tx)."""
    with ledger.store.env.begin(write=True) as txn:
        key = keys.lot(keys.text(number), keys.NEVER_MS, lot_id)
        txn.put(key, codec.seal(key, _lot(points)), db=ledger.store.dbs["lots"])


def _run(ledger, body, op_id="op-1"):
    def wrapped(t: Tx):
        body(t)
        t.event("test", type("At", (), {"ms": 1, "iso": NOW})(), {})
        return {}

    return write(ledger.store, op_id, "test", {}, wrapped)


def test_card_records_carry_the_sum_and_count_of_their_lots(ledger, engine):
    add_card(ledger, "C1", 100)
    ledger.adjust("a1", "C1", 40, "bonus", "tech", NOW, "2027-01-01T00:00:00+03:00")
    sell(ledger, engine, "s1", "C1", [10000], redeem=120)
    ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW)
    record, card = _record(ledger, "C1"), ledger.card("C1", NOW)
    assert record["lots_points"] == card["balance"]
    assert record["lots_count"] == len(lots_of(ledger, "C1"))
    assert_ok(ledger)


def test_a_lot_written_without_its_balance_is_refused_and_nothing_changes(ledger):
    add_card(ledger, "C1", 100)

    def body(t):
        t.card("C1")
        t.put_lot(keys.lot(keys.text("C1"), keys.NEVER_MS, 77), _lot(5))

    with pytest.raises(LedgerInvariantError, match=r"balance 100 .* sum of its lots 105"):
        _run(ledger, body)
    assert ledger.card("C1", NOW)["balance"] == 100 and len(lots_of(ledger, "C1")) == 1
    assert_ok(ledger)


def test_a_lot_moved_on_a_card_the_operation_never_loaded_is_caught(ledger):
    add_card(ledger, "C1", 100)
    add_card(ledger, "C2", 100)

    def body(t):
        t.card("C1")
        t.delete("lots", next(iter(lots_keys(t, "C2"))))

    with pytest.raises(LedgerInvariantError, match=r"card C2: balance 100 .* sum of its lots 0"):
        _run(ledger, body)


def lots_keys(t, number):
    prefix = keys.text(number)
    return [bytes(k) for k, _ in t.txn.cursor(db=t.dbs["lots"]) if bytes(k).startswith(prefix)]


def test_a_lot_of_the_wrong_sign_is_refused(ledger):
    add_card(ledger, "C1", 100)

    def body(t):
        t.card("C1")["local_delta"] -= 3
        t.lot_moved("C1", -3, {})  # the event's lots must match its delta (checked first)
        t.put_lot(keys.lot(keys.text("C1"), keys.NEVER_MS, 78), _lot(-3))

    with pytest.raises(LedgerInvariantError, match="holds -3 points"):
        _run(ledger, body)


def test_lots_are_only_written_through_put_lot(ledger):
    add_card(ledger, "C1", 100)

    def body(t):
        t.put("lots", keys.lot(keys.text("C1"), keys.NEVER_MS, 79), {"points": 1}, "lot")

    with pytest.raises(LedgerInvariantError, match="put_lot"):
        _run(ledger, body)


def test_no_module_writes_lots_past_the_transaction():
    """The stored sums are only true if every lot write is seen by Tx: nothing else may put or
    delete in the lots table (reads are fine)."""
    writes = re.compile(r"\.(put|delete|replace|pop|putmulti)\(")
    offenders = [
        f"{path.name}:{number}"
        for path in sorted(LEDGER_SOURCES.glob("*.py"))
        if path.name != "tx.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if 'dbs["lots"]' in line and writes.search(line)
    ]
    assert offenders == []


def test_a_card_from_an_older_build_gets_its_sums_on_its_first_write(ledger):
    add_card(ledger, "C1", 0)
    ledger.adjust("a1", "C1", 5, "bonus", "tech", NOW, "2027-01-01T00:00:00+03:00")

    def old(record):
        del record["lots_points"], record["lots_count"]

    _rewrite(ledger, "C1", old)
    assert_ok(ledger)  # no sums yet is not a problem
    ledger.expire("x1", "2099-01-01T00:00:00+03:00")  # deletes the lots first, loads the card after
    ledger.adjust("a2", "C1", 7, "bonus", "tech", NOW)
    record = _record(ledger, "C1")
    assert (record["lots_points"], record["lots_count"]) == (7, 1)
    assert_ok(ledger)


def test_an_older_card_whose_lots_do_not_add_up_is_still_refused(ledger):
    add_card(ledger, "C1", 100)

    def old(record):
        del record["lots_points"], record["lots_count"]

    _rewrite(ledger, "C1", old)
    _stray_lot(ledger, "C1", 9)
    with pytest.raises(LedgerInvariantError, match=r"balance 105 .* sum of its lots 114"):
        ledger.adjust("a1", "C1", 5, "bonus", "tech", NOW)


def test_a_new_card_over_stray_lots_is_refused(ledger):
    _stray_lot(ledger, "C9", 9)
    with pytest.raises(LedgerInvariantError, match=r"card C9: balance 0 .* sum of its lots 9"):
        add_card(ledger, "C9", 0)


def test_a_damaged_sum_is_found_by_verify_and_stops_the_next_write(ledger):
    add_card(ledger, "C1", 100)

    def damage(record):
        record["lots_points"] += 1

    _rewrite(ledger, "C1", damage)
    assert ledger.verify()["problems"] == [
        "card C1: its record says 101 points in 1 lots, the lots hold 100 in 1"
    ]
    with pytest.raises(LedgerInvariantError, match=r"balance 105 .* sum of its lots 106"):
        ledger.adjust("a1", "C1", 5, "bonus", "tech", NOW)


def test_a_lot_changed_behind_the_ledgers_back_is_found_by_verify(ledger):
    """Writes check the lots they write, not every lot of the card: damage to a lot nobody wrote
    is verify's to find (both the balance and the stored sum disagree with the walk)."""
    add_card(ledger, "C1", 100)
    _stray_lot(ledger, "C1", 9)
    assert ledger.verify()["problems"] == [
        "card C1: balance 100 but its lots add up to 109",
        "card C1: its record says 100 points in 1 lots, the lots hold 109 in 2",
    ]


def test_a_card_cannot_hold_more_lots_than_the_limit(ledger, monkeypatch):
    monkeypatch.setattr(tx, "LOTS_PER_CARD_MAX", 3)
    add_card(ledger, "C1", 100)
    ledger.adjust("a1", "C1", 1, "bonus", "tech", NOW, "2027-01-01T00:00:00+03:00")
    ledger.adjust("a2", "C1", 1, "bonus", "tech", NOW, "2027-02-01T00:00:00+03:00")
    with pytest.raises(LedgerInvariantError, match="more than 3 lots"):
        ledger.adjust("a3", "C1", 1, "bonus", "tech", NOW, "2027-03-01T00:00:00+03:00")
    assert _record(ledger, "C1")["lots_count"] == 3


def test_event_ids_are_time_ordered_and_a_forked_child_draws_its_own():
    import os

    first, second = tx.event_id(1_700_000_000_000), tx.event_id(1_700_000_000_001)
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first[:12] < second[:12]
    read, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id goes to the parent, which draws its own next one
        os.write(write_end, tx.event_id(1_700_000_000_002).encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child[:12] == tx.event_id(1_700_000_000_002)[:12]
    assert child[12:] != tx.event_id(1_700_000_000_002)[12:]
