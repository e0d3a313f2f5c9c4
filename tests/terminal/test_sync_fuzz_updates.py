"""Fuzzing the terminal's update path end to end: random bytes and random pages through
`wire.decode_updates` and `apply_page` into a real ledger — a page is applied or refused
(ProtocolError / SyncError) and a refused page changes nothing; never another exception."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import wire
from terminal.ledger import Ledger
from terminal.sync import SyncError
from terminal.sync.updates import apply_page

NOW = "2026-11-23T10:00:00+03:00"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.text(max_size=12),
    st.binary(max_size=8),
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=10,
)
card = st.fixed_dictionaries(
    {"number": st.one_of(st.sampled_from(["C1", "C2"]), value), "version": st.one_of(st.integers(0, 5), value)},
    optional={
        "balance": st.one_of(st.integers(-(10**6), 10**6), value),
        "type": value,
        "holder": value,
        "referrers": value,
        "cumulative": value,
        "blocked": value,
        "extra": value,
    },
)
product = st.fixed_dictionaries(
    {"sku": st.one_of(st.just("A1"), value)},
    optional={"price": value, "name": value, "barcodes": value, "min_price": value},
)
page = st.fixed_dictionaries(
    {"v": st.just(1), "cursor": st.integers(1, 10), "more": st.booleans()},
    optional={
        "cards": st.lists(card, max_size=3),
        "catalog": st.lists(product, max_size=2),
        "versions": st.one_of(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2), value),
        "acked": value,
        "rules": st.one_of(st.none(), value),
    },
)

OUTCOMES: dict[str, int] = {"applied": 0, "refused": 0}


@pytest.fixture(scope="module")
def ledger() -> Iterator[Ledger]:
    with tempfile.TemporaryDirectory(prefix="posterm-fuzz-") as tmp:
        led = Ledger.init(Path(tmp) / "led", "T01", sync=False)
        yield led
        led.close()


def _state(ledger: Ledger) -> Any:
    with ledger.store.env.begin() as txn:
        return {name: list(txn.cursor(db=db)) for name, db in ledger.store.dbs.items()}


@FUZZ
@given(page)
def test_random_pages_apply_or_change_nothing(ledger: Ledger, raw: dict[str, Any]) -> None:
    try:
        data = msgpack.packb(raw, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return
    before = _state(ledger)
    try:
        decoded = wire.decode_updates(data)
        apply_page(ledger, decoded, None, NOW)
        OUTCOMES["applied"] += 1
    except (wire.ProtocolError, SyncError):
        OUTCOMES["refused"] += 1
        assert _state(ledger) == before


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_are_refused(ledger: Ledger, data: bytes) -> None:
    with contextlib.suppress(wire.ProtocolError, SyncError):
        apply_page(ledger, wire.decode_updates(data), None, NOW)


def test_the_fuzzer_reached_both_outcomes() -> None:
    # Runs after the page fuzzer (file order): it must have applied some pages, not only refused.
    assert OUTCOMES["applied"] > 0 and OUTCOMES["refused"] > 0, OUTCOMES
