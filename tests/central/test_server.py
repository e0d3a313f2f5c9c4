"""The HTTP service as a real process: refusals are signed, bounded and store nothing."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import aiohttp

from protocol import wire
from tests.central.helpers import central, provision, server_events, sqlite_dsn


async def _call(
    url: str, method: str, path: str, terminal: str, key: bytes, body: bytes | None = None, mac: str | None = None
) -> tuple[int, bytes, str | None]:
    signed = body if body is not None else wire.request_bytes(method, path)
    headers = {wire.TERMINAL_HEADER: terminal, wire.MAC_HEADER: mac or wire.sign(key, signed)}
    data = io.BytesIO(body) if body is not None and len(body) > wire.BATCH_BYTES_MAX else body
    async with aiohttp.ClientSession() as s, s.request(method, url + path, data=data, headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers.get(wire.MAC_HEADER)


def test_refusals(tmp_path: Path) -> None:
    dsn = sqlite_dsn(tmp_path)
    key = provision(dsn, "T01")
    with central(dsn, tmp_path) as server:

        async def scenario() -> None:
            url = server.url
            bad = wire.pack(
                {
                    "v": 1,
                    "terminal": "T01",
                    "epoch": 1,
                    "first_seq": 1,
                    "last_seq": 1,
                    "prev_mac": b"",
                    "events": [{"id": "x"}],
                }
            )
            status, data, mac = await _call(url, "POST", "/v1/batches", "T01", key, bad)
            assert status == 400 and wire.verify(key, data, mac)
            assert wire.unpack(data, 4096)["error"] == "malformed"
            huge = b"\x00" * (wire.BATCH_BYTES_MAX + 10)
            status, _, _ = await _call(url, "POST", "/v1/batches", "T01", key, huge)
            assert status == 413
            status, _, _ = await _call(url, "GET", "/v1/updates?since=0", "T01", key, mac="00" * 32)
            assert status == 401
            status, data, mac = await _call(url, "GET", "/v1/updates?since=-1", "T01", key)
            assert status == 400 and wire.verify(key, data, mac)
            status, data, mac = await _call(url, "GET", "/v1/updates?since=0", "T01", key)
            page = wire.decode_updates(data)
            assert status == 200 and page["cursor"] == 0 and page["acked"] is None
            status, data, _ = await _call(url, "GET", "/v1/cards/NOPE", "T01", key)
            assert status == 404
            status, _, _ = await _call(url, "GET", "/v1/cards/NOPE", "T77", os.urandom(32))
            assert status == 401

        asyncio.run(scenario())
        assert server_events(dsn) == []
        log = server.log()
        assert "reason=malformed" in log and "reason=too_large" in log and "reason=auth" in log
