"""Coupons on central (central/coupons.py), on SQLite and PostgreSQL: marketing codes, codes issued
at sales registered, single-use codes spent once and double uses booked, returns restoring and
voiding, every change in the updates feed, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from central import coupons
from central.feed import build_updates
from central.store import Store
from protocol import coupons as codes
from protocol import schemas, wire
from tests.central.events import complete

ROOT = Path(__file__).resolve().parents[2]
RULES = (ROOT / "examples" / "coupons.toml").read_text()
AT_MS = 1_775_800_000_000  # 2026-04-10


def publish_rules(store: Store) -> None:
    store.publish("rules", [("rules", {"version": "coupons", "text": RULES})])


def sale(seq: int, receipt: str, used: list[str] = (), issued: list[str] = (), **extra: Any) -> dict[str, Any]:
    event = complete({
        "id": os.urandom(16).hex(), "epoch": 1, "seq": seq, "type": "sale", "receipt": receipt, "at_ms": AT_MS + seq,
        **({"coupons": [{"code": c, "series": "spring", "single_use": True} for c in used]} if used else {}),
        **({"issued_coupons": [{"code": c, "series": "next-visit", "rule": "issue-next-visit",
                                "valid_to": "2026-05-10"} for c in issued]} if issued else {}),
        **extra,
    })
    schemas.check_event(event)
    return event


def returned(seq: int, receipt: str, restored: list[str] = (), voided: list[str] = ()) -> dict[str, Any]:
    event = complete({"id": os.urandom(16).hex(), "epoch": 1, "seq": seq, "type": "return", "return": f"r{seq}",
                      "receipt": receipt, "at_ms": AT_MS + seq,
                      **({"coupons_restored": list(restored)} if restored else {}),
                      **({"coupons_voided": list(voided)} if voided else {})})
    schemas.check_event(event)
    return event


class Stream:
    """One terminal's gap-free batches."""

    def __init__(self, store: Store, terminal: str) -> None:
        self.store, self.terminal, self.mac = store, terminal, b""

    def send(self, *events: dict[str, Any]) -> None:
        body = wire.encode_batch(self.terminal, 1, self.mac, list(events))
        mac = os.urandom(32)
        self.store.ingest(wire.decode_batch(body), mac)
        self.mac = mac


def fed(store: Store) -> dict[str, dict[str, Any]]:
    return {c["code"]: c for c in build_updates(store, "T01", 0).get("coupons", [])}


def test_issue_makes_codes_of_a_published_series_and_feeds_them(store: Store) -> None:
    with pytest.raises(coupons.CouponError, match="not in the published rules"):
        coupons.issue(store, "spring", 2)
    publish_rules(store)
    made = coupons.issue(store, "spring", 3, valid_days=10, now_ms=AT_MS)
    assert len(set(made)) == 3 and all(codes.is_coupon_code(c) and c.startswith("CP-C-") for c in made)
    assert {c: f["state"] for c, f in fed(store).items()} == dict.fromkeys(made, "unspent")
    assert {f["valid_to"] for f in fed(store).values()} == {"2026-04-20"}
    for bad in (0, coupons.ISSUE_COUNT_MAX + 1):
        with pytest.raises(coupons.CouponError, match="--count"):
            coupons.issue(store, "spring", bad)
    with pytest.raises(coupons.CouponError, match="autumn"):
        coupons.issue(store, "autumn", 1)


def test_a_spend_on_two_terminals_stands_twice_and_is_booked_once(store: Store) -> None:
    publish_rules(store)
    [code] = coupons.issue(store, "spring", 1)
    t01, t02 = Stream(store, "T01"), Stream(store, "T02")
    t01.send(sale(1, "T01-a", used=[code]))
    assert coupons.show(store, code)["state"] == "spent" and fed(store)[code]["state"] == "spent"
    assert coupons.double_used(store) == []
    t02.send(sale(1, "T02-b", used=[code]))  # offline at the same time: both sales stand
    [double] = coupons.double_used(store)
    assert (double["code"], double["terminal"], double["receipt"]) == (code, "T02", "T02-b")
    assert (double["first_terminal"], double["first_receipt"]) == ("T01", "T01-a")
    assert len([e for e in store.events() if e[0] in ("T01", "T02")]) == 2  # both stored
    # the first sale's full return gives the code back, but T02's sale still used it
    t01.send(returned(2, "T01-a", restored=[code]))
    assert coupons.show(store, code)["spent_receipt"] == "T02-b"


