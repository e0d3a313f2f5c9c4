"""`posterm demo`: the real daemon on simulated devices, driven like a kiosk would drive it.

In a work directory (a new temporary one unless --dir): provisions a terminal with the seed
catalog, cards and rules (terminal/demo_data, the spec's scenarios §10.2 and §10.3), makes the
scanner and card reader FIFOs, starts `posterm run` as a child process, waits for its READY
datagram, then runs scripted checkouts — scans and swipes through the FIFOs, redemption and
payment through the local API — and prints each receipt as the simulated printer printed it.
Ends with a return by receipt barcode. Exits 0 when every expected number held, else 1.
With --keep-running the daemon stays up for a UI until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from terminal.client import ApiClient, DaemonProcess, EventWatcher
from terminal.provision import ProvisionRequest, provision

DATA = Path(__file__).resolve().parent / "demo_data"
STORE = "S01"
CODES = {"gs1": [{"prefix": "21", "item_digits": 5, "value": "weight_g", "value_digits": 5}],
         "cards": [{"prefix": "77", "digits": 13, "check": "ean"}]}
PRINT_WAIT_S = 10.0
STANDARD, GOLD = "7700000000026", "7700000000033"


def money(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"


def setup(workdir: Path, report: Any = None) -> Path:
    """Provision a demo terminal in `workdir`; returns the config path."""
    for fifo in ("scanner.fifo", "card.fifo"):
        path = workdir / fifo
        if not path.exists():
            os.mkfifo(path, 0o600)
    req = ProvisionRequest(
        config_path=workdir / "terminal.toml", terminal_id="T01", store=STORE, store_name="posterm demo store",
        state_dir=workdir / "state", socket=workdir / "api.sock",
        scanners=(f"sim:{workdir / 'scanner.fifo'}",), card_readers=(f"sim:{workdir / 'card.fifo'}",),
        printer=f"sim:{workdir / 'printer'}", spool_dir=workdir / "state" / "spool",
        rules=DATA / "rules.toml", catalog=DATA / "catalog.csv", cards=DATA / "cards.csv", codes=CODES,
        force=True, legal_name="Posterm Demo LLC", address="1 Main St, Springfield", tax_id="7701234567",
        payment=f"sim:{workdir / 'payment'}", fiscal=f"sim:{workdir / 'fiscal'}")
    provision(req, report or (lambda line: None))
    return req.config_path


class Demo:
    def __init__(self, workdir: Path, client: ApiClient, events: EventWatcher, out: IO[str]) -> None:
        self.workdir, self.client, self.events, self.out = workdir, client, events, out
        self.scanner = open(workdir / "scanner.fifo", "w", buffering=1)  # noqa: SIM115 - closed in close()
        self.card = open(workdir / "card.fifo", "w", buffering=1)  # noqa: SIM115
        self.printed = 0
        self.failures: list[str] = []

    def close(self) -> None:
        self.scanner.close()
        self.card.close()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def check(self, what: str, got: Any, want: Any) -> None:
        mark = "ok" if got == want else "MISMATCH"
        if got != want:
            self.failures.append(f"{what}: got {got}, expected {want}")
        self.say(f"     check {what}: {got} ({mark})")

    async def scan(self, code: str, note: str = "") -> dict[str, Any]:
        self.scanner.write(f"scan {code}\n")
        # Events arrive in order: what follows this scan's own `scan` event is what it caused.
        await self.events.wait_for("scan", match=lambda e: e["code"] == code)
        kind, data = await self.events.wait_for("quote", "unknown_code", "receipt_scanned", "error")
        if kind != "quote":
            what = {"unknown_code": "not in the catalog — an event for the UI, the cart is unchanged",
                    "receipt_scanned": "a receipt barcode"}.get(kind, f"{kind}: {data.get('message', data)}")
            self.say(f"   scanner  {code}{note} → {what}")
            return data
        self.say(f"   scanner  {code}{note} → {self._summary(data)}")
        return data

    async def swipe(self, line: str, note: str) -> dict[str, Any]:
        self.card.write(f"swipe {line}\n")
        await self.events.wait_for("swipe", "rejected_input")
        kind, data = await self.events.wait_for("quote", "error")
        self.say(f"   card     {note} → {self._summary(data) if kind == 'quote' else data}")
        return data

    @staticmethod
    def _summary(view: dict[str, Any]) -> str:
        q = view["quote"]
        text = f"{len(view['lines'])} line(s), total {money(q['total'])}"
        if q["discount"]:
            text += f" after {money(q['discount'])} discount"
        if q["redeem"]["points"]:
            text += f", {q['redeem']['points']} points pay {money(q['redeem']['amount'])}"
        return text + f", to pay {money(q['to_pay'])}"

    async def receipt_text(self) -> str:
        """Wait for the simulated printer to print one more receipt; its text preview."""
        path = self.workdir / "printer" / "receipts.txt"
        deadline = time.monotonic() + PRINT_WAIT_S
        while time.monotonic() < deadline:
            text = path.read_text() if path.exists() else ""
            receipts = split_receipts(text)
            if len(receipts) > self.printed:
                self.printed += 1
                return receipts[self.printed - 1]
            await asyncio.sleep(0.05)
        self.failures.append("a receipt was not printed in time")
        return "(not printed)"

    async def show_receipt(self) -> None:
        text = await self.receipt_text()
        self.say("   printer  printed:")
        for line in text.strip("\n").splitlines():
            self.say(f"     | {line}")


def split_receipts(text: str) -> list[str]:
    """The simulated printer's text log → receipts; each ends with the cut line (all '=')."""
    parts, current = [], []
    for line in text.splitlines(keepends=True):
        current.append(line)
        if len(line.strip()) >= 20 and set(line.strip()) == {"="}:
            parts.append("".join(current))
            current = []
    return parts


