"""The web console over HTTP on both stores: every route needs its role, POSTs need the CSRF
token, logins are rate limited, card actions and publishing change exactly what they say (and
nothing when refused), and every change has its audit row."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from central import console_db, passwords
from central.balances import CardState
from central.server import make_app
from central.store import Store
from central.web import ROUTES, auth
from protocol import wire
from tests.central.console_client import PASSWORD, Console, add_user, run_console
from tests.central.events import complete

GOOD_RULES = """
[program]
version = "r2"
point_value = 100

[[rule]]
id = "five-off"
kind = "discount"
percent = 5

[[rule]]
id = "points-2"
kind = "accrual"
percent = 2
"""
BAD_RULES = GOOD_RULES.replace("percent = 5", "percent = 500")
CATALOG = "sku,barcodes,name,price,categories\nmilk,4600000000022,Milk,8990,grocery/dairy\nbread,,Bread,5000,grocery\n"
CARD_HEAD = "number,type,holder,cumulative,balance,expires_at,referrers,blocked,birth_date,issued_on,tags\n"

NewConsole = Callable[[], Awaitable[Console]]


def _cards(store: Store) -> None:
    store.put_cards([CardState("7700000000026", balance=500, type="standard", holder="Anna Petrova")])


def _balance(store: Store, number: str = "7700000000026") -> int:
    found = store.card(number)
    assert found is not None
    return found[0].balance


def test_every_console_route_names_its_role(store: Store, dsn: str) -> None:
    app = make_app(store)
    guarded = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/console") and path != "/console":
            guarded[(route.method, path)] = getattr(route.handler, "console_role", None)
    assert None not in guarded.values(), guarded
    public = {k for k, v in guarded.items() if v == "public"}
    assert public == {("GET", "/console/static/console.css"), ("GET", "/console/login"), ("POST", "/console/login")}
    assert len(guarded) == len(ROUTES) + 1  # and the catch-all


def test_without_a_session_pages_send_to_the_login_and_posts_get_401(store: Store, dsn: str) -> None:
    _cards(store)

    async def scenario(new: NewConsole) -> None:
        anonymous = await new()
        for method, path, role, _ in ROUTES:
            if role is None:
                continue
            path = path.replace("{number}", "7700000000026").replace("{draft}", "0" * 64)
            if method == "GET":
                status, _ = await anonymous.get(path)
                assert status == 303, path
            else:
                status, body, _ = await anonymous.post(path, {"points": "5", "reason": "test"}, csrf="x")
                assert status == 401 and "not logged in" in body, path
        assert _balance(store) == 500

    run_console(dsn, scenario)


def test_roles_are_enforced_on_the_server(store: Store, dsn: str) -> None:
    _cards(store)
    for name, role in (("vic", "viewer"), ("sam", "support"), ("mia", "marketing")):
        add_user(store, name, role)

    async def scenario(new: NewConsole) -> None:
        viewer, support, marketing = await new(), await new(), await new()
        for console, name in ((viewer, "vic"), (support, "sam"), (marketing, "mia")):
            assert (await console.login(name)).status == 303
        status, body = await viewer.get("/console/cards/7700000000026")
        assert status == 200 and "A••• P•••" in body and "Petrova" not in body
        assert 'id="adjust"' not in body  # hidden for a viewer …
        status, body, _ = await viewer.post("/console/cards/7700000000026/adjust", {"points": "50", "reason": "x" * 5})
        assert status == 403 and "support role" in body  # … and refused on the server
        status, _, _ = await viewer.post("/console/cards/7700000000026/block", {"action": "block", "reason": "lost"})
        assert status == 403
        status, _ = await support.get("/console/audit")
        assert status == 403
        form = aiohttp.FormData()
        form.add_field("file", GOOD_RULES.encode(), filename="r.toml")
        status, _, _ = await support.post("/console/rules/upload", form)
        assert status == 403
        form = aiohttp.FormData()
        form.add_field("file", (CARD_HEAD + "7700000000099,standard,,0,0,,,,,,\n").encode(), filename="c.csv")
        status, _, _ = await marketing.post("/console/cardfile/upload", form)
        assert status == 403  # card files override balances: admin only
        assert _balance(store) == 500 and store.card("7700000000099") is None
        assert store.feed_items(0, 10) == [item for item in store.feed_items(0, 10) if item[1] != "rules"]

        status, _, where = await support.post("/console/cards/7700000000026/adjust",
                                              {"points": "-120", "reason": "double scan at S01"})
        assert status == 303 and "balance" in where
        assert _balance(store) == 380
        status, _, _ = await support.post("/console/cards/7700000000026/block", {"action": "block", "reason": "lost"})
        assert status == 303
        found = store.card("7700000000026")
        assert found is not None and found[0].blocked

    run_console(dsn, scenario)
    audit = console_db.audit_rows(store)
    assert [(a["actor"], a["action"], a["detail"]) for a in audit[:2]] == [
        ("sam", "card_block", "lost"), ("sam", "card_adjust", "-120 points: double scan at S01")]


def test_posts_without_the_csrf_token_change_nothing(store: Store, dsn: str) -> None:
    _cards(store)
    add_user(store, "sam", "support")

    async def scenario(new: NewConsole) -> None:
        console = await new()
        await console.login("sam")
        for token in ("", "forged", console.csrf[:-1]):
            status, body, _ = await console.post("/console/cards/7700000000026/adjust",
                                                 {"points": "50", "reason": "goodwill"}, csrf=token)
            assert status == 403 and "CSRF" in body, token
        # Another site's form, even with the token: refused by its Origin.
        reply = await console.client.post("/console/cards/7700000000026/adjust", allow_redirects=False,
                                          data={"points": "50", "reason": "goodwill", "csrf": console.csrf},
                                          headers={"Origin": "https://evil.example"})
        assert reply.status == 403
        # The login form too: a token that is not the form's cookie.
        reply = await console.client.post("/console/login", allow_redirects=False,
                                          data={"name": "sam", "password": PASSWORD, "csrf": "guess"})
        assert reply.status == 403

    run_console(dsn, scenario)
    assert _balance(store) == 500 and console_db.audit_rows(store) == [
        a for a in console_db.audit_rows(store) if a["action"] == "user_add"]


def test_wrong_passwords_are_rate_limited(store: Store, dsn: str) -> None:
    add_user(store, "ann", "viewer")

    async def scenario(new: NewConsole) -> None:
        console = await new()
        for _ in range(auth.LOGIN_FAILURES_MAX):
            reply = await console.login("ann", "wrong password!")
            assert reply.status == 401 and "wrong name or password" in await reply.text()
        reply = await console.login("ann")  # the right one, too soon
        assert reply.status == 429 and "too many failed logins" in await reply.text()
        other = await new()
        reply = await other.login("nobody-here", "whatever12345")  # unknown names count per address too
        assert reply.status == 429

    run_console(dsn, scenario)


def test_session_cookie_flags_and_logout(store: Store, dsn: str) -> None:
    add_user(store, "ann", "viewer")

    async def scenario(new: NewConsole) -> None:
        console = await new()
        reply = await console.login("ann")
        cookie = reply.cookies[auth.SESSION_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console"
        assert int(cookie["max-age"]) == auth.SESSION_TTL_S
        token = cookie.value
        assert len(token) >= 40 and token not in str(store._query("SELECT token_sha FROM console_sessions"))
        status, _ = await console.get("/console/terminals")
        assert status == 200
        status, _, where = await console.post("/console/logout", {})
        assert status == 303 and where == "/console/login"
        console.client.session.cookie_jar.update_cookies({auth.SESSION_COOKIE: token})  # replay the old one
        status, _ = await console.get("/console/terminals")
        assert status == 303

    run_console(dsn, scenario)


def _upload(text: str, name: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", text.encode(), filename=name)
    return form


def test_rules_upload_check_preview_publish(store: Store, dsn: str) -> None:
    _cards(store)
    add_user(store, "mia", "marketing")
    store.publish("product", [("milk", {"sku": "milk", "barcodes": [], "name": "Milk", "price": 10000,
                                        "categories": ["grocery"], "no_discount": False, "no_bonus": False,
                                        "min_price": 0})])

    async def scenario(new: NewConsole) -> None:
        console = await new()
        await console.login("mia")
        status, body, _ = await console.post("/console/rules/upload", _upload(BAD_RULES, "promo.toml"))
        assert status == 400
        error = re.search(r'id="error">([^<]*)<', body)
        assert error and "promo.toml" in error.group(1) and "five-off" in error.group(1) and "percent" in error.group(1)
        assert store._query("SELECT COUNT(*) FROM console_drafts")[0][0] == 0
        status, body, _ = await console.post("/console/rules/upload", _upload("\xff".encode("latin-1").decode(
            "latin-1"), "x.toml"))
        assert status == 400
        status, _, where = await console.post("/console/rules/upload", _upload(GOOD_RULES, "promo.toml"))
        assert status == 303 and "/console/rules/drafts/" in where
        status, body = await console.get(where)
        assert status == 200 and "none published" in body
        assert "catalog sample, standard card" in body and "<td>5.00</td><td>95.00</td><td>1</td><td>five-off" in body
        draft = where.rsplit("/", 1)[1]
        status, _, done = await console.post("/console/rules/publish", {"draft": draft, "version": "spring-1"})
        assert status == 303 and "spring-1" in done
        rules = [body for _, kind, _, body in store.feed_items(0, 100) if kind == "rules"]
        assert rules == [{"version": "spring-1", "text": GOOD_RULES}]
        # A second upload previews against the published rules.
        status, _, where = await console.post("/console/rules/upload",
                                              _upload(GOOD_RULES.replace("percent = 5", "percent = 7"), "p2.toml"))
        status, body = await console.get(where)
        assert "current rules (spring-1)" in body  # 5 % now, 7 % new, on the same 100.00 cart
        assert "<td>5.00</td><td>95.00</td><td>1</td><td>five-off</td>\n  <td>7.00</td><td>93.00</td>" in body
        status, body, _ = await console.post("/console/rules/publish", {"draft": draft, "version": "bad\nlabel"})
        assert status == 400 and "version" in body

    run_console(dsn, scenario)
    assert [a["action"] for a in console_db.audit_rows(store)][:1] == ["publish_rules"]


def test_catalog_and_card_file_flows(store: Store, dsn: str) -> None:
    add_user(store, "root", "admin")

    async def scenario(new: NewConsole) -> None:
        console = await new()
        await console.login("root")
        bad = CATALOG + "cheese,4600000000022,Cheese,100,grocery\n"  # milk's barcode
        status, body, _ = await console.post("/console/catalog/upload", _upload(bad, "cat.csv"))
        assert status == 400 and "cat.csv row 4" in body and "4600000000022" in body
        status, _, where = await console.post("/console/catalog/upload", _upload(CATALOG, "cat.csv"))
        status, body = await console.get(where)
        assert "2 products: 2 new" in body
        status, _, done = await console.post("/console/catalog/publish", {"draft": where.rsplit("/", 1)[1],
                                                                          "version": "c1"})
        assert status == 303 and "c1" in done
        assert store.published_barcodes() == {"milk": ["4600000000022"], "bread": []}

        rows = CARD_HEAD + "7700000000033,gold,Boris Ivanov,0,75,,,,,2023-06-01,staff\n"
        status, body, _ = await console.post("/console/cardfile/upload",
                                             _upload(rows + "77,gold,,-5,0,,,,,,\n", "cards.csv"))
        assert status == 400 and "row 3" in body and store.card("7700000000033") is None
        status, _, where = await console.post("/console/cardfile/upload", _upload(rows, "cards.csv"))
        status, body = await console.get(where)
        assert "1 cards" in body and "B••• I•••" in body and "Ivanov" not in body
        status, _, _ = await console.post("/console/cardfile/publish", {"draft": where.rsplit("/", 1)[1]})
        assert status == 303 and _balance(store, "7700000000033") == 75
        status, body = await console.get("/console/audit")
        assert "publish_cards" in body and "publish_catalog" in body

    run_console(dsn, scenario)


def test_search_by_phone_and_the_history(store: Store, dsn: str) -> None:
    _cards(store)
    add_user(store, "ann", "viewer")
    registered = complete({"id": os.urandom(16).hex(), "epoch": 1, "seq": 1, "type": "card_registered",
                           "card": "7700000000026", "card_type": "standard", "phone": "79123456789",
                           "phone_masked": "+7 *** ***-**-89", "store": "S01"})
    sale = complete({"id": os.urandom(16).hex(), "epoch": 1, "seq": 2, "type": "sale", "receipt": "T01-9",
                     "card": "7700000000026", "accrued": 12, "deltas": {"7700000000026": 12}})
    key = os.urandom(wire.KEY_BYTES)
    store.add_terminal("T01", key)
    store.add_terminal("T02", os.urandom(wire.KEY_BYTES))
    store.ingest(wire.decode_batch(wire.encode_batch("T01", 1, b"", [registered, sale])), b"\x01" * 32)

    async def scenario(new: NewConsole) -> None:
        console = await new()
        await console.login("ann")
        status, body = await console.get("/console/cards?q=%2B7%20(912)%20345-67-89")
        assert status == 200 and "+7 *** ***-**-89" in body and "79123456789" not in body
        assert "/console/cards/7700000000026" in body
        status, _ = await console.get("/console/cards?q=7700000000026")
        assert status == 303
        status, body = await console.get("/console/cards/7700000000026")
        assert "receipt T01-9" in body and "registered at store S01" in body and "79123456789" not in body
        status, body = await console.get("/console/cards?q=79000000000")
        assert "no card has the number" in body
        status, body = await console.get("/console/terminals")
        assert "T01" in body and ">2<" in body  # acked seq
        assert body.count("<td>—</td><td>20") == 2  # neither seen yet
        path = "/v1/updates?since=0"
        signed = {wire.TERMINAL_HEADER: "T01", wire.MAC_HEADER: wire.sign(key, wire.request_bytes("GET", path))}
        assert (await console.client.get(path, headers=signed)).status == 200
        forged = {wire.TERMINAL_HEADER: "T02", wire.MAC_HEADER: "00" * 32}
        assert (await console.client.get(path, headers=forged)).status == 401
        status, body = await console.get("/console/terminals")
        assert body.count("<td>—</td><td>20") == 1  # T01 seen; T02's forged request does not count
        status, body = await console.get("/console/cards/NOPE")
        assert status == 404

    run_console(dsn, scenario)


def test_passwords_are_salted_slow_hashes() -> None:
    first, second = passwords.hash_password(PASSWORD), passwords.hash_password(PASSWORD)
    assert first != second and first.startswith(f"scrypt${passwords.SCRYPT_N}$")
    assert passwords.verify(PASSWORD, first) and not passwords.verify(PASSWORD + "!", first)
    assert not passwords.verify(PASSWORD, None) and not passwords.verify(PASSWORD, "scrypt$9999999$8$1$00$00")
    with pytest.raises(passwords.PasswordError):
        passwords.hash_password("short")


def test_user_add_reads_the_password_from_stdin_never_argv(store: Store, dsn: str,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from central.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["--db", dsn, "user", "add", "rita", "--role", "support"]) == 0
    found = console_db.password_hash(store, "rita")
    assert found is not None and found[0].role == "support" and passwords.verify(PASSWORD, found[1])
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["--db", dsn, "user", "add", "rita", "--role", "admin"]) == 2  # exists: nothing changed
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["--db", dsn, "user", "add", "sid", "--role", "root"]) == 2
    assert "role 'root'" in capsys.readouterr().err
    assert [u["name"] for u in console_db.users(store)] == ["rita"]
    assert [a["actor"].startswith("cli:") for a in console_db.audit_rows(store)] == [True]


def test_report_pages_plot_inline_and_export_csv(store: Store, dsn: str) -> None:
    from tests.central import chain_data as chain

    chain.load(store)
    add_user(store, "vic", "viewer")
    span = f"from={chain.DAY1}&to={chain.DAY2}"

    async def scenario(new: NewConsole) -> None:
        anonymous = await new()
        status, _ = await anonymous.get(f"/console/reports/top_products/csv?{span}")
        assert status == 303  # no session: to the login, no data
        console = await new()
        await console.login("vic")
        status, body = await console.get(f"/console/reports/top_products?{span}")
        assert status == 200 and '<div class="plot" id="plot"><svg' in body and "<script" not in body
        assert "Apple" in body and "16.50" in body  # A: 1650 paid, shown as an amount
        reply = await console.client.get(f"/console/reports/top_products/csv?{span}")
        assert reply.status == 200 and reply.content_type == "text/csv"
        assert "attachment" in reply.headers["Content-Disposition"]
        rows = (await reply.text()).splitlines()
        assert rows[0].startswith("sku,name,qty_milli") and rows[1] == "A,Apple,6000,1800,100,1650,2"
        status, body = await console.get(f"/console/reports/points_daily?{span}")
        assert status == 200 and "<svg" in body
        status, body = await console.get("/console/reports/points_daily?from=2027-01-10&to=2029-01-10")
        assert status == 400 and "366" in body
        status, body = await console.get(f"/console/reports/nope?{span}")
        assert status == 400 and "no report" in body

    run_console(dsn, scenario)


def test_uploads_over_their_limit_are_refused_with_the_limit_named(store: Store, dsn: str) -> None:
    from central.web import publish

    add_user(store, "mia", "marketing")
    limit = publish.UPLOAD_BYTES_MAX["rules"]

    async def scenario(new: NewConsole) -> None:
        console = await new()
        await console.login("mia")
        status, body, _ = await console.post("/console/rules/upload", _upload("#" * (limit + 1), "big.toml"))
        assert status == 400 and f"more than {limit} bytes" in body and "posterm-central publish rules" in body
        big = "sku,barcodes,name,price,categories\n" + "".join(
            f"sku-{i},{4600000100000 + i},Product number {i} of the big catalog,{100 + i},grocery/dry\n"
            for i in range(4_000))
        assert 200_000 < len(big) < publish.UPLOAD_BYTES_MAX["catalog"]
        status, _, where = await console.post("/console/catalog/upload", _upload(big, "big.csv"))
        assert status == 303, where  # a body far past aiohttp's read chunks parses whole
        status, body = await console.get(where)
        assert "4000 products: 4000 new" in body
        status, body, _ = await console.post("/console/rules/upload", _upload("", "empty.toml"))
        assert status == 400 and "empty" in body
        status, body, _ = await console.post("/console/rules/upload", aiohttp.FormData({"other": "x"}))
        assert status == 400 and "choose a file" in body

    run_console(dsn, scenario)
    assert store._query("SELECT kind FROM console_drafts") == [("catalog",)] and store.feed_items(0, 10) == []


COUPON_RULES = GOOD_RULES + """
[[coupon_series]]
id = "spring"
single_use = true
valid_to = "2099-03-31"

