"""The protocol as another team would implement it: an independent client of a real
`posterm-central serve` process, written from docs/protocol.md alone — its own msgpack framing
and HMAC signing, no import from the project (so it cannot share the project's mistakes).
Runs on SQLite and, with POSTERM_TEST_PG_DSN, on PostgreSQL (whose public schema it empties)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

REPO = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("POSTERM_TEST_PG_DSN", "")
START_TIMEOUT_S = 15.0
EPOCH = 1_700_000_000_000
AT = "2026-11-23T10:00:00+03:00"
AT_MS = 1_795_417_200_000  # AT in ms since 1970 UTC


# ---------------------------------------------------------------- the client, from the doc


def mac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


class Reply:
    def __init__(self, status: int, body: bytes, headers: Any) -> None:
        self.status, self.body, self.signature = status, body, headers.get("X-Posterm-MAC")

    def value(self) -> Any:
        return msgpack.unpackb(self.body, raw=False)

    def signed_by(self, key: bytes) -> bool:
        return self.signature is not None and hmac.compare_digest(self.signature, mac(key, self.body))


class Client:
    def __init__(self, url: str, terminal: str, key: bytes) -> None:
        self.url, self.terminal, self.key = url, terminal, key

    def request(self, method: str, path: str, body: bytes | None = None, key: bytes | None = None) -> Reply:
        signed = body if body is not None else f"{method} {path}".encode()
        headers = {"X-Posterm-Terminal": self.terminal, "X-Posterm-MAC": mac(key or self.key, signed)}
        if body is not None:
            headers["Content-Type"] = "application/msgpack"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return Reply(resp.status, resp.read(), resp.headers)
        except urllib.error.HTTPError as err:
            return Reply(err.code, err.read(), err.headers)

    def batch(self, first_seq: int, events: list[dict[str, Any]], prev_mac: bytes, key: bytes | None = None) -> Reply:
        return self.request("POST", "/v1/batches", batch_body(self.terminal, first_seq, events, prev_mac), key)


def batch_body(terminal: str, first_seq: int, events: list[dict[str, Any]], prev_mac: bytes) -> bytes:
    return msgpack.packb(
        {"v": 1, "terminal": terminal, "epoch": EPOCH, "first_seq": first_seq,
         "last_seq": first_seq + len(events) - 1, "prev_mac": prev_mac, "events": events},
        use_bin_type=True,
    )


def event(seq: int, kind: str, at: str = AT, at_ms: int = AT_MS, **fields: Any) -> dict[str, Any]:
    return {"id": secrets.token_hex(16), "epoch": EPOCH, "seq": seq, "type": kind, "at": at, "at_ms": at_ms,
            "shift": 1, "deltas": {}, **fields}


def sale(seq: int, receipt: str, card: str | None, accrued: int, **extra: Any) -> dict[str, Any]:
    lines = [
        {"sku": "MILK", "qty_milli": 2000, "price": 100, "amount": 200, "discount": 10, "redeem_amount": 0,
         "paid": 190, "rules": ["milk-5"]},
        {"sku": "BREAD", "qty_milli": 1000, "price": 50, "amount": 50, "discount": 0, "redeem_amount": 0,
         "paid": 50, "rules": []},
    ]
    moved = {"deltas": {card: accrued}, "lots": {card: [
        {"points": accrued, "available_from": AT, "expires_at": "2027-11-23T10:00:00+03:00"}]}} if accrued else {}
    fields = {"receipt": receipt, "card": card, "card_type": "standard" if card else None, "card_type_after": None,
              "subtotal": 250, "discount": 10, "total": 240, "to_pay": 240,
              "tenders": [{"method": "cash", "amount": 240}], "redeemed": 0, "redeemed_money": 0,
              "accrued": accrued, "referral": [], "lines": lines, "gifts": [{"rule": "mug", "sku": "MUG", "qty": 1}],
              **moved, **extra}
    return event(seq, "sale", **fields)


def adjustment(seq: int, card: str, points: int) -> dict[str, Any]:
    return event(seq, "adjustment", deltas={card: points}, lots={card: [
        {"points": points, "available_from": AT, "expires_at": None}]},
        card=card, points=points, reason="goodwill", technician="t1")


# ---------------------------------------------------------------- a real server


def central(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "central.cli", "--db", dsn, *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["sqlite", "pg"])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'central.db'}"
    if not PG_DSN:
        pytest.skip("PostgreSQL: set POSTERM_TEST_PG_DSN")
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return PG_DSN


@pytest.fixture
def server(dsn: str, tmp_path: Path) -> Iterator[tuple[str, str, bytes]]:
    added = central(dsn, "terminal", "add", "T01")
    assert added.returncode == 0, added.stderr
    key = bytes.fromhex(added.stdout.strip())
    port = free_port()
    log = open(tmp_path / "central.log", "wb")  # noqa: SIM115 — the child's for its life
    proc = subprocess.Popen([sys.executable, "-m", "central.cli", "--db", dsn, "serve", "--port", str(port)],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=1):
                break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "central.log").read_text()
            time.sleep(0.05)
    try:
        yield url, dsn, key
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


# ---------------------------------------------------------------- the contract


def test_batches_redelivery_gaps_chain_and_auth(server: tuple[str, str, bytes]) -> None:
    url, _, key = server
    client = Client(url, "T01", key)
    first = [sale(1, "s1", "C1", 12), sale(2, "s2", None, 0), adjustment(3, "C1", 5)]
    body = batch_body("T01", 1, first, b"")
    stored = client.request("POST", "/v1/batches", body)
    assert stored.status == 200 and stored.signed_by(key)
    reply = stored.value()
    assert reply["acked_through"] == 3 and reply["stored"] == 3 and reply["duplicates"] == 0
    assert reply["results"] == [{"from": 1, "to": 3, "status": "stored"}]
    chain = bytes.fromhex(mac(key, body))
    assert reply["prev_mac"] == chain

    again = client.request("POST", "/v1/batches", body)  # a lost ack: the same bytes again
    assert again.status == 200 and again.signed_by(key)
    assert again.value()["duplicates"] == 3 and again.value()["stored"] == 0

    gap = client.batch(10, [sale(10, "s10", None, 0)], chain)
    assert gap.status == 409 and gap.signed_by(key)
    assert gap.value()["error"] == "gap" and gap.value()["expected_seq"] == 4 and gap.value()["prev_mac"] == chain

    wrong = client.batch(4, [sale(4, "s4", None, 0)], b"\x01" * 32)
    assert wrong.status == 409 and wrong.signed_by(key) and wrong.value()["error"] == "chain"
    assert wrong.value()["prev_mac"] == chain

    forged = client.batch(4, [sale(4, "s4", None, 0)], chain, key=b"\x00" * 32)
    assert forged.status == 401 and forged.signature is None
    stranger = Client(url, "T99", key).batch(1, [sale(1, "x", None, 0)], b"")
    assert stranger.status == 401 and stranger.signature is None

    conflict = client.batch(1, [sale(1, "other", None, 0)], b"")  # seq 1 again, another event
    assert conflict.status == 409 and conflict.signed_by(key) and conflict.value()["error"] == "conflict"

    nxt = client.batch(4, [sale(4, "s4", None, 0)], chain)
    assert nxt.status == 200 and nxt.value()["acked_through"] == 4


REFUSED = [
    ("unknown type", lambda: event(1, "foo"), "type"),
    ("unknown key", lambda: {**sale(1, "s1", None, 0), "colour": "red"}, "unknown field"),
    ("at_ms missing", lambda: {k: v for k, v in sale(1, "s1", None, 0).items() if k != "at_ms"}, "at_ms"),
    ("at_ms garbage", lambda: sale(1, "s1", None, 0, at_ms="garbage"), "at_ms"),
    ("at garbage", lambda: {**sale(1, "s1", None, 0), "at": "yesterday"}, "field at"),
    ("at and at_ms disagree", lambda: {**sale(1, "s1", None, 0), "at_ms": AT_MS + 1}, "at_ms"),
    ("before 2000", lambda: {**sale(1, "s1", None, 0), "at": "1999-12-31T00:00:00+00:00",
                             "at_ms": 946_598_400_000}, "at_ms"),
    ("year 10000", lambda: {**sale(1, "s1", "C1", 3), "lots": {"C1": [
        {"points": 3, "available_from": AT, "expires_at": "9999-12-31T23:00:00-05:00"}]}}, "expires_at"),
    ("amount beyond the limit", lambda: sale(1, "s1", None, 0, total=10**15 + 1), "total"),
    ("points beyond the limit", lambda: adjustment(1, "C1", 2**62), "points"),
    ("delta beyond the limit", lambda: {**adjustment(1, "C1", 5), "deltas": {"C1": 10**13}}, "deltas"),
    ("sale without card moving points", lambda: {**sale(1, "s1", "C1", 4), "card": None}, "card"),
    ("line of the wrong type", lambda: sale(1, "s1", None, 0, lines=[{"sku": "A", "qty_milli": "1"}]), "lines[0]"),
    ("bool for an integer", lambda: sale(1, "s1", None, 0, redeemed=True), "redeemed"),
]


@pytest.mark.parametrize(("why", "make", "field"), REFUSED, ids=[r[0] for r in REFUSED])
def test_each_refusal_class_is_400_names_seq_and_field_and_stores_nothing(
    server: tuple[str, str, bytes], why: str, make: Any, field: str
) -> None:
    url, _, key = server
    client = Client(url, "T01", key)
    good = sale(1, "s1", None, 0)
    bad = make()
    bad["seq"] = 2
    refused = client.batch(1, [good, bad], b"")
    assert refused.status == 400 and refused.signed_by(key), refused.body[:300]
    reply = refused.value()
    assert reply["error"] == "malformed" and "event 2" in reply["message"] and field in reply["message"], reply
    stored = client.batch(1, [good], b"")  # nothing of the refused batch was kept
    assert stored.status == 200 and stored.value()["stored"] == 1


def test_malformed_bodies(server: tuple[str, str, bytes]) -> None:
    url, _, key = server
    client = Client(url, "T01", key)
    body = batch_body("T01", 1, [sale(1, "s1", None, 0)], b"")
    for broken in (body[:-3], body + b"\xc0", b"\x93\x01\x02\x03"):
        reply = client.request("POST", "/v1/batches", broken)
        assert reply.status == 400 and reply.signed_by(key) and reply.value()["error"] == "malformed"
    huge = client.request("POST", "/v1/batches", b"\x00" * (1024 * 1024 + 1))
    assert huge.status == 413 and huge.signature is None


def test_every_404_is_signed(server: tuple[str, str, bytes]) -> None:
    url, _, key = server
    client = Client(url, "T01", key)
    for method, path, body in (("GET", "/v1/cards/NOPE", None), ("GET", "/v1/nothing-here", None),
                               ("GET", "/", None), ("POST", "/v1/nothing", b"\x80"),
                               ("GET", "/v1/receipts/none", None), ("DELETE", "/v1/batches", None)):
        reply = client.request(method, path, body)
        assert reply.status == 404 and reply.signed_by(key), (method, path, reply.status)
        assert reply.value()["error"] == "not_found"
    unsigned = Client(url, "T01", b"\x00" * 32).request("GET", "/v1/nothing-here")
    assert unsigned.status == 401 and unsigned.signature is None


def test_updates_card_and_receipt_lookup(server: tuple[str, str, bytes]) -> None:
    url, _, key = server
    client = Client(url, "T01", key)
    assert client.batch(1, [sale(1, "s1", "C1", 12), adjustment(2, "C1", 5)], b"").status == 200
    page = client.request("GET", "/v1/updates?since=0")
    assert page.status == 200 and page.signed_by(key)
    feed = page.value()
    assert feed["v"] == 1 and feed["acked"] == {"epoch": EPOCH, "seq": 2}
    assert [(c["number"], c["balance"], c["cumulative"]) for c in feed["cards"]] == [("C1", 17, 240)]
    assert client.request("GET", f"/v1/updates?since={feed['cursor']}").value()["cards"] == []
    card = client.request("GET", "/v1/cards/C1")
    assert card.status == 200 and card.signed_by(key) and card.value()["balance"] == 17
    receipt = client.request("GET", "/v1/receipts/s1")
    assert receipt.status == 200 and receipt.signed_by(key)
    found = receipt.value()
    assert (found["terminal"], found["card"], found["seq"]) == ("T01", "C1", 1)
    assert [line["sku"] for line in found["lines"]] == ["MILK", "BREAD"] and found["gifts"][0]["sku"] == "MUG"
    bad_since = client.request("GET", "/v1/updates?since=-1")
    assert bad_since.status == 400 and bad_since.signed_by(key)


@pytest.mark.parametrize("points", ["4611686018427387904", "10^23", "1000000001", "-1000000001", "0"])
def test_central_refuses_adjustments_a_terminal_would_refuse(server: tuple[str, str, bytes], points: str) -> None:
    _, dsn, _ = server
    refused = central(dsn, "card", "adjust", "C1", "--", points)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert central(dsn, "card", "show", "C1").returncode == 2  # nothing was created


def test_central_refuses_publishes_a_terminal_would_refuse(server: tuple[str, str, bytes], tmp_path: Path) -> None:
    url, dsn, key = server
    bad_rules = tmp_path / "bad.toml"
    bad_rules.write_text('[[rule]]\nid = "x"\nkind = "discount"\npercent = 500\n')
    bad_catalog = tmp_path / "bad.csv"
    bad_catalog.write_text("sku,barcodes,name,price\nA,111,Apple,10\nB,111,Bean,20\n")
    long_sku = tmp_path / "long.csv"
    long_sku.write_text(f"sku,name,price\n{'x' * 65},Thing,10\n")
    for args in (("publish", "rules", str(bad_rules)), ("publish", "catalog", str(bad_catalog)),
                 ("publish", "catalog", str(long_sku))):
        refused = central(dsn, *args)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    feed = Client(url, "T01", key).request("GET", "/v1/updates?since=0").value()
    assert feed["rules"] is None and feed["catalog"] == []


def test_times_are_checked_at_their_range_edges(server: tuple[str, str, bytes]) -> None:
    url, _, key = server
    client = Client(url, "T01", key)
    low = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    edge = event(1, "expiry", at=low.isoformat(), at_ms=946_684_800_000, card="C1", points=0)
    assert client.batch(1, [edge], b"").status == 200

