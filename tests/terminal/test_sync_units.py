"""Sync pieces without a server: backoff, batch building within limits, config refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from protocol import wire
from terminal.sync import Backoff, SyncConfig, SyncError
from terminal.sync.drain import build_batch
from terminal.sync.updates import cursor_state, read_cursor, write_atomic
from tests.central.events import complete, padding


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    top = Backoff(100, 1_000, rand=lambda: 1.0)
    assert [top.next_delay_ms() for _ in range(6)] == [100, 200, 400, 800, 1_000, 1_000]
    top.reset()
    assert top.next_delay_ms() == 100
    assert Backoff(100, 1_000, rand=lambda: 0.0).next_delay_ms() == 0
    many = Backoff(100, 1_000)
    assert all(0 <= many.next_delay_ms() <= 1_000 for _ in range(200))


def ev(seq: int, epoch: int = 1, pad: int = 0) -> dict:
    extra = {"lines": padding(pad)} if pad else {}
    return complete({"id": os.urandom(16).hex(), "epoch": epoch, "seq": seq, "type": "sale", "deltas": {}, **extra})


def test_batches_respect_count_bytes_and_epoch() -> None:
    body, sent = build_batch("T01", b"", [ev(i) for i in range(1, 1_501)])
    assert len(sent) == wire.BATCH_EVENTS_MAX and wire.decode_batch(body).last_seq == 1_000
    body, sent = build_batch("T01", b"", [ev(i, pad=3_000) for i in range(1, 1_001)])
    assert len(body) <= wire.BATCH_BYTES_MAX and 0 < len(sent) < 1_000
    _, sent = build_batch("T01", b"", [ev(1), ev(2), ev(1, epoch=2)])
    assert [e["seq"] for e in sent] == [1, 2]
    with pytest.raises(SyncError):
        build_batch("T01", b"", [ev(1, pad=wire.BATCH_BYTES_MAX)])


def test_config_refusals(tmp_path: Path) -> None:
    good = {"url": "http://127.0.0.1:1", "key": "ab" * 32, "state_file": str(tmp_path / "s.json")}
    assert SyncConfig.from_mapping(good).key == bytes.fromhex("ab" * 32)
    for bad in (
        {"key": "abc"},
        {"url": "ftp://x"},
        {"card_timeout_ms": 0},
        {"offline_redeem_max_points": -1},
        {"surprise": 1},
    ):
        with pytest.raises(SyncError):
            SyncConfig.from_mapping({**good, **bad})
    (tmp_path / "posterm.toml").write_text('[sync]\nurl = "http://127.0.0.1:1"\nkey_file = "missing.key"\n')
    with pytest.raises(SyncError, match="key_file"):
        SyncConfig.from_file(tmp_path / "posterm.toml")


def test_cursor_state(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    assert read_cursor(state) == 0
    write_atomic(state, b'{"cursor": 7}')
    assert read_cursor(state) == 7
    write_atomic(state, cursor_state(9, epoch=1_800_000_000_000))
    assert read_cursor(state, 1_800_000_000_000) == 9
    assert read_cursor(state, 1_900_000_000_000) == 0  # saved for another ledger: pull everything
    assert read_cursor(state) == 9
    for damaged in ("{", "[]", '{"epoch": 1}'):
        state.write_text(damaged)
        with pytest.raises(SyncError, match="damaged"):
            read_cursor(state)
