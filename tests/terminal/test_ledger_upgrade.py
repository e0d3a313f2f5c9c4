"""The one-time upgrade of format-1 and format-2 files (plain values) to format 3 (sealed)."""

from __future__ import annotations

import pytest

from terminal.ledger import Ledger, LedgerError, codec, keys
from terminal.ledger.store import DB_NAMES, META_KEY

from .conftest import NOW, add_card, assert_ok, sell

MAP_BYTES = 64 * 1024 * 1024


def _make_older(led: Ledger, fmt: int) -> None:
    """What a format-1/2 build left: every value without its checksum (and, for format 1,
    card records without their lot sums)."""
    with led.store.env.begin(write=True) as txn:
        for name in DB_NAMES:
            db = led.store.dbs[name]
            for key, raw in list(txn.cursor(db=db)):
                txn.put(key, codec.opened(bytes(key), bytes(raw), name), db=db)
        meta = codec.unpack(txn.get(META_KEY, db=led.store.dbs["meta"]))
        meta["format"] = fmt
        txn.put(META_KEY, codec.pack(meta), db=led.store.dbs["meta"])
        if fmt == 1:
            card_key = keys.text("C1")
            record = codec.unpack(txn.get(card_key, db=led.store.dbs["cards"]))
            del record["lots_points"], record["lots_count"]
            txn.put(card_key, codec.pack(record), db=led.store.dbs["cards"])


@pytest.mark.parametrize("fmt", [1, 2])
def test_an_older_file_is_sealed_once_at_its_first_open(tmp_path, engine, fmt):
    path = tmp_path / "ledger"
    with Ledger.init(path, "T01", map_size_bytes=MAP_BYTES) as led:
        led.apply_updates("cat", {"catalog": [{"sku": "P0", "barcodes": ["123"], "name": "n", "price": 5}]}, NOW)
        add_card(led, "C1", 100)
        sell(led, engine, "s1", "C1", [10000])
        card_before = led.card("C1", NOW)
        _make_older(led, fmt)
    with Ledger(path, MAP_BYTES) as led:
        meta = led.meta()
        assert (meta["format"], meta["upgraded_from"]) == (3, fmt)
        with led.store.env.begin() as txn:
            for name in DB_NAMES:
                for key, raw in txn.cursor(db=led.store.dbs[name]):
                    assert codec.intact(bytes(key), bytes(raw)), (name, bytes(key))
        assert_ok(led)
        card = led.card("C1", NOW)
        assert (card["balance"], card["lots"]) == (card_before["balance"], card_before["lots"])
        assert led.product("123")["sku"] == "P0"
        led.adjust("a1", "C1", 5, "bonus", "tech", NOW)  # a format-1 card gets its sums here
        assert led.card("C1", NOW)["balance"] == card_before["balance"] + 5
        assert_ok(led)
    with Ledger(path, MAP_BYTES) as led:  # once: the second open changes nothing
        assert led.meta()["upgraded_from"] == fmt and led.meta()["next_seq"] == meta["next_seq"] + 1


def test_an_upgrade_without_room_changes_nothing_and_says_what_to_do(tmp_path, engine, monkeypatch):
    path = tmp_path / "ledger"
    with Ledger.init(path, "T01", map_size_bytes=MAP_BYTES) as led:
        add_card(led, "C1", 100)
        _make_older(led, 2)
    before = (path / "data.mdb").read_bytes()
    from terminal.ledger import upgrade

    def full(*_args):
        import lmdb

        raise lmdb.MapFullError("full")

    monkeypatch.setattr(upgrade, "_seal_all", full)
    with pytest.raises(LedgerError, match=r"no room to upgrade.*raise map_size.*nothing was changed"):
        Ledger(path, MAP_BYTES)
    assert (path / "data.mdb").read_bytes() == before


def test_a_newer_format_is_refused(ledger):
    with ledger.store.env.begin(write=True) as txn:
        meta = codec.load(META_KEY, txn.get(META_KEY, db=ledger.store.dbs["meta"]))
        meta["format"] = 4
        txn.put(META_KEY, codec.dump(META_KEY, meta), db=ledger.store.dbs["meta"])
    path = ledger.store.path
    ledger.close()
    with pytest.raises(LedgerError, match="ledger format 4, this build reads 3"):
        Ledger(path, MAP_BYTES)