def test_issued_codes_are_registered_and_a_full_return_voids_or_restores(store: Store) -> None:
    publish_rules(store)
    [spring] = coupons.issue(store, "spring", 1)
    issued = codes.terminal_code("T01", 1)
    t01 = Stream(store, "T01")
    t01.send(sale(1, "T01-a", used=[spring], issued=[issued]))
    row = coupons.show(store, issued)
    assert (row["issued_by"], row["receipt"], row["state"], row["valid_to"]) == ("T01", "T01-a", "unspent",
                                                                                 "2026-05-10")
    t01.send(returned(2, "T01-a", restored=[spring], voided=[issued]))
    assert coupons.show(store, spring)["state"] == "unspent" and coupons.show(store, issued)["state"] == "void"
    assert fed(store)[issued]["state"] == "void" and fed(store)[spring]["state"] == "unspent"
    # a void code used offline anyway: the sale stands, the use is booked
    Stream(store, "T02").send(sale(1, "T02-x", used=[issued]))
    assert coupons.double_used(store)[0]["reason"] == "voided before this use"


def test_a_code_spent_before_its_issuing_sale_arrives_is_completed_later(store: Store) -> None:
    publish_rules(store)
    issued = codes.terminal_code("T01", 5)
    Stream(store, "T02").send(sale(1, "T02-a", used=[issued]))  # T01 still offline
    assert coupons.show(store, issued)["state"] == "spent"
    Stream(store, "T01").send(sale(1, "T01-a", issued=[issued]))
    row = coupons.show(store, issued)
    assert (row["state"], row["issued_by"], row["spent_receipt"]) == ("spent", "T01", "T02-a")
    assert coupons.double_used(store) == []


def test_a_redelivered_batch_books_nothing_twice(store: Store) -> None:
    publish_rules(store)
    [code] = coupons.issue(store, "spring", 1)
    Stream(store, "T01").send(sale(1, "T01-a", used=[code]))
    events = [sale(1, "T02-a", used=[code])]
    body = wire.encode_batch("T02", 1, b"", events)
    store.ingest(wire.decode_batch(body), b"\x05" * 32)
    store.ingest(wire.decode_batch(body), b"\x05" * 32)  # a lost ack: the same batch again
    assert len(coupons.double_used(store)) == 1


def test_the_cli_issues_lists_and_shows(dsn: str) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "central.cli", "--db", dsn, *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    refused = cli("coupons", "issue", "spring")
    assert refused.returncode == 2 and "not in the published rules" in refused.stderr
    rules = Path(os.environ.get("TMPDIR", "/tmp")) / f"coupons-{os.getpid()}.toml"
    rules.write_text(RULES)
    try:
        assert cli("publish", "rules", str(rules)).returncode == 0
    finally:
        rules.unlink()
    made = cli("coupons", "issue", "spring", "--count", "2").stdout.split()
    assert len(made) == 2 and all(codes.is_coupon_code(c) for c in made)
    shown = json.loads(cli("coupons", "show", made[0].lower()).stdout)
    assert shown["series"] == "spring" and shown["state"] == "unspent"
    assert len(cli("coupons", "list", "spring").stdout.splitlines()) == 2
    assert cli("coupons", "double-used").stdout == ""
    assert cli("coupons", "show", "CP-C-NOPE").returncode == 2
    assert cli("coupons", "issue", "spring", "--count", "0").returncode == 2
