"""Fuzzing the server's batch parser and the terminal's update/reply parsers: whatever the
bytes, the answer is a value or a ProtocolError — never another exception, never a hang."""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import wire

PARSERS = (wire.decode_batch, wire.decode_updates, wire.decode_reply)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=5)
    ),
    max_leaves=30,
)


def _only_protocol_errors(data: bytes) -> None:
    for parse in PARSERS:
        with contextlib.suppress(wire.ProtocolError):  # the allowed refusal; anything else fails
            parse(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _only_protocol_errors(data)


def _pack(value: Any) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return b"\xc0"


@FUZZ
@given(values)
def test_random_msgpack_values(value: Any) -> None:
    _only_protocol_errors(_pack(value))


fields = st.fixed_dictionaries(
    {},
    optional={
        "v": st.one_of(st.just(1), values),
        "terminal": st.one_of(st.just("T01"), values),
        "epoch": st.one_of(st.just(1), values),
        "first_seq": st.one_of(st.just(1), values),
        "last_seq": st.one_of(st.just(1), values),
        "prev_mac": st.one_of(st.just(b""), values),
        "events": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "id": st.one_of(st.just("0" * 32), values),
                    "epoch": st.one_of(st.just(1), values),
                    "seq": st.one_of(st.just(1), values),
                    "type": st.one_of(st.just("sale"), values),
                    "deltas": st.one_of(st.dictionaries(st.text(max_size=3), st.integers()), values),
                },
            ),
            max_size=3,
        ),
        "cursor": st.one_of(st.just(0), values),
        "more": st.one_of(st.just(False), values),
        "acked": values,
        "rules": values,
        "cards": values,
        "versions": values,
    },
)


@FUZZ
@given(fields)
def test_nearly_valid_maps(value: dict[str, Any]) -> None:
    _only_protocol_errors(_pack(value))


@FUZZ
@given(fields, st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=4))
def test_truncated_and_spliced(value: dict[str, Any], cut: int, junk: bytes) -> None:
    data = _pack(value)
    _only_protocol_errors(data[:cut])
    _only_protocol_errors(data[:cut] + junk + data[cut:])


def test_huge_declared_lengths_and_deep_nesting() -> None:
    huge = [
        b"\xdd\xff\xff\xff\xff",
        b"\xdf\xff\xff\xff\xff",
        b"\xdb\xff\xff\xff\xff",
        b"\xc6\xff\xff\xff\xff",
        b"\xdd\x00\x0f\xff\xff" + b"\xc0" * 10,
        b"\x91" * 100_000 + b"\xc0",
        b"\x81\xa1a" * 5000 + b"\xc0",
        b"\xc7\x05\x01abcde",
        b"\xd4\xff\x00" * 3,
    ]
    for data in huge:
        _only_protocol_errors(data)
