"""Fixed-width big-endian keys, so LMDB's byte order is the order we want to walk in.

- u64 keys (outbox sequence numbers): 8 bytes big-endian.
- text keys (card numbers, skus, barcodes, operation ids): 1 length byte + UTF-8 (≤ 64 bytes),
  zero-padded to `TEXT_KEY_BYTES`; equal-length keys make a card's lot keys share an exact prefix.
- lot keys: card key + expiry (ms since the epoch, u64; `NEVER_MS` for lots that never expire;
  0 for debt lots so they come first) + lot id (u64). A cursor from `card key` walks one card's
  lots soonest-expiring first.
- hold keys: card key + checkout id key.
"""

from __future__ import annotations

import struct
from typing import Any

from terminal.ledger.errors import LedgerInputError

TEXT_CHARS_MAX = 64
TEXT_KEY_BYTES = 1 + TEXT_CHARS_MAX  # the limit is in UTF-8 bytes: short keys, small pages
U64_MAX = 2**64 - 1
NEVER_MS = U64_MAX
DEBT_MS = 0
LOT_KEY_BYTES = TEXT_KEY_BYTES + 16
HOLD_KEY_BYTES = 2 * TEXT_KEY_BYTES

_U64 = struct.Struct(">Q")
_U64_PAIR = struct.Struct(">QQ")


def u64(value: int) -> bytes:
    if not 0 <= value <= U64_MAX:
        raise LedgerInputError(f"value {value} does not fit an unsigned 64-bit key")
    return _U64.pack(value)


def read_u64(key: bytes | memoryview) -> int:
    value: int = _U64.unpack(key)[0]
    return value


_PADDING = tuple(bytes(TEXT_KEY_BYTES - 1 - size) for size in range(TEXT_CHARS_MAX + 1))


def text(value: Any, what: str = "id") -> bytes:
    """A text key; refuses empty, over-long or non-string values naming `what`."""
    if (
        type(value) is str
        and value.isascii()  # O(1) on a str; then one byte per character
        and 0 < len(value) <= TEXT_CHARS_MAX
        and "\x00" not in value
    ):
        return bytes((len(value),)) + value.encode("ascii") + _PADDING[len(value)]
    return _text_checked(value, what)


def _text_checked(value: Any, what: str) -> bytes:
    """`text` for everything but short ASCII strings: UTF-8 keys, and the refusals."""
    if not isinstance(value, str) or not value:
        raise LedgerInputError(f"{what}: must be a non-empty string, got {value!r}")
    raw = value.encode("utf-8")
    if len(raw) > TEXT_CHARS_MAX:
        raise LedgerInputError(f"{what} {value[:80]!r}: longer than {TEXT_CHARS_MAX} bytes (UTF-8)")
    if "\x00" in value:
        raise LedgerInputError(f"{what} {value[:80]!r}: contains a NUL character")
    return bytes((len(raw),)) + raw + bytes(TEXT_KEY_BYTES - 1 - len(raw))


def read_text(key: bytes | memoryview) -> str:
    size = key[0]
    return bytes(key[1 : 1 + size]).decode("utf-8")


def lot(card_key: bytes, expires_ms: int, lot_id: int) -> bytes:
    return card_key + _U64_PAIR.pack(expires_ms, lot_id)


def read_lot(key: bytes | memoryview) -> tuple[str, int, int]:
    """(card number, expiry ms, lot id) of a lot key."""
    if len(key) != LOT_KEY_BYTES:
        raise LedgerInputError(f"lot key of {len(key)} bytes, expected {LOT_KEY_BYTES}")
    expires_ms, lot_id = _U64_PAIR.unpack(key[TEXT_KEY_BYTES:])
    return read_text(key[:TEXT_KEY_BYTES]), expires_ms, lot_id


def name(value: Any, what: str) -> str:
    """`value` checked as a text key (card number, sku, id) and returned as the string it is."""
    text(value, what)
    checked: str = value
    return checked


def hold(card_key: bytes, checkout: str) -> bytes:
    return card_key + text(checkout, "checkout id")
