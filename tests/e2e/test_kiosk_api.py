"""The kiosk's routes on the real daemon, through the API itself (no browser): attendant sessions
and roles, the outbox events naming the attendant, age checks, enrolment, phone lookup, coupons,
the receipt's QR code and the screen's files."""

from __future__ import annotations

import asyncio
import datetime as dt
import urllib.request
from typing import Any

from terminal.client import ApiClient, EventWatcher
from terminal.config import load_config
from terminal.ledger import Ledger
from terminal.screen import ASSETS, ASSETS_BYTES_MAX, STATIC

from .conftest import Terminal

MILK, WINE, FRIDGE = "4600000000022", "4600000000039", "4006381333931"
PHONE = "+7 912 345-67-89"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def outbox(term: Terminal) -> list[dict[str, Any]]:
    with Ledger(term.ledger_path) as ledger:
        return ledger.outbox_pending()


def test_privileged_routes_refuse_without_a_session_and_by_role(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api:
            await api.ok("POST", "/v1/checkout/lines", {"code": MILK})
            sale = await api.ok("POST", "/v1/checkout/pay", {"method": "cash"})
            await api.ok("POST", "/v1/checkout/lines", {"code": FRIDGE})
            await api.ok("POST", "/v1/checkout/lines", {"code": MILK})
            gated = [("POST", "/v1/returns", {"receipt": sale["receipt"]}),
                     ("POST", f"/v1/receipts/{sale['receipt']}/print", None),
                     ("GET", "/v1/shift", None), ("POST", "/v1/shift/print", None),
                     ("POST", "/v1/shift/close", {"shift": 1}), ("DELETE", "/v1/checkout/lines/0", None),
                     ("POST", "/v1/checkout/cancel", None), ("POST", "/v1/checkout/age", None),
                     ("POST", "/v1/cards/7700000000026/adjust", {"points": 5, "reason": "x"}),
                     ("POST", "/v1/cash", {"kind": "in", "amount": 100, "reason": "float"})]
            for method, path, body in gated:
                status, answer = await api.call(method, path, body)
                assert status == 403 and "attendant" in answer["error"], (path, status, answer)
            api.headers = {"X-Posterm-Attendant": "forged-token"}
            assert (await api.call("POST", "/v1/returns", {"receipt": sale["receipt"]}))[0] == 403
            # an attendant may void and cancel, not return, reprint or close the shift
            await api.attendant("anna", "2468")
            for method, path, body in gated[:5]:
                status, answer = await api.call(method, path, body)
                assert status == 403 and "may not" in answer["error"], (path, answer)
            view = await api.ok("DELETE", "/v1/checkout/lines/0")
            assert [line["code"] for line in view["lines"]] == [MILK]
            assert (await api.call("POST", "/v1/checkout/cancel"))[0] == 200
            await api.ok("DELETE", "/v1/attendant/session")
            assert (await api.call("GET", "/v1/attendant/session"))[0] == 403
            await api.attendant("demo", "1234")
            ret = await api.ok("POST", "/v1/returns", {"receipt": sale["receipt"]})
            assert ret["refund"]["money"] == 8990
            adjusted = await api.ok("POST", "/v1/cards/7700000000026/adjust", {"points": 50, "reason": "goodwill"})
            assert adjusted["balance"] == 10050

    run(scenario())
    actions = [(e["type"], e.get("action"), e.get("attendant") or e.get("technician")) for e in outbox(terminal)
               if e["type"] in ("attendant_action", "adjustment")]
    assert actions == [("attendant_action", "line_removed", "anna"), ("attendant_action", "cancelled", "anna"),
                       ("attendant_action", "return", "demo"), ("adjustment", None, "demo")]


def test_wrong_pins_are_rate_limited(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api:
            for _ in range(3):
                status, body = await api.call("POST", "/v1/attendant/session", {"name": "demo", "pin": "0000"})
                assert status == 401 and "wrong" in body["error"]
            status, body = await api.call("POST", "/v1/attendant/session", {"name": "demo", "pin": "1234"})
            assert status == 429 and "try again in" in body["error"]  # locked even with the right PIN
            status, body = await api.call("POST", "/v1/attendant/session", {"name": "demo", "pin": "12a4"})
            assert status == 400
            await api.attendant("anna", "2468")  # another attendant is not locked out

    run(scenario())
    log = terminal.daemons[0].log_tail(100_000)
    assert "1234" not in log and "0000" not in log


def test_age_restricted_product_waits_for_the_attendant(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api:
            view = await api.ok("POST", "/v1/checkout/lines", {"code": WINE})
            assert view["age_check"] is True and view["lines"][0]["age_min"] == 18
            for path in ("/v1/checkout/payment", "/v1/checkout/pay"):
                status, body = await api.call("POST", path, {} if path.endswith("pay") else None)
                assert status == 409 and "age" in body["error"]
            await api.attendant("anna", "2468")
            view = await api.ok("POST", "/v1/checkout/age")
            assert view["age_check"] is False and view["lines"][0]["age_ok"] is True
            sale = await api.ok("POST", "/v1/checkout/pay", {"method": "cash"})
            assert sale["quote"]["to_pay"] == 79900

    run(scenario())
    approvals = [e for e in outbox(terminal) if e.get("action") == "age_approved"]
    assert len(approvals) == 1 and approvals[0]["attendant"] == "anna" and approvals[0]["role"] == "attendant"


def test_enrolment_makes_a_card_found_by_phone_and_a_card_registered_event(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api, EventWatcher(api) as events:
            screen = await api.ok("GET", "/v1/screen")
            assert screen["enrolment"] and "loyalty programme" in screen["terms"] and screen["point_value"] == 100
            status, body = await api.call("POST", "/v1/cards", {"phone": PHONE, "consent": False,
                                                                "terms_version": screen["terms_version"]})
            assert status == 400 and "consent" in body["error"]
            card = await api.ok("POST", "/v1/cards", {"phone": PHONE, "consent": True,
                                                      "terms_version": screen["terms_version"]})
            assert card["phone"] == "+7 *** ***-**-89" and card["card"].startswith("77") and len(card["card"]) == 13
            _, event = await events.wait_for("card_registered")
            assert event["phone"] == "+7 *** ***-**-89"
            status, body = await api.call("POST", "/v1/cards", {"phone": "79123456789", "consent": True,
                                                                "terms_version": screen["terms_version"]})
            assert status == 409 and "already has a card" in body["error"]
            await api.ok("POST", "/v1/checkout/lines", {"code": MILK})
            view = await api.ok("POST", "/v1/checkout/phone", {"phone": "+7 (912) 345 67 89"})
            assert view["card"] == card["card"]
            status, body = await api.call("POST", "/v1/checkout/phone", {"phone": "+7 900 000-00-00"})
            assert status == 404
            status, body = await api.call("POST", "/v1/checkout/coupon", {"code": "SPR-0001"})
            assert status == 404 and "not known to this terminal" in body["error"]  # no such code fed
            assert (await api.call("POST", "/v1/checkout/coupon", {"code": "<script>"}))[0] == 400
            return str(card["card"])

    number = run(scenario())
    registered = [e for e in outbox(terminal) if e["type"] == "card_registered"]
    assert len(registered) == 1
    event = registered[0]
    assert event["card"] == number and event["phone"] == "79123456789" and event["store"] == "S01"
    assert event["consent"]["terms_version"] == "1" and len(event["consent"]["terms_sha256"]) == 64
    with Ledger(terminal.ledger_path) as ledger:
        assert ledger.card(number, dt.datetime.now().astimezone())["balance"] == 0
        assert ledger.verify()["ok"]  # the phone index is sealed like every other record
    log = terminal.daemons[0].log_tail(100_000)
    assert "9123456789" not in log and "345-67" not in log


def test_the_screen_its_files_and_the_receipt_qr_on_loopback_tcp(terminal: Terminal) -> None:
    terminal.start()
    port = load_config(terminal.config).api_tcp_port
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/", timeout=5) as resp:
        page = resp.read().decode()
        assert resp.headers["Content-Type"].startswith("text/html") and "/screen/app.js" in page
    with urllib.request.urlopen(f"{base}/screen/app.js", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/javascript")

    async def scenario() -> str:
        async with ApiClient(terminal.socket) as api:
            assert (await api.call("GET", "/screen/../attendants.json"))[0] == 404
            assert (await api.call("GET", "/screen/nothing.js"))[0] == 404
            await api.ok("POST", "/v1/checkout/lines", {"code": MILK})
            sale = await api.ok("POST", "/v1/checkout/pay", {"method": "cash"})
            assert (await api.call("GET", "/v1/receipts/T01-none/qr.svg"))[0] == 404
            return str(sale["receipt"])

    receipt = run(scenario())
    with urllib.request.urlopen(f"{base}/v1/receipts/{receipt}/qr.svg", timeout=5) as resp:
        svg = resp.read().decode()
    assert resp.headers["Content-Type"] == "image/svg+xml" and svg.startswith("<svg") and receipt in svg


def test_the_screens_assets_stay_small() -> None:
    sizes = {name: (STATIC / name).stat().st_size for name in ASSETS}
    total = sum(p.stat().st_size for p in STATIC.rglob("*") if p.is_file())
    print(f"\nkiosk screen assets: {sizes}, total {total} bytes")
    assert set(p.name for p in STATIC.iterdir()) == set(ASSETS)  # nothing served that is not counted
    assert total <= ASSETS_BYTES_MAX
