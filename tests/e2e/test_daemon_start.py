"""How the daemon starts: clear refusals (exit 2, one line), TCP on loopback, waiting for the
first rules from the server, and picking up new rules between checkouts."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from terminal.client import ApiClient
from terminal.demo_run import DATA
from tests.central.helpers import free_port

from .conftest import Terminal

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "terminal.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)


def test_bad_config_and_missing_rules_are_refused_in_one_line(terminal: Terminal, tmp_path: Path) -> None:
    done = run_cli("run", "--config", str(tmp_path / "nope.toml"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "cannot read the config" in done.stderr
    (terminal.root / "state" / "rules.toml").unlink()
    done = run_cli("run", "--config", str(terminal.config))
    assert done.returncode == 2 and "rules.toml" in done.stderr and "Traceback" not in done.stderr


def test_tcp_on_loopback_and_rules_arriving_later(terminal: Terminal) -> None:
    port = free_port()
    text = re.sub(r"tcp_port = \d+", f"tcp_port = {port}", terminal.config.read_text())
    # A server is configured but unreachable and no rules are here yet: the daemon starts and waits.
    key = terminal.root / "state" / "terminal.key"
    text += f'\n[sync]\nurl = "http://127.0.0.1:9"\nkey_file = "{key}"\nstate_file = "{terminal.root}/sync.json"\n'
    terminal.config.write_text(text)
    rules = terminal.root / "state" / "rules.toml"
    rules.unlink()
    terminal.start()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=5) as resp:
        status = json.loads(resp.read())
    assert status["rules"] == "not yet received" and status["terminal"] == "T01"

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api:
            code, body = await api.call("POST", "/v1/checkout/lines", {"code": "4600000000022"})
            assert code == 409 and "no pricing rules yet" in body["error"]
            assert (await api.ok("GET", "/v1/checkout"))["state"] == "idle"
            shutil.copyfile(DATA / "rules.toml", rules)  # what the sync task does when they arrive
            deadline = time.monotonic() + 5
            while (await api.ok("GET", "/v1/status"))["rules"] != "demo-1":
                assert time.monotonic() < deadline, "new rules were not picked up"
                await asyncio.sleep(0.1)
            await api.ok("POST", "/v1/checkout/lines", {"code": "4600000000022"})

    asyncio.run(asyncio.wait_for(scenario(), 15))