[[rule]]
id = "spring-10"
kind = "discount"
percent = 10
when = { coupon = "spring" }
"""


def test_coupon_page_lists_series_and_issues_codes_for_marketing(store: Store, dsn: str) -> None:
    from central import coupons, publishing

    publishing.publish_rules(store, COUPON_RULES, "spring-1")
    add_user(store, "vic", "viewer")
    add_user(store, "mia", "marketing")

    async def scenario(new: NewConsole) -> None:
        viewer, marketing = await new(), await new()
        await viewer.login("vic")
        await marketing.login("mia")
        status, body = await viewer.get("/console/coupons")
        assert status == 200 and "<td>spring</td><td>single use</td><td>—</td><td>2099-03-31</td>" in body
        assert 'id="issue"' not in body and "No double use booked." in body
        status, _, _ = await viewer.post("/console/coupons/issue", {"series": "spring", "count": "2"})
        assert status == 403 and coupons.listing(store) == []
        status, body, _ = await marketing.post("/console/coupons/issue", {"series": "autumn", "count": "2"})
        assert status == 400 and "not in the published rules" in body and coupons.listing(store) == []
        status, body, _ = await marketing.post("/console/coupons/issue", {"series": "spring", "count": "x"})
        assert status == 400 and "not a whole number" in body
        status, _, where = await marketing.post("/console/coupons/issue",
                                                {"series": "spring", "count": "3", "valid_days": "30"})
        assert status == 303 and "issued+3" in where
        status, body = await marketing.get(where)
        made = coupons.listing(store)
        assert len(made) == 3 and all(c["code"] in body for c in made)
        assert {c["series"] for c in made} == {"spring"}

    run_console(dsn, scenario)
    assert [(a["actor"], a["action"], a["target"]) for a in console_db.audit_rows(store)][:1] == [
        ("mia", "coupons_issued", "spring")]
    assert sum(1 for _, kind, _, _ in store.feed_items(0, 100) if kind == "coupon") >= 1
