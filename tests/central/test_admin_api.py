"""The admin API against a real `posterm-central serve` on loopback, on SQLite and PostgreSQL:
tokens and scopes, card lookup, enrolment and blocking (idempotent, reaching terminals through
the updates feed), reports as JSON, refusals that change nothing. Every reply is checked against
docs/admin-openapi.yaml (tests/central/admin_doc.py)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from central import admin_store, coupons, reports
from central.cli import main
from protocol import wire
from tests.central import chain_data as chain
from tests.central.admin_doc import check_reply
from tests.central.events import complete
from tests.central.helpers import CentralProcess, fresh_store

ALL = list(admin_store.SCOPES)
RULES = Path(__file__).resolve().parents[2] / "examples" / "awards.toml"
COUPON_RULES = RULES.with_name("coupons.toml")
PHONE_MASKED = "+7 *** ***-**-89"


@dataclass
class Api:
    url: str
    tokens: dict[str, str]
    dsn: str
    terminal_key: bytes

    def call(self, method: str, path: str, doc_path: str, token: str | None = "all", body: Any = None,
             key: str | None = None, raw: bytes | None = None, headers: dict[str, str] | None = None,
             ) -> tuple[int, Any, dict[str, str]]:
        """One request; the reply is checked against the document (`doc_path`: its template)."""
        sent = {**(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        if key is not None:
            sent["Idempotency-Key"] = key
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                status, payload, got = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            status, payload, got = exc.code, exc.read(), exc.headers
        reply = json.loads(payload)
        check_reply(method, doc_path, status, got, reply)
        return status, reply, dict(got)

    def updates(self, since: int = 0) -> dict[str, Any]:
        """The updates feed as terminal T01 pulls it (a signed GET)."""
        path = f"/v1/updates?since={since}"
        headers = {wire.TERMINAL_HEADER: "T01", wire.MAC_HEADER: wire.sign(self.terminal_key,
                                                                           wire.request_bytes("GET", path))}
        with urllib.request.urlopen(urllib.request.Request(self.url + path, headers=headers), timeout=10) as resp:
            return wire.decode_updates(resp.read())


def _registration(terminal: str, key: bytes, url: str) -> None:
    """A kiosk's card_registered event for C2, posted as a terminal does (a signed batch)."""
    event = complete({
        "id": os.urandom(16).hex(), "epoch": 1, "seq": 1, "type": "card_registered", "at_ms": chain.ms(chain.DAY2),
        "card": "C2", "card_type": "gold", "phone": "79123456789", "phone_masked": PHONE_MASKED, "store": "S1",
        "consent": {"terms_version": "1", "terms_sha256": "0" * 64, "at": chain.iso(chain.DAY2)},
    })
    body = wire.encode_batch(terminal, 1, b"", [event])
    headers = {wire.TERMINAL_HEADER: terminal, wire.MAC_HEADER: wire.sign(key, body),
               "Content-Type": wire.CONTENT_TYPE}
    request = urllib.request.Request(url + "/v1/batches", data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


@pytest.fixture
def api(dsn: str, tmp_path: Path) -> Iterator[Api]:
    store = fresh_store(dsn)
    chain.load(store)
    store.publish("rules", [("rules", {"version": "awards-1", "text": RULES.read_text()})])
    tokens = {
        "all": admin_store.add_token(store, "crm", ALL),
        "reader": admin_store.add_token(store, "app", ["cards:read"]),
        "revoked": admin_store.add_token(store, "old", ALL),
    }
    admin_store.revoke_token(store, "old")
    t01_key, t03_key = os.urandom(wire.KEY_BYTES), os.urandom(wire.KEY_BYTES)
    store.set_key("T01", t01_key, 0)
    store.add_terminal("T03", t03_key)
    store.close()
    server = CentralProcess(dsn, tmp_path / "central.log", extra=("--expire-every-s", "0")).start()
    try:
        _registration("T03", t03_key, server.url)
        yield Api(server.url, tokens, dsn, t01_key)
    finally:
        server.stop()


def test_tokens_and_scopes_are_checked_on_every_route(api: Api) -> None:
    for token in (None, "pta_nope", "revoked", "not-even-a-prefix"):
        status, reply, headers = api.call("GET", "/admin/v1/cards/C1", "/admin/v1/cards/{number}", token=token)
        assert status == 401 and reply["error"] == "unauthorized" and "Bearer" in headers["WWW-Authenticate"]
    status, reply, _ = api.call("GET", "/admin/v1/reports", "/admin/v1/reports", token="reader")
    assert status == 403 and "reports:read" in reply["message"]
    status, reply, _ = api.call("POST", "/admin/v1/cards/C1/block", "/admin/v1/cards/{number}/block",
                                token="reader", key="k1")
    assert status == 403 and "cards:write" in reply["message"]
    assert api.call("GET", "/admin/v1/cards/C1", "/admin/v1/cards/{number}", token="reader")[0] == 200


def _request(url: str, method: str, path: str, token: str | None) -> tuple[int, dict[str, Any], Any]:
    """A request to a route the document does not list."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, method=method, headers=headers),
                                    timeout=10) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def test_unknown_routes_and_methods_answer_json_after_authentication(api: Api) -> None:
    status, reply, _ = _request(api.url, "GET", "/admin/v1/nope", None)
    assert status == 401 and reply["error"] == "unauthorized"
    status, reply, _ = _request(api.url, "GET", "/admin/v1/nope", api.tokens["all"])
    assert status == 404 and reply["error"] == "not_found"
    status, reply, headers = _request(api.url, "DELETE", "/admin/v1/cards/C1", api.tokens["all"])
    assert status == 405 and reply["error"] == "method_not_allowed" and headers["Allow"] == "GET"


def test_card_lookup_shows_lots_with_dates_and_the_masked_phone(api: Api) -> None:
    status, card, headers = api.call("GET", "/admin/v1/cards/C1", "/admin/v1/cards/{number}")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert (card["type"], card["balance"], card["blocked"]) == ("silver", 70, False)
    assert [(lot["points"], lot["expires_at"]) for lot in card["lots"]] == [
        (20, chain.iso(chain.MAR)), (50, chain.iso(chain.JUN))]
    assert card["phone_masked"] is None
    _, c2, _ = api.call("GET", "/admin/v1/cards/C2", "/admin/v1/cards/{number}")
    assert c2["phone_masked"] == PHONE_MASKED and "79123456789" not in json.dumps(c2)
    assert "holder" not in c2
    status, reply, _ = api.call("GET", "/admin/v1/cards/NOPE", "/admin/v1/cards/{number}")
    assert status == 404 and reply["error"] == "not_found"


def test_enrol_is_idempotent_and_reaches_terminals_through_the_feed(api: Api) -> None:
    cursor = api.updates()["cursor"]
    body = {"number": "N1", "type": "silver", "holder": "Ivan", "balance": 40, "expires_at": chain.iso(chain.JUN)}
    status, card, headers = api.call("POST", "/admin/v1/cards", "/admin/v1/cards", body=body, key="enrol-N1")
    assert status == 201 and "Idempotent-Replayed" not in headers
    assert card["balance"] == 40 and card["lots"] == [
        {"points": 40, "available_from": None, "expires_at": chain.iso(chain.JUN), "debt": False}]
    again = api.call("POST", "/admin/v1/cards", "/admin/v1/cards", body=body, key="enrol-N1")
    assert again[:2] == (201, card) and again[2]["Idempotent-Replayed"] == "true"
    other = api.call("POST", "/admin/v1/cards", "/admin/v1/cards", body={**body, "balance": 41}, key="enrol-N1")
    assert other[0] == 422 and other[1]["error"] == "idempotency_mismatch"
    dup = api.call("POST", "/admin/v1/cards", "/admin/v1/cards", body=body, key="enrol-N1-again")
    assert dup[0] == 409 and dup[1]["error"] == "conflict"
    page = api.updates(cursor)
    fed = [c for c in page["cards"] if c["number"] == "N1"]
    assert len(fed) == 1 and fed[0]["balance"] == 40 and fed[0]["holder"] == "Ivan"
    assert fed[0]["version"] == card["version"]
    store = fresh_store_keep(api.dsn)
    try:
        writes = admin_store.writes(store)
        assert [(w["token"], w["key"], w["path"], w["status"]) for w in writes] == [
            ("crm", "enrol-N1", "/admin/v1/cards", 201)]
        assert store.verify()["ok"]
    finally:
        store.close()


def test_concurrent_requests_with_one_key_write_once(api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path, doc = "/admin/v1/cards/C1/awards", "/admin/v1/cards/{number}/awards"
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: api.call("POST", path, doc, body={"award": "review"}, key="same"),
                                range(8)))
    assert {status for status, _, _ in replies} == {201}
    assert len({json.dumps(reply, sort_keys=True) for _, reply, _ in replies}) == 1  # one stored reply
    assert sum("Idempotent-Replayed" not in headers for _, _, headers in replies) == 1
    _, card, _ = api.call("GET", "/admin/v1/cards/C1", "/admin/v1/cards/{number}")
    assert card["balance"] == 70 + 20  # granted once


def fresh_store_keep(dsn: str) -> Any:
    """The test's database as it is (not emptied)."""
    from central.store import open_store

    return open_store(dsn)


BAD_ENROLMENTS = [
    ({"type": "x"}, "number"),
    ({"number": "N2", "balance": -1}, "balance"),
    ({"number": "N2", "balance": True}, "balance"),
    ({"number": "N2", "balance": 10**13}, "balance"),
    ({"number": "N2", "expires_at": "2020-01-01T00:00:00+00:00", "balance": 5}, "expires_at"),
    ({"number": "N2", "expires_at": "tomorrow"}, "expires_at"),
    ({"number": "N2", "referrers": ["N2"]}, "referrers"),
    ({"number": "N2", "type": "x" * 65}, "type"),
    ({"number": "N2", "holder": "a\x00b"}, "holder"),
    ({"number": "N2", "colour": "red"}, "colour"),
    ({"number": "x" * 65}, "number"),
]


def test_a_bad_enrolment_is_refused_with_the_field_named_and_changes_nothing(api: Api) -> None:
    for body, field in BAD_ENROLMENTS:
        status, reply, _ = api.call("POST", "/admin/v1/cards", "/admin/v1/cards", body=body, key="k-bad")
        assert status == 400 and reply["error"] == "invalid" and f"field {field}" in reply["message"], (body, reply)
    assert api.call("GET", "/admin/v1/cards/N2", "/admin/v1/cards/{number}")[0] == 404
    # The key was not used up: the same key with a good body enrols.
    status, card, _ = api.call("POST", "/admin/v1/cards", "/admin/v1/cards", body={"number": "N2"}, key="k-bad")
    assert status == 201 and card["balance"] == 0


def test_malformed_and_oversized_bodies_and_keys(api: Api) -> None:
    doc = "/admin/v1/cards"
    assert api.call("POST", doc, doc, body={"number": "N3"})[1]["message"].startswith("every write needs")
    assert api.call("POST", doc, doc, body={"number": "N3"}, key="x" * 65)[0] == 400
    assert api.call("POST", doc, doc, raw=b"{nope", key="k")[0] == 400
    assert api.call("POST", doc, doc, raw=b"[1]", key="k")[1]["message"] == "body must be a JSON object"
    assert api.call("POST", doc, doc, raw=b"[" * 20_000, key="k")[0] == 400
    assert api.call("POST", doc, doc, raw=b'{"number":"N3"}', key="k", headers={"Content-Type": "text/plain"})[0] == 415
    big = {"number": "N3", "holder": "x" * (70 * 1024)}
    assert api.call("POST", doc, doc, body=big, key="k")[0] == 413
    assert api.call("GET", "/admin/v1/cards/N3", "/admin/v1/cards/{number}")[0] == 404  # nothing enrolled


def test_block_and_unblock_reach_the_feed_and_are_recorded(api: Api) -> None:
    cursor = api.updates()["cursor"]
    path, doc = "/admin/v1/cards/C1/block", "/admin/v1/cards/{number}/block"
    status, card, _ = api.call("POST", path, doc, body={"reason": "lost card"}, key="b1")
    assert status == 200 and card["blocked"] is True and card["balance"] == 70  # lots untouched
    assert api.call("POST", path, doc, body={"reason": "lost card"}, key="b1")[1] == card
    assert api.call("POST", path, doc, body={"reason": "stolen"}, key="b1")[0] == 422
    fed = [c for c in api.updates(cursor)["cards"] if c["number"] == "C1"]
    assert fed and fed[0]["blocked"] is True and fed[0]["version"] == card["version"]
    status, card, _ = api.call("POST", "/admin/v1/cards/C1/unblock", "/admin/v1/cards/{number}/unblock", key="u1")
    assert status == 200 and card["blocked"] is False
    assert api.call("POST", "/admin/v1/cards/NOPE/block", doc, key="b2")[0] == 404
    assert api.call("POST", path, doc, body={"why": "x"}, key="b3")[0] == 400
    store = fresh_store_keep(api.dsn)
    try:
        assert {(w["key"], w["token"], w["status"]) for w in admin_store.writes(store)} == {
            ("b1", "crm", 200), ("u1", "crm", 200)}
        assert store.verify()["ok"]
    finally:
        store.close()


def test_awards_are_granted_once_per_key_with_the_programs_dates(api: Api) -> None:
    path, doc = "/admin/v1/cards/C1/awards", "/admin/v1/cards/{number}/awards"
    status, reply, _ = api.call("POST", path, doc, token="reader", body={"award": "review"}, key="a1")
    assert status == 403 and "awards:write" in reply["message"]
    status, reply, headers = api.call("POST", path, doc, body={"award": "review"}, key="a1")
    assert status == 201 and "Idempotent-Replayed" not in headers
    grant = reply["grant"]
    assert (grant["card"], grant["award"], grant["points"], grant["actor"]) == ("C1", "review", 20, "crm")
    assert grant["expires_at"] is not None  # review: expiry_days = 365 (examples/awards.toml)
    assert reply["card"]["balance"] == 70 + 20
    assert {"points": 20, "available_from": grant["available_from"], "expires_at": grant["expires_at"],
            "debt": False} in reply["card"]["lots"]
    again = api.call("POST", path, doc, body={"award": "review"}, key="a1")
    assert again[:2] == (201, reply) and again[2]["Idempotent-Replayed"] == "true"
    assert api.call("POST", path, doc, body={"award": "visit"}, key="a1")[0] == 422
    status, reply, _ = api.call("POST", path, doc, body={"award": "nope"}, key="a2")
    assert status == 404 and "not in the published program" in reply["message"]
    assert api.call("POST", "/admin/v1/cards/NOPE/awards", doc, body={"award": "review"}, key="a3")[0] == 404
    assert api.call("POST", path, doc, body={}, key="a4")[0] == 400
    assert api.call("POST", path, doc, body={"award": "review", "points": 5}, key="a5")[0] == 400
    # registration: per_card_max = 1
    assert api.call("POST", path, doc, body={"award": "registration"}, key="r1")[0] == 201
    status, reply, _ = api.call("POST", path, doc, body={"award": "registration"}, key="r2")
    assert status == 409 and reply["error"] == "conflict"
    api.call("POST", "/admin/v1/cards/C1/block", "/admin/v1/cards/{number}/block", key="blk")
    assert api.call("POST", path, doc, body={"award": "review"}, key="a6")[0] == 409  # blocked
    _, card, _ = api.call("GET", "/admin/v1/cards/C1", "/admin/v1/cards/{number}")
    assert card["balance"] == 70 + 20 + 100  # review once, registration once
    store = fresh_store_keep(api.dsn)
    try:
        assert store.verify()["ok"]
    finally:
        store.close()


def test_coupon_codes_are_issued_once_per_key_and_fed_to_terminals(api: Api) -> None:
    store = fresh_store_keep(api.dsn)
    try:  # the coupons example's program: its series "spring" and "next-visit"
        store.publish("rules", [("rules", {"version": "coupons-1", "text": COUPON_RULES.read_text()})])
    finally:
        store.close()
    cursor = api.updates()["cursor"]
    doc = "/admin/v1/coupons"
    status, reply, _ = api.call("POST", doc, doc, token="reader", body={"series": "spring"}, key="c1")
    assert status == 403 and "coupons:write" in reply["message"]
    body = {"series": "next-visit", "count": 3, "valid_days": 30}
    status, issued, _ = api.call("POST", doc, doc, body=body, key="c1")
    assert status == 201 and len(set(issued["codes"])) == 3 and issued["valid_to"] is not None
    again = api.call("POST", doc, doc, body=body, key="c1")
    assert again[:2] == (201, issued) and again[2]["Idempotent-Replayed"] == "true"
    assert api.call("POST", doc, doc, body={**body, "count": 4}, key="c1")[0] == 422
    status, reply, _ = api.call("POST", doc, doc, body={"series": "autumn"}, key="c2")
    assert status == 404 and "not in the published rules" in reply["message"]
    for bad in ({"series": "spring", "count": 0}, {"series": "spring", "count": 1001},
                {"series": "spring", "valid_days": 0}, {"series": "spring", "colour": 1}, {}):
        assert api.call("POST", doc, doc, body=bad, key="c3")[0] == 400, bad
    store = fresh_store_keep(api.dsn)
    try:
        known = {row["code"]: row for row in coupons.listing(store)}
        assert set(issued["codes"]) == set(known)  # the refused requests issued nothing
        assert all(known[c]["issued_by"] == "central" and known[c]["state"] == "unspent" for c in issued["codes"])
        fed = {key for _, kind, key, _ in store.feed_items(cursor, 1000) if kind == "coupon"}
        assert fed == set(issued["codes"])  # in the updates feed after the terminal's cursor
    finally:
        store.close()


def test_reports_as_json_are_the_reports(api: Api) -> None:
    status, listing, _ = api.call("GET", "/admin/v1/reports", "/admin/v1/reports")
    assert status == 200 and [r["name"] for r in listing["reports"]] == list(reports.REPORTS)
    doc = "/admin/v1/reports/{name}"
    status, found, _ = api.call("GET", "/admin/v1/reports/sales_by_level?from=2027-01-01&to=2027-03-31", doc)
    assert status == 200 and [tuple(r) for r in found["rows"]] == chain.EXPECTED["sales_by_level"]
    status, found, _ = api.call("GET", "/admin/v1/reports/top_products?from=2027-01-01&to=2027-03-31&top=2", doc)
    assert [tuple(r) for r in found["rows"]] == chain.EXPECTED["top_products"][:2]
    status, found, _ = api.call("GET", "/admin/v1/reports/sales_daily?from=2027-01-01&to=2027-03-31", doc)
    assert {(r[0], r[1]): tuple(r[2:]) for r in found["rows"]} == chain.EXPECTED["sales_daily"]
    for query, words in [("from=2027-01-01&to=2028-01-02", "at most 366"), ("from=2027-1-1&to=2027-01-02", "YYYY"),
                         ("from=2027-01-01&to=2027-01-02&top=101", "1..100"), ("to=2027-01-02", "from"),
                         ("from=2027-01-01&to=2027-01-02&x=1", "unknown")]:
        status, reply, _ = api.call("GET", f"/admin/v1/reports/points_daily?{query}", doc)
        assert status == 400 and words in reply["message"], (query, reply)
    assert api.call("GET", "/admin/v1/reports/nope?from=2027-01-01&to=2027-01-02", doc)[0] == 404


def test_token_cli_prints_the_token_once_and_stores_only_its_hash(
    dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_store(dsn).close()
    assert main(["--db", dsn, "token", "add", "crm", "--scope", "cards:read", "--scope", "reports:read"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith(admin_store.TOKEN_PREFIX)
    assert main(["--db", dsn, "token", "list"]) == 0
    listed = capsys.readouterr().out
    assert token not in listed and admin_store.token_hash(token) not in listed
    assert json.loads(listed)["scopes"] == ["cards:read", "reports:read"]
    store = fresh_store_keep(dsn)
    try:
        stored = store._query("SELECT hash FROM admin_tokens")
        assert [r[0] for r in stored] == [admin_store.token_hash(token)]
        assert admin_store.find_token(store, token) == admin_store.Token("crm", ("cards:read", "reports:read"))
    finally:
        store.close()
    assert main(["--db", dsn, "token", "add", "crm", "--scope", "cards:read"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["--db", dsn, "token", "add", "bad name", "--scope", "cards:read"]) == 2
    assert main(["--db", dsn, "token", "add", "x"]) == 2
    assert "scopes must be" in capsys.readouterr().err
    assert main(["--db", dsn, "token", "revoke", "crm"]) == 0
    assert main(["--db", dsn, "token", "revoke", "crm"]) == 2
    capsys.readouterr()
    store = fresh_store_keep(dsn)
    try:
        assert admin_store.find_token(store, token) is None
    finally:
        store.close()