async def checkout_points(d: Demo) -> str:
    d.say("\n== 1. Standard card: 5 % off, points pay half, 2 % earned, a Silver card offered (spec §10.2)")
    await d.scan("4006381333931", " (Fridge X200, 12000.00)")
    view = await d.swipe(f";{STANDARD}=2512?", f"swipe of card {STANDARD} (10000 points)")
    for message in view["quote"]["messages"]:
        d.say(f"   ui       message for the cashier: {message['text']}")
    view = await d.client.ok("POST", "/v1/checkout/redeem", {"points": "max"})
    d.say(f"   ui       customer pays with points: max → {d._summary(view)}; "
          f"{view['quote']['redeem']['points']} points held until paid")
    q = view["quote"]
    d.check("discount", q["discount"], 60000)
    d.check("points redeemed", q["redeem"]["points"], 5700)
    d.check("to pay", q["to_pay"], 570000)
    d.check("points earned", q["accrual"]["points"], 114)
    sale = await d.client.ok("POST", "/v1/checkout/pay", {"method": "card"})
    d.say(f"   ui       payment confirmed (card) → sale {sale['receipt']} committed; "
          f"balance now {sale['balance_after']}, card now {sale['quote']['card_type_after'] or 'unchanged'}")
    d.check("balance after", sale["balance_after"], 10000 - 5700 + 114)
    await d.show_receipt()
    return str(sale["receipt"])


async def checkout_weighed(d: Demo) -> None:
    d.say("\n== 2. No card: a scale label (GS1 weight code) and a counted product scanned twice")
    await d.scan("2100123003501", " (apples, 0.350 kg from the label)")
    await d.scan("4600000000022", " (milk)")
    view = await d.scan("4600000000022", " (milk again: same line, qty 2)")
    d.check("total", view["quote"]["total"], 4200 + 2 * 8990)
    await d.scan("9999999999994", " (a code not in the catalog)")
    sale = await d.client.ok("POST", "/v1/checkout/pay", {"method": "cash"})
    d.say(f"   ui       paid cash → sale {sale['receipt']}")
    await d.show_receipt()


