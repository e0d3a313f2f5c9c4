"""Damage from outside the ledger: single flipped bits in every kind of stored record, records
moved to another key, truncated and empty files. Every one is found by `verify`, named, and
refused by the reads that meet it — never acted on, never a crash."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from terminal.ledger import Ledger, LedgerError, codec, keys
from terminal.ledger.api import verify_file
from terminal.ledger.errors import LedgerDamagedError
from terminal.ledger.store import DB_NAMES
from terminal.ledger.verify import record_name

from .conftest import NOW, add_card, assert_ok, sell

ROOT = Path(__file__).resolve().parents[2]
MAP_BYTES = 16 * 1024 * 1024


def _populate(led: Ledger, engine) -> None:
    """A ledger with a record in every sub-database, a debt lot and a hold among them."""
    led.apply_updates(
        "cat-1",
        {"catalog": [{"sku": "P0", "barcodes": ["4006381333931"], "name": "Milk", "price": 10000}]},
        NOW,
    )
    add_card(led, "C1", 0)
    add_card(led, "C2", 300)
    sell(led, engine, "s1", "C1", [10000])
    led.adjust("a-down", "C1", -led.card("C1", NOW)["balance"], "x", "t", NOW)
    led.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NOW)  # clawback → debt lot
    led.hold("h1", "C2", "K1", 50, NOW, "2026-11-23T12:00:00+03:00")
    led.register_card("e1", "7700000000099", "standard", "+79123456789",
                      {"terms_version": "1", "terms_sha256": "ab" * 32}, "S01", NOW)  # the phones index
    led.apply_updates("cpn-1", {"coupons": [{"code": "SPR-0001", "series": "spring"}]}, NOW)  # a coupon code


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, engine) -> Path:
    path = tmp_path_factory.mktemp("pristine") / "ledger"
    with Ledger.init(path, "T01", map_size_bytes=MAP_BYTES) as led:
        _populate(led, engine)
        assert_ok(led)
        with led.store.env.begin() as txn:
            assert all(txn.stat(db)["entries"] for db in led.store.dbs.values())
    return path


def _records(path: Path) -> list[tuple[str, bytes, bytes]]:
    with Ledger(path, MAP_BYTES) as led, led.store.env.begin() as txn:
        return [
            (name, bytes(k), bytes(v))
            for name in DB_NAMES
            for k, v in txn.cursor(db=led.store.dbs[name])
        ]


def _flips(path: Path) -> list[tuple[str, bytes, bytes, int]]:
    """Bits to flip: the first, a middle and the last bit of every record, and a bit of its
    checksum — 4 per record, every sub-database."""
    out = []
    for name, key, raw in _records(path):
        bits = len(raw) * 8
        for bit in sorted({0, bits // 2 + 3, bits - 1, bits - 9 - 8 * codec.CHECK_BYTES // 2}):
            out.append((name, key, raw, bit))
    return out


def _flip_in_file(path: Path, raw: bytes, bit: int) -> None:
    """Flip `bit` of every copy of `raw` in data.mdb (the live one and any stale page)."""
    data_file = path / "data.mdb"
    data = bytearray(data_file.read_bytes())
    at, found = data.find(raw), 0
    while at >= 0:
        data[at + bit // 8] ^= 1 << (bit % 8)
        found += 1
        at = data.find(raw, at + 1)
    assert found, "the record's bytes are not in the file"
    data_file.write_bytes(bytes(data))


def test_every_single_bit_flip_in_every_kind_of_record_is_found_and_named(pristine, tmp_path):
    flips = _flips(pristine)
    assert len(flips) >= 60 and {f[0] for f in flips} == set(DB_NAMES)
    for i, (name, key, raw, bit) in enumerate(flips):
        copy = tmp_path / f"flip-{i}"
        shutil.copytree(pristine, copy)
        _flip_in_file(copy, raw, bit)
        result = verify_file(copy, MAP_BYTES)
        assert not result["ok"], (name, key, bit)
        named = record_name(name, key)
        assert any(named in p and "checksum" in p for p in result["problems"]), (named, result)
        shutil.rmtree(copy)


def test_a_read_that_meets_a_damaged_record_refuses_and_writes_nothing(pristine, tmp_path, engine):
    records = {(n, k): v for n, k, v in _records(pristine)}
    cases = [
        ("cards", keys.text("C1"), lambda led: led.card("C1", NOW)),
        ("lots", None, lambda led: led.card_for_quote("C1", NOW)),
        ("catalog", keys.text("P0"), lambda led: led.product("4006381333931")),
        ("barcodes", keys.text("4006381333931"), lambda led: led.product("4006381333931")),
        ("receipts", keys.text("s1"), lambda led: led.receipt("s1")),
        ("holds", None, lambda led: led.card("C2", NOW)),
        ("outbox", keys.u64(1), lambda led: led.outbox_pending(10)),
        ("cards", keys.text("C2"), lambda led: led.adjust("a-new", "C2", 5, "x", "t", NOW)),
    ]
    for i, (name, key, read) in enumerate(cases):
        if key is None:
            key = next(k for n, k in records if n == name)
        copy = tmp_path / f"read-{i}"
        shutil.copytree(pristine, copy)
        _flip_in_file(copy, records[(name, key)], 12)
        before = (copy / "data.mdb").read_bytes()
        with Ledger(copy, MAP_BYTES) as led, pytest.raises(
            LedgerDamagedError, match=r"fails its checksum.*ledger verify"
        ):
            read(led)
        assert (copy / "data.mdb").read_bytes() == before, name


def test_a_record_moved_to_another_key_fails_its_check(ledger):
    add_card(ledger, "C1", 100)
    with ledger.store.env.begin(write=True) as txn:
        db = ledger.store.dbs["cards"]
        raw = txn.get(keys.text("C1"), db=db)
        txn.delete(keys.text("C1"), db=db)
        txn.put(keys.text("C3"), raw, db=db)  # "1" → "3": one flipped bit in the key
    problems = ledger.verify()["problems"]
    assert "cards: C3: the record fails its checksum (damaged)" in problems
    with pytest.raises(LedgerDamagedError, match="card C3"):
        ledger.card("C3", NOW)


def _posterm(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POSTERM_PURE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "terminal.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_verify_exits_0_sound_1_damaged_2_unusable(pristine, tmp_path):
    copy = tmp_path / "ledger"
    shutil.copytree(pristine, copy)
    assert _posterm("ledger", "verify", "--ledger", str(copy)).returncode == 0
    name, key, raw = next(r for r in _records(copy) if r[0] == "lots")
    _flip_in_file(copy, raw, 40)
    done = _posterm("ledger", "verify", "--ledger", str(copy))
    assert done.returncode == 1 and "PROBLEMS" in done.stdout and record_name(name, key) in done.stdout
    meta = next(r for r in _records(pristine) if r[0] == "meta")
    _flip_in_file(copy, meta[2], 30)
    done = _posterm("ledger", "verify", "--ledger", str(copy))
    assert done.returncode == 1 and "meta record ledger: the record fails its checksum" in done.stdout
    for unusable in (tmp_path / "nowhere", tmp_path):
        done = _posterm("ledger", "verify", "--ledger", str(unusable))
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no ledger here" in done.stderr


@pytest.mark.parametrize("size", [0, 100, 4096, 8192, "half", "one page short"])
def test_a_truncated_or_empty_file_is_refused_with_a_message_never_a_sigbus(pristine, tmp_path, size):
    copy = tmp_path / "ledger"
    shutil.copytree(pristine, copy)
    data_file = copy / "data.mdb"
    full = data_file.stat().st_size
    page = 4096
    cut = {"half": full // 2, "one page short": full - page}.get(size, size)
    os.truncate(data_file, cut)
    with pytest.raises(LedgerDamagedError, match=r"empty|truncated|not a ledger file"):
        Ledger(copy, MAP_BYTES)
    assert data_file.stat().st_size == cut  # not recreated, not extended
    done = _posterm("ledger", "verify", "--ledger", str(copy))
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout, done
    assert "PROBLEMS" in done.stdout
    done = _posterm("ledger", "card", "C1", "--ledger", str(copy))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "restore" in done.stderr and "Traceback" not in done.stderr
    assert data_file.stat().st_size == cut


def test_an_empty_file_may_be_started_again_only_by_init(tmp_path):
    path = tmp_path / "ledger"
    path.mkdir()
    (path / "data.mdb").write_bytes(b"")
    with pytest.raises(LedgerError, match=r"empty.*ledger init"):
        Ledger(path, MAP_BYTES)
    with Ledger.init(path, "T01", map_size_bytes=MAP_BYTES) as led:
        assert led.verify()["ok"]
