"""`posterm demo`'s chain: a local central server and a second terminal.

`CentralChild` runs `posterm-central serve` (embedded SQLite in the work directory) as a child
process on a free loopback port, adds the terminals with their keys and publishes the card file;
the terminals are provisioned against it (rules and catalog locally, cards from the server).
`spend_at_t02` shows points earned at T01 spent at T02, with their dates where the updates feed
carries them; `agree` waits until T01, T02 and the server hold the same balances and prints the
server's view (`posterm-central card show`, the holder's personal data left out).

The terminal never imports the server: it is run as a program (`python -m central.cli`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from terminal.errors import TerminalError
from terminal.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 15.0
CLI_TIMEOUT_S = 30.0
AGREE_WAIT_S = 15.0
POLL_S = 0.1
DEMO_IDLE_INTERVAL_MS = 200  # the demo's terminals look for updates often (2 s in production)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class CentralChild:
    """`python -m central.cli --db sqlite:///DIR/central.db serve` on a free loopback port."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.db = f"sqlite:///{workdir / 'central.db'}"
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = workdir / "central.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "central.cli", "--db", self.db, *args], cwd=ROOT,
                              env=self._env(), capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
        if done.returncode != 0:
            raise TerminalError(f"posterm-central {' '.join(args[:2])}: {done.stderr.strip()[:300]}")
        return done.stdout

    def add_terminal(self, terminal: str, key_file: Path) -> None:
        """A new key for `terminal` (added, or rotated when a kept work directory has it)."""
        try:
            key = self.cli("terminal", "add", terminal)
        except TerminalError:
            key = self.cli("terminal", "rotate-key", terminal, "--grace-s", "0")
        key_file.write_text(key)
        key_file.chmod(0o600)

    def start(self) -> float:
        with self.log_path.open("ab") as log:
            started = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "central.cli", "--db", self.db, "serve", "--port", str(self.port)],
                cwd=ROOT, env=self._env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = started + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TerminalError(f"the central server exited at start; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/health", timeout=1) as reply:
                    if reply.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(POLL_S)
        raise TerminalError(f"the central server did not answer within {START_TIMEOUT_S:g} s; see {self.log_path}")

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)

    def card(self, number: str) -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(self.cli("card", "show", number))
        return shown


def faster_sync(config: Path) -> None:
    """The demo's terminals poll the feed every DEMO_IDLE_INTERVAL_MS (an edit of the [sync] table)."""
    text = config.read_text()
    config.write_text(text.replace("[sync]\n", f"[sync]\nidle_interval_ms = {DEMO_IDLE_INTERVAL_MS}\n", 1))


def ledger_card(config_ledger: Path, number: str) -> dict[str, Any]:
    """A card as a terminal's ledger holds it (LMDB readers do not disturb the daemon)."""
    with Ledger(config_ledger) as ledger:
        return ledger.card(number, dt.datetime.now(dt.UTC))


def public_view(card: dict[str, Any]) -> dict[str, Any]:
    """The server's card without the holder's personal data (name, birth date)."""
    lots = [{"points": lot["points"], "available_from": lot.get("available_from"),
             "expires_at": lot.get("expires_at")} for lot in card.get("lots", [])]
    return {"card": card["number"], "type": card["type"], "balance": card["balance"],
            "cumulative": card["cumulative"], "version": card["version"], "lots": lots}


def _moment(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def wait_until(probe: Any, done: Any, timeout_s: float = AGREE_WAIT_S) -> Any:
    """Poll `probe()` (run in a thread) until `done(value)`; the last value either way (the
    caller checks it: a value that never came is a failed check, not a hang)."""
    deadline = time.monotonic() + timeout_s
    got = await asyncio.to_thread(probe)
    while not done(got) and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        got = await asyncio.to_thread(probe)
    return got


def _to_ms(moment: dt.datetime | None) -> str | None:
    """Lot dates compared to the millisecond in UTC (the server keeps ms; a terminal the text it got)."""
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def lot_dates(lots: list[dict[str, Any]]) -> list[tuple[int, str | None]]:
    """(points, expiry) of the positive lots, soonest-expiring first, dateless last."""
    return sorted(((lot["points"], _to_ms(_moment(lot.get("expires_at")))) for lot in lots if lot["points"] > 0),
                  key=lambda t: (t[1] is None, t[1] or "", t[0]))
