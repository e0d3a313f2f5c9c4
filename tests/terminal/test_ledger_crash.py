"""Crash test: sales in a child process, SIGKILLed at random moments hundreds of times.

After every kill the next child first retries the operation that was in flight (same id, same
content). At the end: every acknowledged operation is in the ledger exactly once, nothing that
was never begun is there, no sale is partial, all invariants hold and the outbox is gap-free.
Bounded: POSTERM_CRASH_KILLS kills (default 200) and `WALL_S_MAX` seconds (longer, up to
`WALL_S_HARD`, until `KILLS_MIN` kills on a loaded machine), fixed seed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from terminal.ledger import Ledger, outbox

from .conftest import add_card

KILLS = int(os.environ.get("POSTERM_CRASH_KILLS", "200"))
KILLS_MIN = 100
WALL_S_MAX = 50.0
# A loaded machine runs past WALL_S_MAX until KILLS_MIN kills: the test bounds work, not speed.
WALL_S_HARD = 300.0
SEED = 20261123
ROOT = Path(__file__).resolve().parents[2]


def _run_child(path: Path, run: int, seed: int, retry: dict | None, delay_s: float, errors: Path):
    argv = [
        sys.executable,
        str(ROOT / "tests" / "terminal" / "crash_child.py"),
        str(path),
        str(run),
        str(seed),
    ]
    if retry is not None:
        argv.append(json.dumps(retry))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POSTERM_PURE": "1"}
    with errors.open("w") as err:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    ready = child.stdout.readline()
    if ready.strip() != "ready":
        child.kill()
        child.wait()
        raise AssertionError(f"child did not start: {ready!r} {errors.read_text()[-2000:]}")
    time.sleep(delay_s)
    child.send_signal(signal.SIGKILL)
    # Read through the same buffered stream as `readline` (communicate() would skip its buffer).
    out = child.stdout.read()
    child.stdout.close()
    child.wait()
    assert child.returncode == -signal.SIGKILL, errors.read_text()[-2000:]
    return out.splitlines()


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_or_duplicates_a_sale(tmp_path):
    path = tmp_path / "ledger"
    ledger = Ledger.init(path, "T01", map_size_bytes=256 * 1024 * 1024)
    for number in ("C1", "C2", "C3", "C4", "C5"):
        add_card(ledger, number, 5000)
    ledger.close()
    rng = random.Random(SEED)
    acked: set[str] = set()
    begun: set[str] = set()
    retry = None
    kills = 0
    started = time.monotonic()
    while kills < KILLS and (
        (elapsed := time.monotonic() - started) < WALL_S_MAX or (kills < KILLS_MIN and elapsed < WALL_S_HARD)
    ):
        lines = _run_child(
            path, kills, rng.randrange(2**32), retry, rng.uniform(0.0, 0.04), tmp_path / "child.err"
        )
        kills += 1
        in_flight = retry
        for line in lines:
            if line.startswith("begin "):
                in_flight = json.loads(line[6:])
                begun.add(in_flight["id"])
            elif line.startswith("ack "):
                acked.add(line[4:])
                if in_flight is not None and in_flight["id"] == line[4:]:
                    in_flight = None
        retry = in_flight
    assert kills >= min(KILLS, KILLS_MIN), f"only {kills} kills in {WALL_S_HARD} s"

    ledger = Ledger(path)
    result = ledger.verify()
    assert result["ok"], result["problems"]
    sale_events: dict[str, int] = {}
    return_events: dict[str, int] = {}
    events = []
    first = 1
    while True:
        with ledger.store.env.begin() as txn:
            batch = list(outbox.events_from(txn, ledger.store.dbs, first, 1000))
        if not batch:
            break
        events += batch
        first = batch[-1]["seq"] + 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for event in events:
        if event["type"] == "sale":
            sale_events[event["receipt"]] = sale_events.get(event["receipt"], 0) + 1
        elif event["type"] == "return":
            return_events[event["return"]] = return_events.get(event["return"], 0) + 1
    committed = set(sale_events) | set(return_events)
    assert all(n == 1 for n in sale_events.values()), "a sale was recorded twice"
    assert all(n == 1 for n in return_events.values()), "a return was recorded twice"
    assert acked <= committed, f"acknowledged but missing: {sorted(acked - committed)[:5]}"
    assert committed <= begun, f"recorded but never begun: {sorted(committed - begun)[:5]}"
    for receipt_id in sale_events:
        receipt = ledger.receipt(receipt_id)
        assert receipt is not None and receipt["id"] == receipt_id
    assert len(acked) > kills, "the children hardly committed anything"
    ledger.close()
    print(f"crash test: {kills} kills, {len(acked)} acknowledged, {len(committed)} committed")
