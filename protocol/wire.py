"""The wire format shared by the terminal (`terminal.sync`) and the central server (`central`).

Everything that crosses the network is one msgpack map, authenticated by HMAC-SHA256 over the
exact body bytes with the terminal's key, carried hex-encoded in the `X-Posterm-MAC` header.
Requests without a body (GET) are authenticated over `METHOD PATH?QUERY`. Replies are signed
with the same key so the terminal never marks events acked on a forged reply.
Full contract: docs/protocol.md.

Limits (exceeding one is a `ProtocolError`, never a slowdown): `BATCH_EVENTS_MAX` events and
`BATCH_BYTES_MAX` bytes per batch; every decode uses a fresh bounded `msgpack.Unpacker` with
string/bin/array/map caps, strict (str-only) map keys and a nesting-depth check.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgpack

from protocol import fastcheck, schemas
from protocol.schemas import DELTA_POINTS_MAX as DELTA_POINTS_MAX  # re-exported: the limits live in schemas
from protocol.schemas import LOT_ENTRIES_MAX as LOT_ENTRIES_MAX
from protocol.schemas import card_number_ok as card_number_ok

VERSION = 1
BATCH_EVENTS_MAX = 1_000
BATCH_BYTES_MAX = 1024 * 1024
UPDATES_BYTES_MAX = 8 * 1024 * 1024
REPLY_BYTES_MAX = 64 * 1024
CARD_REPLY_BYTES_MAX = 2 * 1024 * 1024  # a card lookup carries the card's lots
UPDATES_ENTRIES_MAX = 10_000
STR_BYTES_MAX = 64 * 1024
RULES_BYTES_MAX = 1024 * 1024
BIN_BYTES_MAX = 4096
ARRAY_ITEMS_MAX = 10_000
MAP_ITEMS_MAX = 10_000
DEPTH_MAX = 12
EVENT_FIELDS_MAX = 64
TERMINAL_ID_CHARS_MAX = 64
SEQ_MAX = 2**63 - 1
MAC_BYTES = 32
KEY_BYTES = 32

MAC_HEADER = "X-Posterm-MAC"
TERMINAL_HEADER = "X-Posterm-Terminal"
CONTENT_TYPE = "application/msgpack"

BATCH_FIELDS = frozenset({"v", "terminal", "epoch", "first_seq", "last_seq", "prev_mac", "events"})
EVENT_REQUIRED = ("id", "epoch", "seq", "type")
UPDATE_FIELDS = frozenset({"v", "cursor", "more", "acked", "rules", "catalog", "cards", "balances", "versions",
                           "coupons", "reset", "head"})
_NO_DELTAS: dict[str, int] = {}
_ID_RE = re.compile(r"[0-9a-f]{32}")
_TERMINAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ProtocolError(Exception):
    """A message broke the protocol. `status` is the HTTP status the server answers with."""

    status = 400
    code = "malformed"


class AuthError(ProtocolError):
    """Missing, malformed or wrong MAC, or an unknown terminal: nothing was looked at further."""

    status = 401
    code = "auth"


class TooLargeError(ProtocolError):
    status = 413
    code = "too_large"


@dataclass(frozen=True)
class Batch:
    terminal: str
    epoch: int
    first_seq: int
    last_seq: int
    prev_mac: bytes
    events: list[dict[str, Any]]
    # The exact msgpack bytes of each event, as sent: the server stores them without re-packing.
    raw_events: list[bytes] | None = None


# ---------------------------------------------------------------- MACs


def sign(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def request_bytes(method: str, path_qs: str) -> bytes:
    """What a bodiless request's MAC covers."""
    return f"{method.upper()} {path_qs}".encode()