async def checkout_gold(d: Demo) -> None:
    d.say("\n== 3. Gold card 17 % against the 30 % BrandX promo: the best discount wins (spec §10.3)")
    d.card.write(f"scan {GOLD}\n")  # a card barcode read by the card reader's scanner
    await d.events.wait_for("swipe", "rejected_input")
    kind, data = await d.events.wait_for("quote", "error")
    d.say(f"   card     card barcode {GOLD} (gold): {'attached' if kind == 'quote' else data}")
    view = await d.scan("4600000000015", " (BrandX blender, 1000.00)")
    d.check("discount", view["quote"]["discount"], 30000)
    sale = await d.client.ok("POST", "/v1/checkout/pay", {"method": "card"})
    d.say(f"   ui       paid → sale {sale['receipt']}, {sale['quote']['accrual']['points']} points earned")
    await d.show_receipt()


async def return_by_barcode(d: Demo, receipt: str) -> None:
    d.say("\n== 4. Return of the fridge: the receipt's barcode is scanned, the UI confirms")
    d.scanner.write(f"scan {receipt}\n")
    await d.events.wait_for("scan", match=lambda e: e["code"] == receipt)
    kind, data = await d.events.wait_for("receipt_scanned", "unknown_code", "error")
    d.say(f"   scanner  {receipt} → {kind}")
    ret = await d.client.ok("POST", "/v1/returns", {"receipt": data.get("receipt", receipt)})
    refund = ret["refund"]
    d.say(f"   ui       return {ret['return']}: money back {money(refund['money'])}, points restored "
          f"{refund['points_restored']}, points taken back {refund['points_clawed']}")
    d.check("money back", refund["money"], 570000)
    d.check("points restored", refund["points_restored"], 5700)
    d.check("points taken back", refund["points_clawed"], 114)
    await d.show_receipt()


async def close_shift(d: Demo, before: dict[str, Any]) -> None:
    d.say("\n== 5. End of the shift: the Z report records its totals and prints; the next shift opens")
    z = await d.client.ok("POST", "/v1/shift/close", {"shift": before["shift"]})
    totals = z["totals"]
    d.say(f"   ui       shift {z['shift']} closed: {totals['sales']} sales, {money(totals['to_pay'])} "
          f"taken, {totals['returns']} return, {money(totals['returned_money'])} refunded")
    # a demo run into a kept directory adds to the shift it found open
    d.check("sales in the shift", totals["sales"] - before["totals"]["sales"], 3)
    d.check("returns in the shift", totals["returns"] - before["totals"]["returns"], 1)
    d.check("refunded", totals["returned_money"] - before["totals"]["returned_money"], 570000)
    await d.show_receipt()


