import pytest

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