def verify(key: bytes, data: bytes, mac_hex: str | None) -> bytes:
    """Check `mac_hex` over `data`; returns the raw MAC (the next batch's `prev_mac`)."""
    if not mac_hex or len(mac_hex) != 2 * MAC_BYTES:
        raise AuthError(f"{MAC_HEADER} header missing or not {2 * MAC_BYTES} hex digits")
    try:
        given = bytes.fromhex(mac_hex)
    except ValueError:
        raise AuthError(f"{MAC_HEADER} header is not hex") from None
    wanted = hmac.new(key, data, hashlib.sha256).digest()
    if not hmac.compare_digest(given, wanted):
        raise AuthError("MAC does not match the body (wrong key or altered bytes)")
    return given


def check_terminal_id(value: Any) -> str:
    if not isinstance(value, str) or not _TERMINAL_RE.fullmatch(value):
        raise ProtocolError(f"terminal id {value!r:.80} is not 1..64 of [A-Za-z0-9._-]")
    return value


# ---------------------------------------------------------------- bounded msgpack


def pack(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A batch decodes into thousands of fresh containers, and without this the cyclic collector
    runs dozens of times per batch over them for nothing (msgpack's own advice for big
    messages). Re-enabled by whoever disabled it, so concurrent decoders never leave it off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _unpacker(bytes_max: int, str_max: int) -> msgpack.Unpacker:
    # A fresh Unpacker per message: no state or buffer survives from one peer message to the next.
    return msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        max_buffer_size=max(bytes_max, 1),
        max_str_len=str_max,
        max_bin_len=BIN_BYTES_MAX,
        max_array_len=ARRAY_ITEMS_MAX,
        max_map_len=MAP_ITEMS_MAX,
        max_ext_len=0,
    )


def _check_size(data: Any, bytes_max: int) -> None:
    if not isinstance(data, (bytes, bytearray)):
        raise ProtocolError("body is not bytes")
    if len(data) > bytes_max:
        raise TooLargeError(f"body of {len(data)} bytes, more than {bytes_max} allowed")


def _check_end(unpacker: msgpack.Unpacker, size: int) -> None:
    if unpacker.tell() != size:
        raise ProtocolError(f"{size - unpacker.tell()} trailing bytes after the message")


def unpack(data: bytes, bytes_max: int, str_max: int = STR_BYTES_MAX) -> Any:
    """Decode exactly one msgpack value from `data` with every limit on; ProtocolError otherwise."""
    _check_size(data, bytes_max)
    unpacker = _unpacker(bytes_max, str_max)
    try:
        with _gc_paused():
            unpacker.feed(data)
            value = unpacker.unpack()
        _check_end(unpacker, len(data))
    except msgpack.OutOfData:
        raise ProtocolError("truncated msgpack") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        # ValueError covers ExtraData, FormatError, StackError and the length caps.
        raise ProtocolError(f"bad msgpack: {type(exc).__name__}: {exc!s:.200}") from None
    _check_depth(value)
    return value


def _check_depth(value: Any) -> None:
    # Iterative (no recursion to exhaust); only containers are pushed, scalars are skipped. The
    # unpacker makes exact dicts and lists, so exact type tests are enough (and the hot path).
    if type(value) is not dict and type(value) is not list:
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > DEPTH_MAX:
            raise ProtocolError(f"nesting deeper than {DEPTH_MAX} levels")
        for child in item.values() if type(item) is dict else item:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))


def _int(value: Any, what: str, low: int = 0, high: int = SEQ_MAX) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ProtocolError(f"{what} must be an integer {low}..{high}, got {value!r:.40}")
    return value


