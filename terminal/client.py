"""A small client of the daemon's local API, and a launcher of the daemon as a child process.

Used by `posterm demo`, `posterm status`, the end-to-end tests and the benchmarks, so all of
them drive the daemon exactly as a kiosk UI would: HTTP over the Unix socket, events over SSE,
READY over a NOTIFY_SOCKET datagram socket. Limits: `READY_TIMEOUT_S`, `EVENT_BYTES_MAX`,
`REQUEST_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

from terminal.errors import TerminalError

READY_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 10.0
EVENT_BYTES_MAX = 1024 * 1024
STOP_TIMEOUT_S = 10.0
MESSAGES_KEPT_MAX = 100


class ApiClient:
    def __init__(self, socket_path: str | Path) -> None:
        self.socket_path = str(socket_path)
        self.session: aiohttp.ClientSession | None = None
        self.headers: dict[str, str] = {}  # e.g. the attendant session (terminal.guard.HEADER)

    async def __aenter__(self) -> ApiClient:
        connector = aiohttp.UnixConnector(path=self.socket_path)
        self.session = aiohttp.ClientSession(connector=connector, base_url="http://posterm",
                                             timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.session is not None, "use `async with ApiClient(...)`"
        async with self.session.request(method, path, json=body, headers=self.headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:  # a 500 from a bug answers text: show it rather than a decode error
                return response.status, {"error": text[:500]}

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(method, path, body)
        if status != 200:
            raise TerminalError(f"{method} {path}: HTTP {status}: {data.get('error', data)}")
        return data

    async def attendant(self, name: str, pin: str) -> dict[str, Any]:
        """Open an attendant session; this client's later requests carry it."""
        session: dict[str, Any] = await self.ok("POST", "/v1/attendant/session", {"name": name, "pin": pin})
        self.headers = {session["header"]: session["token"]}
        return session

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, data) from GET /v1/events, until the stream ends."""
        assert self.session is not None
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get("/v1/events", timeout=timeout) as response:
            if response.status != 200:
                raise TerminalError(f"GET /v1/events: HTTP {response.status}")
            kind, data = "", ""
            while True:
                raw = await response.content.readline()
                if not raw:
                    return
                if len(raw) > EVENT_BYTES_MAX:
                    raise TerminalError(f"event larger than {EVENT_BYTES_MAX} bytes")
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif not line and kind:
                    yield kind, json.loads(data)
                    kind, data = "", ""


class EventWatcher:
    """Collects SSE events in the background so a script can wait for the next one of a kind."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(10_000)
        self.task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def _pump(self) -> None:
        async for kind, data in self.client.events():
            if kind == "hello":
                self.connected.set()
                continue
            self.queue.put_nowait((kind, data))

    async def __aenter__(self) -> EventWatcher:
        self.task = asyncio.create_task(self._pump())
        connected = asyncio.ensure_future(self.connected.wait())
        await asyncio.wait([connected, self.task], timeout=REQUEST_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        if self.task.done():
            self.task.result()  # raises what the stream failed with
            raise TerminalError("the event stream ended before it started")
        if not self.connected.is_set():
            raise TerminalError(f"no event stream within {REQUEST_TIMEOUT_S:g} s")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def wait_for(self, *kinds: str, timeout_s: float = 5.0,
                       match: Callable[[dict[str, Any]], bool] | None = None) -> tuple[str, dict[str, Any]]:
        """The next event of one of `kinds` (and satisfying `match`); earlier ones are skipped."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {'/'.join(kinds)} event within {timeout_s:g} s")
            kind, data = await asyncio.wait_for(self.queue.get(), left)
            if kind in kinds and (match is None or match(data)):
                return kind, data

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out


class DaemonProcess:
    """`python -m terminal.cli run --config …` as a child, with READY awaited on our own socket."""

    def __init__(self, config: str | Path, workdir: str | Path, log_path: str | Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.config, self.workdir = Path(config), Path(workdir)
        self.log_path = Path(log_path) if log_path else self.workdir / "daemon.log"
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify_path = self.workdir / "notify.sock"
        self.sock: socket.socket | None = None
        self.ready_s: float | None = None
        self.messages: list[str] = []

    def start(self, watchdog_usec: int = 0) -> float:
        """Start and wait for READY=1; returns the seconds from spawn to READY."""
        self.notify_path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.notify_path))
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path), **self.extra_env}
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        with self.log_path.open("ab") as log:
            started = time.monotonic()
            self.proc = subprocess.Popen([sys.executable, "-m", "terminal.cli", "run", "--config", str(self.config)],
                                         env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
        env.pop("WATCHDOG_PID", None)
        self.wait_message("READY=1", READY_TIMEOUT_S)
        self.ready_s = time.monotonic() - started
        return self.ready_s

    def wait_message(self, prefix: str, timeout_s: float) -> str:
        assert self.sock is not None and self.proc is not None
        deadline = time.monotonic() + timeout_s
        for seen in self.messages:
            if seen.startswith(prefix):
                self.messages.remove(seen)
                return seen
        while True:
            left = deadline - time.monotonic()
            self.sock.settimeout(max(0.001, min(left, 0.2)))
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                # Checked only when nothing is queued: a daemon that said STOPPING=1 and exited
                # has still said it.
                if self.proc.poll() is not None:
                    raise TerminalError(f"daemon exited with code {self.proc.returncode} before {prefix}; "
                                        f"log: {self.log_tail()}") from None
                if left <= 0:
                    raise TerminalError(f"daemon did not send {prefix} within {timeout_s:g} s; "
                                        f"log: {self.log_tail()}") from None
                continue
            if message.startswith(prefix):
                return message
            self.messages = [*self.messages[-MESSAGES_KEPT_MAX + 1:], message]

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no log: {exc.strerror})"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise TerminalError(f"no VmRSS for pid {self.pid}")

    def kill(self) -> None:
        """SIGKILL: what a power cut or the OOM killer does."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT_S)
        self._close_sock()

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code (kills after `STOP_TIMEOUT_S`)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        self._close_sock()
        return self.proc.returncode

    def _close_sock(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
