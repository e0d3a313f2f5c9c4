"""Real resources for the sync tests: a `posterm-central serve` subprocess on 127.0.0.1, a
fault-injecting TCP proxy in front of it, ledgers with events, and the end-of-scenario check
(server events == union of the terminals' outboxes, no duplicates, balances equal and each
the sum of the server's lots of the card).
Everything listens on loopback only and every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from central.balances import CardState
from central.store import Store, open_store
from protocol import wire
from terminal.ledger import Ledger
from terminal.ledger import outbox as ledger_outbox
from terminal.sync import SyncClient, SyncConfig, Syncer, TransientError

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 15.0
OUTBOX_SCAN_MAX = 1_000_000
SETTLE_ROUNDS_MAX = 8
TRANSIENT_RETRIES_MAX = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def sqlite_dsn(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'central.db'}"


def fresh_store(dsn: str) -> Store:
    store = open_store(dsn)
    if store.name == "postgres":
        store.drop_all()  # type: ignore[attr-defined]
        store.migrate()
    return store


class CentralProcess:
    """`python -m central.cli --db DSN serve` as a child process; restartable on the same port."""

    def __init__(self, dsn: str, log_path: Path, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.dsn, self.log_path, self.extra = dsn, log_path, extra
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> CentralProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        log = open(self.log_path, "ab")  # noqa: SIM115 — the child owns it for its life
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "central.cli",
                "--db",
                self.dsn,
                "serve",
                "--host",
                LOOPBACK,
                "--port",
                str(self.port),
                *self.extra,
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"central exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"central did not start in {START_TIMEOUT_S}s: {self.log()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def central(dsn: str, tmp: Path) -> Iterator[CentralProcess]:
    proc = CentralProcess(dsn, tmp / "central.log").start()
    try:
        yield proc
    finally:
        proc.stop()


class FaultProxy:
    """A TCP proxy on loopback in front of the central server, one connection per request.

    mode: "pass"; "slow" (delay each reply `delay_s`); "500" (answer HTTP 500 without
    forwarding); "500_after" (forward — the server commits — then answer 500); "drop" (forward,
    then send half the reply and cut the connection); "hold" (forward; on a 200 reply swallow
    it, set `held` and keep the client waiting until `close`). `count` limits how many requests get the fault."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.mode, self.count, self.delay_s = "pass", 0, 0.0
        self.faults = 0
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def set(self, mode: str, count: int = 1_000_000, delay_s: float = 0.0) -> None:
        self.mode, self.count, self.delay_s, self.faults = mode, count, delay_s, 0
        self.held.clear()

    async def start(self) -> FaultProxy:
        self.server = await asyncio.start_server(self._handle, LOOPBACK, self.port)
        return self

    async def close(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self._serve(reader, writer), 30)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            pass  # a client or upstream that went away: the scenario checks the outcome
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        mode = self.mode if self.faults < self.count else "pass"
        if mode not in ("pass", "hold"):
            self.faults += 1
        if mode == "500":
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return
        up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.upstream_port)
        try:
            lines = [h for h in head.split(b"\r\n") if h and not h.lower().startswith(b"connection:")]
            head = b"\r\n".join([*lines, b"Connection: close", b"", b""])
            up_writer.write(head + body)
            await up_writer.drain()
            reply = await up_reader.read(-1)  # Connection: close → the whole reply
        finally:
            up_writer.close()
        if mode == "slow":
            await asyncio.sleep(self.delay_s)
        elif mode == "500_after":
            reply = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        elif mode == "drop":
            reply = reply[: len(reply) // 2]
        elif mode == "hold" and reply.startswith(b"HTTP/1.1 200"):
            self.faults += 1
            self.held.set()
            await self.release.wait()
            return
        writer.write(reply)
        await writer.drain()


# ---------------------------------------------------------------- terminals and checks


def provision(dsn: str, terminal: str) -> bytes:
    store = open_store(dsn)
    try:
        key = os.urandom(wire.KEY_BYTES)
        store.add_terminal(terminal, key)
        return key
    finally:
        store.close()


def publish_cards(dsn: str, balances: dict[str, int]) -> None:
    store = open_store(dsn)
    try:
        store.put_cards([CardState(n, balance=b, type="standard") for n, b in balances.items()])
    finally:
        store.close()


def sync_config(url: str, key: bytes, tmp: Path, name: str, **extra: Any) -> SyncConfig:
    return SyncConfig.from_mapping(
        {
            "url": url,
            "key": key.hex(),
            "state_file": str(tmp / f"{name}-sync.json"),
            "backoff_base_ms": 20,
            "backoff_max_ms": 300,
            "request_timeout_ms": 3000,
            "idle_interval_ms": 50,
            **extra,
        }
    )


def outbox(ledger: Ledger) -> list[dict[str, Any]]:
    with ledger.store.env.begin() as txn:
        return list(ledger_outbox.events_from(txn, ledger.store.dbs, 1, OUTBOX_SCAN_MAX))


def server_events(dsn: str) -> list[tuple[str, int, int, str, dict[str, Any]]]:
    store = open_store(dsn)
    try:
        return [(t, e, s, i, wire.unpack(b, wire.BATCH_BYTES_MAX)) for t, e, s, i, b in store.events()]
    finally:
        store.close()


def server_balances(dsn: str) -> dict[str, int]:
    """Every card's balance on the server, checked against the sum of its lots."""
    store = open_store(dsn)
    try:
        balances = {c.number: c.balance for c in store.all_cards()}
        for number, balance in balances.items():
            lots = store.card_lots(number)
            assert sum(lot["points"] for lot in lots) == balance, f"server card {number}: lots {lots}"
        verified = store.verify()
        assert verified["ok"] and verified["cards"] == len(balances), verified
        return balances
    finally:
        store.close()


async def sync_round(ledger: Ledger, config: SyncConfig) -> dict[str, int]:
    async with SyncClient(config.url, ledger.terminal_id, config.key, config.request_timeout_ms) as client:
        return await Syncer(ledger, config, client).once()


async def settle(terminals: list[tuple[Ledger, SyncConfig]]) -> None:
    """Sync every terminal until nobody sends or pulls anything (bounded)."""
    for _ in range(SETTLE_ROUNDS_MAX):
        busy = 0
        for ledger, config in terminals:
            for attempt in range(TRANSIENT_RETRIES_MAX + 1):
                try:
                    done = await sync_round(ledger, config)
                    break
                except TransientError:
                    # As the daemon's loop would: a 503 (e.g. a PostgreSQL deadlock victim
                    # between collectors) or a slow reply is retried.
                    if attempt == TRANSIENT_RETRIES_MAX:
                        raise
                    await asyncio.sleep(0.1)
            busy += done["sent"] + done["pages"]
        if not busy:
            return
    raise AssertionError(f"terminals did not settle in {SETTLE_ROUNDS_MAX} rounds")


LotKey = tuple[int, int]  # (expires ms, available-from ms), as the server keys a lot; (0, 0): debt


def _ms(iso: str | None, default: int) -> int:
    return default if iso is None else int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


def dated(lots: list[dict[str, Any]]) -> dict[LotKey, int]:
    """Lots (a terminal's `card()["lots"]` or the server's `card_lots`) by their dates, summed."""
    out: dict[LotKey, int] = {}
    for lot in lots:
        key = (0, 0) if lot["debt"] else (_ms(lot["expires_at"], 2**63 - 1), _ms(lot["available_from"], 0))
        out[key] = out.get(key, 0) + lot["points"]
    return out


def server_lots(dsn: str) -> dict[str, dict[LotKey, int]]:
    store = open_store(dsn)
    try:
        return {c.number: dated(store.card_lots(c.number)) for c in store.all_cards()}
    finally:
        store.close()


def assert_consistent(dsn: str, ledgers: list[Ledger]) -> None:
    """Server events == union of the outboxes (same ids, same content), nothing twice, and
    every card's balance and lots (with their dates) the same on the server and on every
    terminal that has it."""
    stored = server_events(dsn)
    keys = [(t, e, s) for t, e, s, _, _ in stored]
    assert len(keys) == len(set(keys)), "an event is stored twice"
    ids = [i for _, _, _, i, _ in stored]
    assert len(ids) == len(set(ids)), "an event id is stored twice"
    union = {}
    for ledger in ledgers:
        assert ledger.backlog() == 0, f"terminal {ledger.terminal_id} still has unsent events"
        for event in outbox(ledger):
            union[(ledger.terminal_id, event["epoch"], event["seq"])] = event
    server_map = {(t, e, s): body for t, e, s, _, body in stored}
    assert server_map.keys() == union.keys(), (
        f"missing on server: {sorted(union.keys() - server_map.keys())[:5]}, "
        f"unknown to terminals: {sorted(server_map.keys() - union.keys())[:5]}"
    )
    for key, event in union.items():
        assert server_map[key] == event, f"event {key} differs"
    balances = server_balances(dsn)
    now = now_iso()
    for ledger in ledgers:
        for number, balance in balances.items():
            local = ledger.card(number, now)["balance"]
            assert local == balance, f"{ledger.terminal_id} card {number}: {local} here, {balance} on the server"
    for number, lots in server_lots(dsn).items():
        for ledger in ledgers:
            here = dated(ledger.card(number, now)["lots"])
            assert here == lots, f"{ledger.terminal_id} card {number}: lots {here} here, {lots} on the server"
