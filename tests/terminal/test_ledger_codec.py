import datetime
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terminal.ledger import codec
from terminal.ledger.errors import LedgerInputError, LedgerInvariantError


def test_round_trip():
    value = {"a": 1, "b": [1, "x", None, {"c": b"\x00"}], "d": -(10**15)}
    assert codec.unpack(codec.pack(value)) == value


def test_pack_refuses_what_msgpack_cannot_hold():
    with pytest.raises(LedgerInputError, match="quote"):
        codec.pack({"x": object()}, "quote")
    with pytest.raises(LedgerInputError, match="bytes"):
        codec.pack("x" * (codec.VALUE_BYTES_MAX + 1))


def test_unpack_refuses_garbage_and_oversized_containers():
    with pytest.raises(LedgerInvariantError, match="card 7"):
        codec.unpack(b"\xc1", "card 7")
    big = codec.pack([0] * (codec.ARRAY_ITEMS_MAX + 1))
    with pytest.raises(LedgerInvariantError):
        codec.unpack(big)


def test_digest_ignores_key_order_but_not_values():
    assert codec.digest({"a": 1, "b": {"c": 2, "d": 3}}) == codec.digest(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )
    assert codec.digest({"a": 1}) != codec.digest({"a": 2})


def _old_digest(value):
    """The digest every earlier build stored (json's canonical form), for comparison."""
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    ).digest()


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    | st.dictionaries(st.integers(-3, 3), inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(_values)
def test_digest_is_byte_for_byte_the_json_digest(value):
    """Whichever road `digest` takes, it answers what json's canonical form answers (or refuses
    what json refuses): op records written by earlier builds keep matching their retries."""
    try:
        expected = _old_digest(value)
    except (TypeError, ValueError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        with pytest.raises(LedgerInputError):
            codec.digest(value)
        return
    assert codec.digest(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"b": "ü\x7f\u2028\x00\x1f\"\\/", "a": [1, -(2**63), 2**64 - 1, True, None, ()]},
        {"quote": {"lines": [{"sku": "P1", "paid": 10, "rules": ["std-5"]}]}, "checkout": None},
        {"big": 2**64, "float": 1e16, "small": 1e-7, "keys": {1: "x", -2: "y"}},
    ],
)
def test_digest_matches_json_on_edge_values(value):
    assert codec.digest(value) == _old_digest(value)


def test_digest_refuses_nan_and_keeps_none_apart_from_it():
    with pytest.raises(LedgerInputError, match="cannot be stored"):
        codec.digest({"x": float("nan")})
    with pytest.raises(LedgerInputError, match="cannot be stored"):
        codec.digest({"x": "\ud800"})
    with pytest.raises(LedgerInputError, match="cannot be stored"):
        codec.digest({"x": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)})
    assert codec.digest({"x": None}) != codec.digest({"x": 0}) != codec.digest({"x": 0.0})


def test_digest_ignores_key_order_at_every_depth():
    a = {"quote": {"redeem": {"points": 1, "amount": 2}, "lines": [{"a": 1, "b": [{"y": 1, "x": 2}]}]}}
    b = {"quote": {"lines": [{"b": [{"x": 2, "y": 1}], "a": 1}], "redeem": {"amount": 2, "points": 1}}}
    assert codec.digest(a) == codec.digest(b) == _old_digest(a)


def test_same_content_ignores_key_order_but_not_types():
    stored = {"a": [1, {"x": None, "y": "ü"}], "b": True}
    assert codec.same_content(stored, {"b": True, "a": [1, {"y": "ü", "x": None}]})
    assert codec.same_content(stored, {"a": (1, {"x": None, "y": "ü"}), "b": True})  # a list either way
    assert not codec.same_content(stored, {"a": [1.0, {"x": None, "y": "ü"}], "b": True})
    assert not codec.same_content(stored, {"a": [1, {"x": None, "y": "ü"}], "b": 1})
    assert not codec.same_content(stored, {"a": [1, {"x": None}], "b": True})
    assert not codec.same_content(stored, {"a": [1, {"x": None, "y": "ü"}], "b": True, "c": {1}})


def test_a_failed_pack_leaves_nothing_behind_for_the_next():
    # pack reuses one Packer per thread: a value that fails half-way must not leak its bytes
    with pytest.raises(LedgerInputError):
        codec.pack({"a": "written first", "b": object()})
    assert codec.pack({"c": 1}) == b"\x81\xa1c\x01"