async def tenders_walk(d: Demo) -> None:
    """Cash with change, card + points through the payment terminal, a refund to the card."""
    from drivers.fiscal import SimulatedFiscal
    from drivers.payment import SimulatedPaymentTerminal

    bank = SimulatedPaymentTerminal("payment", d.workdir / "payment")
    fiscal = SimulatedFiscal("fiscal", d.workdir / "fiscal")
    charged, documents = bank.charged(), len(fiscal.documents())
    d.say("\n== 6. Tenders: cash with change, card + points on the payment terminal, a refund to the card")
    view = await d.scan("4600000000022", " (milk, 89.90, VAT 10 %)")
    sale = await d.client.ok("POST", "/v1/checkout/pay", {
        "tenders": [{"method": "cash", "amount": view["quote"]["to_pay"], "tendered": 10000}],
        "attendant": "Olga"})
    d.say(f"   ui       cash 100.00 given → sale {sale['receipt']}, change {money(sale['change'])}; the drawer opens")
    d.check("change", sale["change"], 10000 - 8990)
    await d.show_receipt()
    await d.scan("4600000000015", " (BrandX blender, 1000.00, VAT 20 %)")
    await d.swipe(";7700000000040=2512?", "swipe of card 7700000000040 (250 points)")
    view = await d.client.ok("POST", "/v1/checkout/redeem", {"points": 200})
    to_pay = view["quote"]["to_pay"]
    sale = await d.client.ok("POST", "/v1/checkout/pay", {"tenders": [{"method": "card", "amount": to_pay}]})
    d.say(f"   ui       200 points pay {money(view['quote']['redeem']['amount'])}, the card "
          f"{money(to_pay)} on the payment terminal → sale {sale['receipt']}")
    d.check("charged on the card", bank.charged() - charged, to_pay)
    await d.show_receipt()
    ret = await d.client.ok("POST", "/v1/returns", {"receipt": sale["receipt"]})
    d.say(f"   ui       return {ret['return']}: {money(ret['refund']['money'])} back to the card through the terminal")
    d.check("charged on the card after the refund", bank.charged() - charged, 0)
    await d.show_receipt()
    for _ in range(100):  # the fiscal queue registers after each commit
        if len(fiscal.documents()) >= documents + 3:
            break
        await asyncio.sleep(0.05)
    kinds = [doc["kind"] for doc in fiscal.documents()[documents:]]
    d.say(f"   fiscal   documents registered: {', '.join(kinds)}")
    d.check("fiscal documents", kinds, ["sell", "sell", "sellReturn"])


async def run_demo(directory: str | None, keep_running: bool, out: IO[str] = sys.stdout) -> int:
    workdir = Path(directory or tempfile.mkdtemp(prefix="posterm-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out.write(f"posterm demo — work directory {workdir}\n")
    config = setup(workdir, lambda line: out.write(f"   provision {line}\n"))
    daemon = DaemonProcess(config, workdir)
    ready_s = daemon.start()
    out.write(f"   daemon    pid {daemon.pid} READY after {ready_s * 1000:.0f} ms "
              f"(API on {workdir / 'api.sock'}, log {daemon.log_path})\n")
    try:
        async with ApiClient(workdir / "api.sock") as client, EventWatcher(client) as events:
            demo = Demo(workdir, client, events, out)
            try:
                shift = await client.ok("GET", "/v1/shift")
                receipt = await checkout_points(demo)
                await checkout_weighed(demo)
                await checkout_gold(demo)
                await return_by_barcode(demo, receipt)
                await close_shift(demo, shift)
                await tenders_walk(demo)
                status = await client.ok("GET", "/v1/status")
                out.write(f"\n   status    ledger {status['ledger']['file_bytes']} bytes, outbox backlog "
                          f"{status['ledger']['backlog']} events, print queue {status['print_queue']}\n")
                if keep_running:
                    await _keep_running(workdir, out)
            finally:
                demo.close()
    finally:
        code = daemon.stop()
        out.write(f"   daemon    stopped (exit code {code})\n")
    failures = demo.failures + ([f"daemon exit code {code}"] if code else [])
    for failure in failures:
        out.write(f"FAILED: {failure}\n")
    out.write("\nAll checks hold.\n" if not failures else f"\n{len(failures)} check(s) failed.\n")
    if directory is None:
        shutil.rmtree(workdir, ignore_errors=True)  # a temporary directory: --dir DIR keeps the files
        out.write(f"(work directory {workdir} removed; give --dir DIR to keep the ledger, log and receipts)\n")
    return 0 if not failures else 1


async def _keep_running(workdir: Path, out: IO[str]) -> None:
    out.write(f"\nThe daemon keeps running for a UI. API: {workdir / 'api.sock'} (docs/openapi.yaml)\n"
              f"  scan:   echo 'scan 4006381333931' > {workdir / 'scanner.fifo'}\n"
              f"  swipe:  echo 'swipe ;{STANDARD}=2512?' > {workdir / 'card.fifo'}\n"
              f"  look:   curl --unix-socket {workdir / 'api.sock'} http://posterm/v1/checkout\n"
              "Ctrl-C stops it.\n")
    out.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(asyncio.CancelledError):
        await stop.wait()