def _map(value: Any, what: str, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a map, got {type(value).__name__}")
    if allowed is not None and not value.keys() <= allowed:
        raise ProtocolError(f"{what}: unknown field(s) {sorted(value.keys() - allowed)[:5]}")
    return value


def _list(value: Any, what: str, items_max: int) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(f"{what} must be an array, got {type(value).__name__}")
    if len(value) > items_max:
        raise ProtocolError(f"{what}: {len(value)} items, more than {items_max}")
    return value


def _mac_field(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) not in (0, MAC_BYTES):
        raise ProtocolError(f"{what} must be empty or {MAC_BYTES} bytes")
    return value


# ---------------------------------------------------------------- batches (terminal → server)


def encode_batch(terminal: str, epoch: int, prev_mac: bytes, events: list[dict[str, Any]]) -> bytes:
    """The body of `POST /v1/batches`. Refuses (ProtocolError) what the server would refuse."""
    if not events:
        raise ProtocolError("a batch carries at least one event")
    body = pack(
        {
            "v": VERSION,
            "terminal": terminal,
            "epoch": epoch,
            "first_seq": events[0]["seq"],
            "last_seq": events[-1]["seq"],
            "prev_mac": prev_mac,
            "events": events,
        }
    )
    check_batch(decode_batch(body))
    return body


def decode_batch(data: bytes) -> Batch:
    """One pass over the body: the batch map, each event decoded and its exact bytes kept."""
    _check_size(data, BATCH_BYTES_MAX)
    unpacker = _unpacker(BATCH_BYTES_MAX, STR_BYTES_MAX)
    raw: dict[str, Any] = {}
    raw_events: list[bytes] = []
    try:
        with _gc_paused():
            unpacker.feed(data)
            for _ in range(unpacker.read_map_header()):
                key = unpacker.unpack()
                if not isinstance(key, str) or key not in BATCH_FIELDS or key in raw:
                    raise ProtocolError(f"batch: unknown field or repeated field {key!r:.40}")
                if key != "events":
                    raw[key] = unpacker.unpack()
                    continue
                count = unpacker.read_array_header()
                if count > BATCH_EVENTS_MAX:
                    raise ProtocolError(f"batch events: {count} items, more than {BATCH_EVENTS_MAX}")
                raw["events"] = []
                for _ in range(count):
                    start = unpacker.tell()
                    raw["events"].append(unpacker.unpack())
                    raw_events.append(bytes(data[start : unpacker.tell()]))
        _check_end(unpacker, len(data))
    except msgpack.OutOfData:
        raise ProtocolError("truncated msgpack") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise ProtocolError(f"bad msgpack: {type(exc).__name__}: {exc!s:.200}") from None
    # The events' shape is bounded by their schema (check_batch → schemas.check_event walks only
    # that shape, nothing deeper), so only the batch's other fields need the generic depth walk.
    _check_depth({k: v for k, v in raw.items() if k != "events"})
    if raw.get("v") != VERSION:
        raise ProtocolError(f"batch version {raw.get('v')!r:.20}, this server speaks {VERSION}")
    batch = Batch(
        terminal=check_terminal_id(raw.get("terminal")),
        epoch=_int(raw.get("epoch"), "batch epoch", 1),
        first_seq=_int(raw.get("first_seq"), "batch first_seq", 1),
        last_seq=_int(raw.get("last_seq"), "batch last_seq", 1),
        prev_mac=_mac_field(raw.get("prev_mac"), "batch prev_mac"),
        events=_list(raw.get("events"), "batch events", BATCH_EVENTS_MAX),
        raw_events=raw_events,
    )
    check_batch(batch)
    return batch


def check_batch(batch: Batch) -> None:
    """Events are maps with an id, the batch's epoch and consecutive sequence numbers."""
    if not batch.events:
        raise ProtocolError("batch has no events")
    if batch.last_seq - batch.first_seq + 1 != len(batch.events):
        raise ProtocolError(f"batch says seq {batch.first_seq}..{batch.last_seq} but has {len(batch.events)} events")
    ids: set[str] = set()
    epoch, seq = batch.epoch, batch.first_seq - 1
    for event in batch.events:
        seq += 1
        # Cheap checks on the hot path; messages are built only for a refusal.
        if type(event) is not dict or len(event) > EVENT_FIELDS_MAX:
            raise ProtocolError(f"event {seq}: not a map of at most {EVENT_FIELDS_MAX} fields")
        event_id = event.get("id")
        if type(event_id) is not str or not _ID_RE.fullmatch(event_id) or event_id in ids:
            raise ProtocolError(f"event {seq}: id must be 32 lowercase hex digits, unique in the batch")
        ids.add(event_id)
        if type(event.get("epoch")) is not int or event["epoch"] != epoch:
            raise ProtocolError(f"event {seq}: epoch {event.get('epoch')!r:.20} is not the batch's")
        if type(event.get("seq")) is not int or event["seq"] != seq:
            raise ProtocolError(f"event {seq}: seq {event.get('seq')!r:.20}, expected {seq}")
        try:
            # Type, every field, at = at_ms, card named (protocol/schemas.py), by the generated
            # checker; a refusal is the reference's own (protocol/fastcheck.py).
            fastcheck.check_event(event)
        except schemas.Invalid as exc:
            raise ProtocolError(f"event {seq} field {exc.path}: {exc.reason}"[:500]) from None


# ---------------------------------------------------------------- replies (server → terminal)


def encode_reply(value: dict[str, Any]) -> bytes:
    return pack(value)


def decode_reply(data: bytes) -> dict[str, Any]:
    """A batch reply or an error reply: {acked_through, prev_mac, ...} or {error, message, ...}."""
    reply = _map(unpack(data, REPLY_BYTES_MAX), "reply")
    if "error" in reply:
        if not isinstance(reply["error"], str):
            raise ProtocolError("reply error code is not a string")
        if "expected_seq" in reply:
            _int(reply["expected_seq"], "reply expected_seq", 1)
        if "prev_mac" in reply:
            _mac_field(reply["prev_mac"], "reply prev_mac")
        return reply
    _int(reply.get("acked_through"), "reply acked_through", 1)
    _mac_field(reply.get("prev_mac", b""), "reply prev_mac")
    return reply


def error_reply(exc: ProtocolError, **extra: Any) -> bytes:
    return pack({"error": exc.code, "message": str(exc)[:500], **extra})


# ---------------------------------------------------------------- updates (server → terminal)


def encode_updates(value: dict[str, Any]) -> bytes:
    data = pack({"v": VERSION, **value})
    if len(data) > UPDATES_BYTES_MAX:
        raise TooLargeError(f"update batch of {len(data)} bytes, more than {UPDATES_BYTES_MAX}")
    return data


def decode_updates(data: bytes) -> dict[str, Any]:
    """The terminal's parser of `GET /v1/updates`: shape and limits only; the ledger checks
    every entry's fields again when it applies the batch (a bad batch changes nothing)."""
    raw = _map(unpack(data, UPDATES_BYTES_MAX, RULES_BYTES_MAX), "update batch", UPDATE_FIELDS)
    if raw.get("v") != VERSION:
        raise ProtocolError(f"update batch version {raw.get('v')!r:.20}, expected {VERSION}")
    _int(raw.get("cursor"), "update cursor")
    if not isinstance(raw.get("more"), bool):
        raise ProtocolError("update field 'more' must be a boolean")
    acked = raw.get("acked")
    if acked is not None:
        _map(acked, "update acked", frozenset({"epoch", "seq"}))
        _int(acked.get("epoch"), "update acked epoch", 1)
        _int(acked.get("seq"), "update acked seq")
    rules = raw.get("rules")
    if rules is not None:
        _map(rules, "update rules", frozenset({"version", "text"}))
        if not isinstance(rules.get("version"), str) or not 0 < len(rules["version"]) <= 64:
            raise ProtocolError("update rules version must be 1..64 chars")
        if not isinstance(rules.get("text"), str):
            raise ProtocolError("update rules text must be a string")
    if "reset" in raw and (raw["reset"] is not True or raw.get("cursor") != 0):
        raise ProtocolError("update field 'reset' must be true, with cursor 0")
    if "head" in raw:
        _int(raw["head"], "update head")
    for name in ("catalog", "cards", "balances", "coupons"):
        for i, entry in enumerate(_list(raw.get(name, []), f"update {name}", UPDATES_ENTRIES_MAX)):
            _map(entry, f"update {name} {i}")
    versions = _map(raw.get("versions", {}), "update versions")
    for name, value in versions.items():
        if not isinstance(value, str) or len(value) > 64 or len(name) > 32:
            raise ProtocolError(f"update version {name!r:.40} must be a string of ≤ 64 chars")
    return raw
