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
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from terminal.attendants import new_entry, write_file
from terminal.client import ApiClient, DaemonProcess, EventWatcher
from terminal.demo_chain import CentralChild, faster_sync, ledger_card, lot_dates, public_view, wait_until
from terminal.provision import ProvisionRequest, provision

DATA = Path(__file__).resolve().parent / "demo_data"
STORE = "S01"
CODES = {"gs1": [{"prefix": "21", "item_digits": 5, "value": "weight_g", "value_digits": 5}],
         "cards": [{"prefix": "77", "digits": 13, "check": "ean"}]}
PRINT_WAIT_S = 10.0
STANDARD, GOLD = "7700000000026", "7700000000033"
T02_DIR = "t02"
# The demo's attendants (name, role, PIN): a manager for returns and shifts, an attendant for age checks.
ATTENDANTS = (("demo", "manager", "1234"), ("anna", "attendant", "2468"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def money(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"


def setup(workdir: Path, report: Any = None, terminal_id: str = "T01", server_url: str = "",
          key_file: Path | None = None, tcp_port: int | None = None) -> Path:
    """Provision a demo terminal in `workdir` (its screen on 127.0.0.1:`tcp_port`, a free port by
    default; attendants from ATTENDANTS); returns the config path. With `server_url` the cards
    come from the central server (published there), else from the seed card file."""
    workdir.mkdir(parents=True, exist_ok=True)
    for fifo in ("scanner.fifo", "card.fifo"):
        path = workdir / fifo
        if not path.exists():
            os.mkfifo(path, 0o600)
    req = ProvisionRequest(
        config_path=workdir / "terminal.toml", terminal_id=terminal_id, store=STORE, store_name="posterm demo store",
        state_dir=workdir / "state", socket=workdir / "api.sock",
        scanners=(f"sim:{workdir / 'scanner.fifo'}",), card_readers=(f"sim:{workdir / 'card.fifo'}",),
        printer=f"sim:{workdir / 'printer'}", spool_dir=workdir / "state" / "spool",
        rules=DATA / "rules.toml", catalog=DATA / "catalog.csv", cards=None if server_url else DATA / "cards.csv",
        codes=CODES, server_url=server_url, key_file=key_file, force=True, legal_name="Posterm Demo LLC",
        address="1 Main St, Springfield", tax_id="7701234567",
        payment=f"sim:{workdir / 'payment'}", fiscal=f"sim:{workdir / 'fiscal'}",
        tcp_port=free_port() if tcp_port is None else tcp_port,
        screen={"terms_file": str(DATA / "terms.txt"), "attendants_file": str(workdir / "state" / "attendants.json")})
    config = provision(req, report or (lambda line: None))
    write_file(config.screen.attendants_file, {name: new_entry(name, role, pin) for name, role, pin in ATTENDANTS})
    if server_url:
        faster_sync(req.config_path)
    return req.config_path


class Demo:
    def __init__(self, workdir: Path, client: ApiClient, events: EventWatcher, out: IO[str],
                 failures: list[str] | None = None, staff: ApiClient | None = None, pace_s: float = 0.0) -> None:
        self.workdir, self.client, self.events, self.out = workdir, client, events, out
        self.staff = staff or client  # the attendant's session: returns and the shift's reports
        self.pace_s = pace_s  # a pause before each step, so a browser on the screen can follow
        self.ledger_path = workdir / "state" / "ledger"
        self.scanner = open(workdir / "scanner.fifo", "w", buffering=1)  # noqa: SIM115 - closed in close()
        self.card = open(workdir / "card.fifo", "w", buffering=1)  # noqa: SIM115
        self.printed = 0
        self.failures: list[str] = [] if failures is None else failures  # one list for the chain

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
        await asyncio.sleep(self.pace_s)
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
        await asyncio.sleep(self.pace_s)
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
    # cash: the fridge comes back at T02, whose payment terminal cannot refund T01's card operation
    sale = await d.client.ok("POST", "/v1/checkout/pay", {"method": "cash"})
    d.say(f"   ui       payment confirmed (cash) → sale {sale['receipt']} committed; "
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


async def checkout_gold(d: Demo) -> dict[str, Any]:
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
    return dict(sale["quote"])


async def spend_at_t02(d1: Demo, d2: Demo, central: CentralChild, gold: dict[str, Any]) -> None:
    """Points the gold card earned at T01 are spent at T02, with their dates."""
    earned, expires = gold["accrual"]["points"], gold["accrual"]["expires_at"]
    d1.say(f"\n== 4. The chain: the {earned} points the gold card earned at T01 (expiring {expires}) are spent\n"
           f"      at T02 (central server on {central.url})")
    balance = await wait_until(lambda: central.card(GOLD)["balance"], lambda got: got == earned)
    d1.check("central's balance of the gold card after T01's sale", balance, earned)
    view = public_view(await asyncio.to_thread(central.card, GOLD))
    d1.say(f"   central  card show {GOLD}: {json.dumps(view)}")
    d2.card.write(f"scan {GOLD}\n")
    await d2.events.wait_for("swipe", "rejected_input")
    kind, data = await d2.events.wait_for("quote", "error")
    d2.say(f"   T02 card card barcode {GOLD}: {'attached, ' + str(data.get('card_mode')) if kind == 'quote' else data}")
    t01 = lot_dates((await asyncio.to_thread(ledger_card, d1.ledger_path, GOLD))["lots"])
    t02 = lot_dates((await asyncio.to_thread(ledger_card, d2.ledger_path, GOLD))["lots"])
    d1.check("T01's lot of those points", t01, lot_dates([{"points": earned, "expires_at": expires}]))
    d1.check("central's lots = T01's", lot_dates(view["lots"]), t01)
    if any(when is not None for _, when in t02) or len(t02) != 1:
        d2.check("T02's lots = T01's (points and expiry)", t02, t01)
    else:  # the updates feed and the card lookup carry balances only: T02 holds one dateless lot
        d2.check("T02's points (one dateless lot: the feed does not carry lots yet)", t02, [(earned, None)])
    view2 = await d2.scan("4600000000022", " (milk at T02)")
    redeem = await d2.client.ok("POST", "/v1/checkout/redeem", {"points": "max"})
    d2.say(f"   T02 ui   customer pays with points: max → {d2._summary(redeem)} ({view2['quote']['total']} before)")
    d2.check("points T02 lets the card spend", redeem["quote"]["redeem"]["points"], earned)
    sale = await d2.client.ok("POST", "/v1/checkout/pay", {"method": "cash"})
    d2.check("gold card balance after the sale at T02 (only what it earned there)", sale["balance_after"],
             sale["quote"]["accrual"]["points"])
    await d2.show_receipt()


async def agree(d1: Demo, d2: Demo, central: CentralChild, numbers: tuple[str, ...]) -> None:
    """T01, T02 and the central server end with the same balance of every card used."""
    d1.say("\n== 8. The chain agrees: each card's balance at T01, at T02 and at the central server")
    for number in numbers:
        def balances(n: str = number) -> tuple[int, int, int]:
            return (ledger_card(d1.ledger_path, n)["balance"], ledger_card(d2.ledger_path, n)["balance"],
                    central.card(n)["balance"])

        got = await wait_until(balances, lambda got: len(set(got)) == 1)
        d1.check(f"card {number} at T01 / T02 / central", got, (got[2],) * 3)
        view = public_view(await asyncio.to_thread(central.card, number))
        d1.say(f"   central  card show {number}: {json.dumps(view)}")


async def return_by_barcode(d: Demo, receipt: str) -> None:
    d.say("\n== 5. Return of the fridge at T02: T01's receipt barcode is scanned there, T02 fetches the sale\n"
          "      from the central server (signed), the UI confirms")
    d.scanner.write(f"scan {receipt}\n")
    await d.events.wait_for("scan", match=lambda e: e["code"] == receipt)
    kind, data = await d.events.wait_for("receipt_scanned", "unknown_code", "error")
    d.say(f"   scanner  {receipt} → {kind}")
    d.say("   ui       the attendant unlocks the return with their PIN (attendant session, role manager)")
    ret = await d.staff.ok("POST", "/v1/returns", {"receipt": data.get("receipt", receipt)})
    refund = ret["refund"]
    d.say(f"   ui       return {ret['return']}: money back {money(refund['money'])}, points restored "
          f"{refund['points_restored']}, points taken back {refund['points_clawed']}")
    d.check("money back", refund["money"], 570000)
    d.check("points restored", refund["points_restored"], 5700)
    d.check("points taken back", refund["points_clawed"], 114)
    await d.show_receipt()


async def close_shift(d: Demo, before: dict[str, Any]) -> None:
    d.say("\n== 6. End of T01's shift: the Z report records its totals and prints; the next shift opens")
    z = await d.staff.ok("POST", "/v1/shift/close", {"shift": before["shift"]})
    totals = z["totals"]
    d.say(f"   ui       shift {z['shift']} closed: {totals['sales']} sales, {money(totals['to_pay'])} "
          f"taken, {totals['returns']} return, {money(totals['returned_money'])} refunded")
    # a demo run into a kept directory adds to the shift it found open
    d.check("sales in the shift", totals["sales"] - before["totals"]["sales"], 3)
    d.check("returns in the shift (the fridge came back at T02)", totals["returns"] - before["totals"]["returns"], 0)
    await d.show_receipt()


async def tenders_walk(d: Demo) -> None:
    """Cash with change, card + points through the payment terminal, a refund to the card."""
    from drivers.fiscal import SimulatedFiscal
    from drivers.payment import SimulatedPaymentTerminal

    bank = SimulatedPaymentTerminal("payment", d.workdir / "payment")
    fiscal = SimulatedFiscal("fiscal", d.workdir / "fiscal")
    charged, documents = bank.charged(), len(fiscal.documents())
    d.say("\n== 7. Tenders at T01: cash with change, card + points on the payment terminal, a refund to the card")
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
    ret = await d.staff.ok("POST", "/v1/returns", {"receipt": sale["receipt"]})
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


async def run_demo(directory: str | None, keep_running: bool, out: IO[str] = sys.stdout, pace_s: float = 0.0) -> int:
    workdir = Path(directory or tempfile.mkdtemp(prefix="posterm-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out.write(f"posterm demo — work directory {workdir}\n")
    central = CentralChild(workdir / "central")
    for terminal in ("T01", "T02"):
        central.add_terminal(terminal, workdir / f"{terminal.lower()}.key")
    published = json.loads(central.cli("publish", "cards", str(DATA / "cards.csv")))
    out.write(f"   central   {central.db}: terminals T01, T02 added; {published['cards']} cards published "
              f"from {DATA / 'cards.csv'}\n")
    started_s = central.start()
    out.write(f"   central   serving on {central.url} after {started_s * 1000:.0f} ms (log {central.log_path})\n")
    daemons: list[DaemonProcess] = []
    failures: list[str] = []
    codes: list[int] = []
    try:
        t02_dir = workdir / T02_DIR
        # provision runs its own first sync round (asyncio.run): in a thread, beside this loop
        configs = [await asyncio.to_thread(setup, where, lambda line, n=name: out.write(f"   {n} provision {line}\n"),
                                           name, central.url, workdir / f"{name.lower()}.key")
                   for name, where in (("T01", workdir), ("T02", t02_dir))]
        for name, config, where in (("T01", configs[0], workdir), ("T02", configs[1], t02_dir)):
            daemon = DaemonProcess(config, where)
            daemons.append(daemon)
            ready_s = daemon.start()
            out.write(f"   {name} daemon pid {daemon.pid} READY after {ready_s * 1000:.0f} ms "
                      f"(API on {where / 'api.sock'}, log {daemon.log_path})\n"
                      f"   {name} screen {screen_url(config)}  (open it in a browser to watch the sales)\n")
        out.flush()
        await _walk(workdir, t02_dir, central, keep_running, failures, out, pace_s, screen_url(configs[0]))
    finally:
        codes = [daemon.stop() for daemon in daemons]
        central_code = central.stop()
        out.write(f"   daemons   stopped (exit codes {', '.join(map(str, codes)) or '-'}); "
                  f"central stopped ({central_code})\n")
    failures += [f"daemon exit code {code}" for code in codes if code]
    for failure in failures:
        out.write(f"FAILED: {failure}\n")
    out.write("\nAll checks hold.\n" if not failures else f"\n{len(failures)} check(s) failed.\n")
    if directory is None:
        shutil.rmtree(workdir, ignore_errors=True)  # a temporary directory: --dir DIR keeps the files
        out.write(f"(work directory {workdir} removed; give --dir DIR to keep the ledgers, logs and receipts)\n")
    return 0 if not failures else 1


async def _walk(workdir: Path, t02_dir: Path, central: CentralChild, keep_running: bool, failures: list[str],
                out: IO[str], pace_s: float, url: str) -> None:
    """The scripted checkouts: T01's sales, points spent at T02, a return at T02, T01's Z report."""
    async with (ApiClient(workdir / "api.sock") as client, EventWatcher(client) as events,
                ApiClient(workdir / "api.sock") as staff, ApiClient(t02_dir / "api.sock") as staff2,
                ApiClient(t02_dir / "api.sock") as client2, EventWatcher(client2) as events2):
        for session in (staff, staff2):
            await session.attendant(*ATTENDANTS[0][::2])
        demo = Demo(workdir, client, events, out, failures, staff, pace_s)
        demo2 = Demo(t02_dir, client2, events2, out, failures, staff2, pace_s)
        try:
            shift = await staff.ok("GET", "/v1/shift")
            receipt = await checkout_points(demo)
            await checkout_weighed(demo)
            gold = await checkout_gold(demo)
            await spend_at_t02(demo, demo2, central, gold)
            await return_by_barcode(demo2, receipt)
            await close_shift(demo, shift)
            await tenders_walk(demo)
            await agree(demo, demo2, central, (STANDARD, GOLD))
            status = await client.ok("GET", "/v1/status")
            out.write(f"\n   status    T01 ledger {status['ledger']['file_bytes']} bytes, outbox backlog "
                      f"{status['ledger']['backlog']} events, print queue {status['print_queue']}\n")
            if keep_running:
                await _keep_running(workdir, out, url)
        finally:
            demo.close()
            demo2.close()


def screen_url(config: Path) -> str:
    from terminal.config import load_config

    return f"http://127.0.0.1:{load_config(config).api_tcp_port}/"


async def _keep_running(workdir: Path, out: IO[str], url: str) -> None:
    staff = ", ".join(f"{name} ({role}) PIN {pin}" for name, role, pin in ATTENDANTS)
    out.write(f"\nThe daemon keeps running for a UI. API: {workdir / 'api.sock'} (docs/openapi.yaml)\n"
              f"  screen: {url}   (chromium --kiosk {url}; attendants: {staff})\n"
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
