"""msgpack values with strict limits, and the content digest used for idempotent retries.

Limits: a stored value is at most `VALUE_BYTES_MAX`; unpacking refuses bigger buffers, longer
strings, arrays and maps than the ledger ever writes, so a damaged file cannot blow up memory.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgpack

from terminal.ledger.errors import LedgerInputError, LedgerInvariantError

VALUE_BYTES_MAX = 4 * 1024 * 1024
STR_BYTES_MAX = 64 * 1024
ARRAY_ITEMS_MAX = 100_000
MAP_ITEMS_MAX = 10_000


def pack(value: Any, what: str = "value") -> bytes:
    try:
        data: bytes = msgpack.packb(value, use_bin_type=True, strict_types=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LedgerInputError(f"{what}: cannot be stored: {exc}") from None
    if len(data) > VALUE_BYTES_MAX:
        raise LedgerInputError(f"{what}: {len(data)} bytes, more than {VALUE_BYTES_MAX} allowed")
    return data


def unpack(data: bytes | memoryview, what: str = "value") -> Any:
    if len(data) > VALUE_BYTES_MAX:
        raise LedgerInvariantError(f"{what}: stored value of {len(data)} bytes is over the limit")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=STR_BYTES_MAX,
            max_bin_len=VALUE_BYTES_MAX,
            max_array_len=ARRAY_ITEMS_MAX,
            max_map_len=MAP_ITEMS_MAX,
        )
    except (ValueError, msgpack.UnpackException) as exc:
        raise LedgerInvariantError(f"{what}: stored value does not decode: {exc}") from None


def digest(value: Any) -> bytes:
    """SHA-256 of a request's content, independent of dict key order (canonical JSON)."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise LedgerInputError(f"request: cannot be stored: {exc}") from None
    return hashlib.sha256(text.encode("utf-8")).digest()
