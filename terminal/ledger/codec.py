"""msgpack values with strict limits, the checksum every stored record carries, and the
content digest used for idempotent retries.

Checksum (ledger format 3): every value the ledger stores is `payload + CRC-32(key + payload)`
(4 bytes, big-endian; `seal` / `opened`). Covering the key too means a record that a bit flip
moved to another key fails its check as surely as one whose bytes changed. LMDB keeps no
checksums of its own, so this is what lets `verify` find a flipped bit in any record and every
read refuse a damaged one (`LedgerDamagedError`) instead of acting on it. zlib's CRC-32 is in the
standard library and costs well under a microsecond for a record of a few hundred bytes.

Limits: a stored value is at most `VALUE_BYTES_MAX`; unpacking refuses bigger buffers, longer
strings, arrays and maps than the ledger ever writes, so a damaged file cannot blow up memory.
The digest is the SHA-256 of canonical JSON (sorted keys, compact, UTF-8, no NaN): the same bytes
every build since the first has stored in the `ops` table, so retries keep matching across upgrades.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import zlib
from typing import Any

import msgpack
import orjson

from terminal.ledger.errors import LedgerDamagedError, LedgerInputError, LedgerInvariantError

VALUE_BYTES_MAX = 4 * 1024 * 1024
STR_BYTES_MAX = 64 * 1024
ARRAY_ITEMS_MAX = 100_000
MAP_ITEMS_MAX = 10_000
_CHECK = struct.Struct(">I")
CHECK_BYTES = _CHECK.size


# One Packer per thread, reused: msgpack.packb builds (and sizes a buffer for) a new one on
# every call. A Packer empties its buffer after each pack, a failed one included.
_packers = threading.local()


def _packer() -> msgpack.Packer:
    try:
        packer: msgpack.Packer = _packers.packer
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True, strict_types=False)
    return packer


def pack(value: Any, what: str = "value") -> bytes:
    try:
        data: bytes = _packer().pack(value)
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


def seal(key: bytes, payload: bytes) -> bytes:
    """The stored form of `payload` under `key`: the payload and its checksum."""
    return payload + _CHECK.pack(zlib.crc32(payload, zlib.crc32(key)))


def intact(key: bytes | memoryview, raw: bytes | memoryview) -> bool:
    return len(raw) >= CHECK_BYTES and zlib.crc32(
        memoryview(raw)[:-CHECK_BYTES], zlib.crc32(key)
    ) == _CHECK.unpack_from(raw, len(raw) - CHECK_BYTES)[0]


def opened(key: bytes | memoryview, raw: bytes | memoryview, what: str) -> bytes:
    """The payload of a stored record, refusing one whose checksum does not match."""
    if not intact(key, raw):
        raise LedgerDamagedError(
            f"{what}: the stored record fails its checksum (key {bytes(key).hex()[:40]}): the "
            "ledger file is damaged; nothing was done. Run `posterm ledger verify` and restore "
            "the ledger from its backup"
        )
    return bytes(raw[:-CHECK_BYTES])


def dump(key: bytes, value: Any, what: str = "value") -> bytes:
    """msgpack + checksum: what the ledger stores for `value` under `key`."""
    return seal(key, pack(value, what))


def load(key: bytes | memoryview, raw: bytes | memoryview, what: str = "value") -> Any:
    """The value of a stored record, checked (`opened`) then unpacked with the limits."""
    return unpack(opened(key, raw, what), what)


# msgpack's type bytes for float32 / float64: a packed value without either byte holds no float.
_FLOAT_TYPE_BYTES = (b"\xca", b"\xcb")


def _canonical_json(value: Any) -> bytes:
    """The definition of the canonical form; `digest` takes a faster road to the same bytes."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")  # a lone surrogate fails here (UnicodeEncodeError)
    except (TypeError, ValueError) as exc:
        raise LedgerInputError(f"request: cannot be stored: {exc}") from None


def _float_free(value: Any) -> bool:
    """True when `value` surely holds only types orjson writes as json does (no float anywhere).

    msgpack refuses the types json refuses (datetimes, sets, objects) and marks every float with
    one of two type bytes; those bytes may also occur inside other data, which only sends that
    value down the slow road. ~3 µs for a sale request (the json encoder alone takes ~18 µs)."""
    try:
        packed: bytes = _packer().pack(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return _FLOAT_TYPE_BYTES[0] not in packed and _FLOAT_TYPE_BYTES[1] not in packed


def same_content(stored: Any, asked: Any) -> bool:
    """Whether a retried request has the content of the stored one, whatever its dict key order.

    Equal msgpack bytes are equal content (msgpack keeps int, float, bool, None, text and bytes
    apart, like the canonical JSON); only when the bytes differ — keys in another order, or a
    different content — does the canonical digest decide, so the common retry costs one pack."""
    try:
        if pack(stored) == pack(asked):
            return True
        return digest(stored) == digest(asked)
    except LedgerInputError:
        return False  # what cannot be stored or digested is not the stored content


def digest(value: Any) -> bytes:
    """SHA-256 of a request's content, independent of dict key order (canonical JSON).

    For str, int (64-bit), bool, None, list, tuple and str-keyed dicts, orjson with sorted keys
    writes byte for byte what `_canonical_json` writes (test_ledger_codec checks it on generated
    values), ~7× faster. Floats are the JSON type it writes differently (exponent form, and NaN or
    Infinity as `null`, which would make NaN and None the same content); values that may hold one,
    and everything orjson refuses (integers beyond 64 bits, non-string keys, lone surrogates,
    nesting deeper than 254), take the json road, so the digest never depends on the road taken.
    """
    if _float_free(value):
        try:
            return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).digest()
        except orjson.JSONEncodeError:
            pass  # what orjson cannot write, json may: the definition decides
    return hashlib.sha256(_canonical_json(value)).digest()
