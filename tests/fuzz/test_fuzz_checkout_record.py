"""Fuzz corpus for `checkout.json`, the record a start recovers from: every seed and mutation
is either recovered or moved aside with a reported refusal — never an exception that would
stop the daemon at every start."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core
from terminal.checkout import CheckoutError, Register
from terminal.demo_run import DATA
from terminal.ledger import Ledger

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
MUTATIONS = settings(max_examples=60, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
NOW_MS = int(NOW.timestamp() * 1000)
GOOD = {"id": "T01-20261123120000-abcd", "opened_ms": NOW_MS, "touched_ms": NOW_MS, "state": "open",
        "lines": [{"sku": "MILK-1L", "name": "Milk", "code": "4600000000022", "price": 8990, "qty": "1",
                   "qty_milli": 1000, "categories": [], "no_discount": False, "no_bonus": False,
                   "min_price": 0, "weighed": False}],
        "card": None, "card_mode": "local", "redeem": None, "quote": None, "payment": None, "commit_at": None}
SEEDS = [
    '{"id":"T01-x","state":"committing","lines":[]}',
    '{"id":"T01-x","opened_ms":1,"touched_ms":1,"state":"committing","lines":[]}',
    json.dumps({**GOOD, "state": "committing"}),
    json.dumps({**GOOD, "state": "committing", "quote": {"to_pay": 1}, "payment": {"tenders": []},
                "commit_at": "2026-11-23T12:00:00+03:00"}),
    json.dumps({**GOOD, "lines": [{**GOOD["lines"][0], "qty_milli": 0}]}),
    json.dumps({**GOOD, "lines": [{**GOOD["lines"][0], "price": 1e999999}]}).replace("inf", "1e999999"),
    json.dumps({**GOOD, "state": "sold"}),
    json.dumps({**GOOD, "redeem": -5}),
    json.dumps({**GOOD, "id": "x" * 100}),
    json.dumps({**GOOD, "extra": 1}),
    "[" * 20000,
    '{"id":"\\ud800"}',
    "",
    "\xff",
]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Ledger:
    led = Ledger.init(tmp_path_factory.mktemp("rec") / "ledger", "T01", sync=False)
    led.import_catalog(DATA / "catalog.csv", NOW)
    yield led
    led.close()


def recover(ledger: Ledger, tmp_path: Path, text: str) -> str:
    record = tmp_path / "checkout.json"
    record.write_bytes(text.encode("utf-8", "surrogatepass"))
    reg = Register(terminal_id="T01", store="S01", ledger=ledger, program=core.load_rules(DATA / "rules.toml"),
                   record_path=record, idle_timeout_s=10**6, hold_timeout_s=900, publish=lambda *_: None)
    try:
        outcome, _ = reg.recover(NOW)
    except CheckoutError as exc:
        assert "moved to" in str(exc) or "refused" in str(exc), exc
        if "moved to" in str(exc):
            assert not record.exists() and record.with_suffix(".bad").exists()
        return "refused"
    if reg.current is not None:
        reg.cancel(NOW, "test")
    return outcome


@pytest.mark.parametrize("text", SEEDS)
def test_a_bad_record_is_moved_aside_never_an_exception(ledger, tmp_path, text):
    assert recover(ledger, tmp_path, text) == "refused"


def test_a_good_record_is_resumed(ledger, tmp_path):
    assert recover(ledger, tmp_path, json.dumps(GOOD)) == "resumed"


@MUTATIONS
@given(data=st.data())
def test_mutated_records_never_stop_a_start(ledger, tmp_path_factory, data):
    text = json.dumps(GOOD)
    cut = data.draw(st.integers(0, len(text)))
    noise = data.draw(st.sampled_from(['"', "0", "-1", "null", "[", "{}", "true", '"committing"', "1e999"]))
    mutated = text[:cut] + noise + text[cut + data.draw(st.integers(0, 12)):]
    assert recover(ledger, tmp_path_factory.mktemp("m"), mutated) in ("refused", "resumed", "expired", "none")
