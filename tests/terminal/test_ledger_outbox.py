import time

import pytest

from terminal.ledger import LedgerInputError

from .conftest import NOW, add_card, assert_ok, sell


def test_events_are_gap_free_time_ordered_and_acked_in_order(ledger, engine):
    add_card(ledger, "C1", 100)
    for i in range(5):
        sell(ledger, engine, f"s{i}", "C1", [10000 + i])
    events = ledger.outbox_pending()
    assert [e["seq"] for e in events] == list(range(1, 7))
    assert len({e["id"] for e in events}) == 6 and all(len(e["id"]) == 32 for e in events)
    assert all(e["epoch"] == ledger.meta()["epoch"] for e in events)
    assert ledger.backlog() == 6
    assert ledger.mark_acked(4) == {"acked_seq": 4, "newly_acked": 4}
    assert ledger.mark_acked(2) == {"acked_seq": 4, "newly_acked": 0}  # redelivered ack
    assert [e["seq"] for e in ledger.outbox_pending(10)] == [5, 6]
    assert ledger.backlog() == 2
    with pytest.raises(LedgerInputError, match="cannot ack 7"):
        ledger.mark_acked(7)
    with pytest.raises(LedgerInputError, match="limit"):
        ledger.outbox_pending(0)
    assert_ok(ledger)


def test_acking_moves_local_movements_to_the_server_balance(ledger, engine):
    add_card(ledger, "C1", 100)
    quote, _ = sell(ledger, engine, "s1", "C1", [10000])
    card = ledger.card("C1", NOW)
    assert card["local_delta"] == quote["accrual"]["points"]
    ledger.mark_acked(ledger.meta()["next_seq"] - 1)
    card = ledger.card("C1", NOW)
    assert (card["server_balance"], card["local_delta"]) == (100 + quote["accrual"]["points"], 0)
    assert_ok(ledger)


def test_each_new_ledger_gets_a_fresh_epoch_and_a_given_one_is_checked(tmp_path):
    from terminal.ledger import Ledger

    with Ledger.init(tmp_path / "a", "T01") as first:
        epoch = first.meta()["epoch"]
    time.sleep(0.002)
    with Ledger.init(tmp_path / "b", "T01") as second:  # the same terminal on a new disk
        assert second.meta()["epoch"] > epoch > 1_700_000_000_000
    with Ledger.init(tmp_path / "a", "T01") as again:  # init of an existing ledger opens it
        assert again.meta()["epoch"] == epoch
    with Ledger.init(tmp_path / "c", "T01", epoch=7) as given:
        assert given.meta()["epoch"] == 7
    for bad in (0, -1, True, 2**63, "7"):
        with pytest.raises(LedgerInputError, match="epoch"):
            Ledger.init(tmp_path / "d", "T01", epoch=bad)
    assert not (tmp_path / "d").exists()
