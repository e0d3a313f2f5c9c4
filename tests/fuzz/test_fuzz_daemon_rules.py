"""A bad rules file — nested 500 deep, not TOML, a bad rule — moved over a running daemon's
`rules_path` never stops it: the daemon keeps the last good program, reports the refusal (event,
log line, `status`), and after a restart starts on the last good copy kept beside the ledger."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from terminal.client import ApiClient
from terminal.rules_keeper import GOOD_NAME
from tests.e2e.conftest import Terminal, terminal  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[2]
BAD_RULES = ["x = " + "[" * 500 + "]" * 500, "[program\n", "[[rule]]\nid = 1\n"]


async def _status(term: Terminal) -> dict:
    async with ApiClient(term.socket) as api:
        return await api.ok("GET", "/v1/status")


def _wait_refused(term: Terminal) -> dict:
    deadline = time.monotonic() + 10
    while True:
        status = asyncio.run(_status(term))
        if status.get("rules_refused"):
            return status
        assert time.monotonic() < deadline, "the refusal was not reported"
        time.sleep(0.1)


@pytest.mark.parametrize("bad", BAD_RULES)
def test_a_bad_rules_file_keeps_the_last_good_program_across_a_restart(terminal: Terminal, bad: str) -> None:  # noqa: F811
    rules = terminal.root / "state" / "rules.toml"
    daemon = terminal.start()
    good_copy = terminal.ledger_path.parent / GOOD_NAME
    assert good_copy.read_bytes() == rules.read_bytes()
    before = asyncio.run(_status(terminal))["rules"]
    tmp = rules.with_name("rules.tmp")
    tmp.write_text(bad)
    os.replace(tmp, rules)  # as a technician's `mv` or a sync write would
    status = _wait_refused(terminal)
    assert status["rules"] == before and "refused" in status["rules_refused"]
    assert daemon.proc.poll() is None and "rules_refused" in daemon.log_tail(20000)
    daemon.stop()
    terminal.start()  # the bad file is still there: the daemon starts on the last good copy
    status = asyncio.run(_status(terminal))
    assert status["rules"] == before and "started with the last good rules" in status["rules_refused"]
    done = subprocess.run([sys.executable, "-m", "terminal.cli", "status", "--config", str(terminal.config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert "rules       REFUSED" in done.stdout and "Traceback" not in done.stderr


def test_a_damaged_ledger_stops_the_start_with_one_line(terminal: Terminal) -> None:  # noqa: F811
    data = terminal.ledger_path / "data.mdb"
    os.truncate(data, 8192)
    for command in ("run", "status"):
        done = subprocess.run([sys.executable, "-m", "terminal.cli", command, "--config", str(terminal.config)],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and "truncated" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert data.stat().st_size == 8192
