"""The terminal's HTTP client of the central server, and the retry backoff.

Every request is signed with the terminal key; every reply must carry a valid MAC with the same
key, or it counts as a network failure (`TransientError`): a forged or garbled "ack" must never
mark events sent. Replies are read with a size cap. The caller keeps one request in flight.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from importlib import metadata
from typing import Any
from urllib.parse import quote

import aiohttp

from protocol import wire
from terminal.sync.errors import SyncError, TransientError

READ_CHUNK_BYTES = 64 * 1024
RECEIPT_REPLY_BYTES_MAX = 1024 * 1024  # a sale of 1 000 lines with their rule ids
REPLY_STATUSES_SIGNED = frozenset({200, 400, 404, 409})


def _version() -> str:
    try:
        found = metadata.version("posterm")
    except metadata.PackageNotFoundError:  # a source tree run without installing
        return "source"
    return re.sub(r"[^A-Za-z0-9._+-]", "", found)[:32] or "source"


SOFTWARE_VERSION = _version()


class Backoff:
    """Capped exponential backoff with full jitter: delay = U(0, min(cap, base · 2^attempt)).
    `rand` is injectable so tests see exact delays."""

    ATTEMPT_EXPONENT_MAX = 30

    def __init__(self, base_ms: int, cap_ms: int, rand: Callable[[], float] = random.random) -> None:
        self.base_ms, self.cap_ms, self.rand = base_ms, cap_ms, rand
        self.attempt = 0

    def next_delay_ms(self) -> float:
        ceiling = min(self.cap_ms, self.base_ms * 2 ** min(self.attempt, self.ATTEMPT_EXPONENT_MAX))
        self.attempt += 1
        return self.rand() * ceiling

    def reset(self) -> None:
        self.attempt = 0


class SyncClient:
    def __init__(self, url: str, terminal: str, key: bytes, timeout_ms: int) -> None:
        self.url, self.terminal, self.key = url.rstrip("/"), terminal, key
        self.timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SyncClient:
        # force_close: a connection that died mid-reply is never reused for the next batch.
        connector = aiohttp.TCPConnector(limit=2, force_close=True)
        self.session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def _request(
        self, method: str, path_qs: str, body: bytes | None, limit: int, timeout_ms: int | None = None
    ) -> tuple[int, bytes]:
        if self.session is None:
            raise SyncError("sync client used outside `async with`")
        mac = wire.sign(self.key, body if body is not None else wire.request_bytes(method, path_qs))
        headers = {wire.TERMINAL_HEADER: self.terminal, wire.MAC_HEADER: mac, "Content-Type": wire.CONTENT_TYPE}
        timeout = self.timeout if timeout_ms is None else aiohttp.ClientTimeout(total=timeout_ms / 1000)
        try:
            async with self.session.request(
                method, self.url + path_qs, data=body, headers=headers, timeout=timeout
            ) as resp:
                data = await _read_capped(resp, limit, f"{method} {path_qs}")
                status, mac_hex = resp.status, resp.headers.get(wire.MAC_HEADER)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransientError(f"{method} {path_qs}: {type(exc).__name__}: {exc}") from None
        if status not in REPLY_STATUSES_SIGNED:
            raise TransientError(f"{method} {path_qs}: HTTP {status}")
        try:
            wire.verify(self.key, data, mac_hex)
        except wire.AuthError as exc:
            raise TransientError(f"{method} {path_qs}: HTTP {status} reply not trusted: {exc}") from None
        return status, data

    async def post_batch(self, body: bytes) -> tuple[int, dict[str, Any]]:
        status, data = await self._request("POST", "/v1/batches", body, wire.REPLY_BYTES_MAX)
        try:
            return status, wire.decode_reply(data)
        except wire.ProtocolError as exc:
            raise TransientError(f"batch reply unreadable: {exc}") from None

    async def get_updates(self, since: int, backlog: int | None = None) -> dict[str, Any]:
        """A page of the feed after `since`. `backlog` (events not yet sent) and this build's
        version ride along in the signed query, for the console's terminals page."""
        path = f"/v1/updates?since={since}"
        if backlog is not None:
            path += f"&backlog={backlog}&version={SOFTWARE_VERSION}"
        status, data = await self._request("GET", path, None, wire.UPDATES_BYTES_MAX)
        if status != 200:
            raise TransientError(f"updates: HTTP {status}: {_message(data)}")
        return wire.decode_updates(data)  # ProtocolError: a bad batch changes nothing

    async def get_card(self, number: str, timeout_ms: int) -> dict[str, Any] | None:
        path = f"/v1/cards/{quote(number, safe='')}"
        status, data = await self._request("GET", path, None, wire.CARD_REPLY_BYTES_MAX, timeout_ms)
        if status == 404:
            return None
        if status != 200:
            raise TransientError(f"card {number}: HTTP {status}: {_message(data)}")
        try:
            entry = wire.unpack(data, wire.CARD_REPLY_BYTES_MAX)
        except wire.ProtocolError as exc:
            raise TransientError(f"card {number}: reply unreadable: {exc}") from None
        if not isinstance(entry, dict) or entry.get("number") != number:
            raise TransientError(f"card {number}: reply is not this card")
        return entry

    async def get_receipt(self, receipt: str, timeout_ms: int) -> dict[str, Any] | None:
        """A sale of any terminal of the chain as the server stored it (its lines included);
        None when the server has none under this id."""
        path = f"/v1/receipts/{quote(receipt, safe='')}"
        status, data = await self._request("GET", path, None, RECEIPT_REPLY_BYTES_MAX, timeout_ms)
        if status == 404:
            return None
        if status == 409:  # several terminals used the id: the server lists them
            raise SyncError(f"receipt {receipt}: {_message(data)}")
        if status != 200:
            raise TransientError(f"receipt {receipt}: HTTP {status}: {_message(data)}")
        try:
            sale = wire.unpack(data, RECEIPT_REPLY_BYTES_MAX)
        except wire.ProtocolError as exc:
            raise TransientError(f"receipt {receipt}: reply unreadable: {exc}") from None
        if not isinstance(sale, dict) or sale.get("receipt") != receipt:
            raise TransientError(f"receipt {receipt}: reply is not this receipt")
        return sale


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole reply body, refusing more than `limit` bytes (declared or received)."""
    if resp.content_length is not None and resp.content_length > limit:
        raise TransientError(f"{what}: reply of {resp.content_length} bytes, over {limit}")
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise TransientError(f"{what}: reply over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _message(data: bytes) -> str:
    try:
        reply = wire.unpack(data, wire.REPLY_BYTES_MAX)
    except wire.ProtocolError:
        return "(unreadable)"
    return str(reply.get("message", reply.get("error", "")))[:200] if isinstance(reply, dict) else "(not a map)"
