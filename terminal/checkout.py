"""The checkout state machine: ONE open checkout per terminal, priced on every change.

States of the open checkout: `open` (lines, card and redemption may change) → `paying` (the
cart and quote are frozen while the customer pays; scans and changes are refused) → committed
(the sale is one ledger transaction; the checkout is gone). `cancel` or the idle timeout
closes it and voids its points hold. A return is refused while a checkout is open.

Crash safety: the open checkout is kept in a small JSON record (`checkout.json`, written to a
temporary file, fsynced, renamed) after every change. On start, `recover()`:
  - a record in `committing` state (payment was confirmed) → the sale is committed with the same
    quote and sale id (= checkout id); the ledger answers a retried id with the original result,
    so a sale committed before the crash is not doubled, and one that was not is not lost;
  - an `open`/`paying` record → the checkout is resumed (re-quoted), its hold re-read from the
    ledger; past its idle timeout it is cancelled and the hold voided instead.
The hold is found in the ledger by (card, checkout id), never trusted from the record.

No sockets, no printing, no clock of its own: `now` is passed in. Limits: `LINES_MAX`,
`QTY_MILLI_MAX`, `RECORD_BYTES_MAX`.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import core
from core.errors import PricingError
from terminal import coupons as coupon_check
from terminal import failpoints
from terminal import tenders as tender_rules
from terminal.checkout_record import parse_record
from terminal.errors import TerminalError
from terminal.ledger import Ledger, LedgerError, LedgerNotFoundError
from terminal.ledger.sales import check_payment

LINES_MAX = 200
QTY_MILLI_MAX = 1_000_000_000
RECORD_BYTES_MAX = 1024 * 1024
TENDERS_MAX = 16
DURABLE_STATES = frozenset({"authorizing", "committing"})
Publish = Callable[[str, dict[str, Any]], None]


class CheckoutError(TerminalError):
    """A refused checkout action; `status` is the HTTP status the API answers with."""

    status = 409


class BadRequest(CheckoutError):
    status = 400


class NotFound(CheckoutError):
    status = 404


@dataclass
class Checkout:
    id: str
    opened_ms: int
    touched_ms: int
    state: str = "open"  # open | paying | authorizing (card payment asked) | committing
    lines: list[dict[str, Any]] = field(default_factory=list)
    card: str | None = None
    card_mode: str = "local"  # local (no server configured) | online | offline (redemption capped)
    redeem: int | str | None = None
    quote: dict[str, Any] | None = None
    payment: dict[str, Any] | None = None
    commit_at: str | None = None
    attendant: str | None = None  # None: self-checkout
    attempt: int = 0  # payment attempts: each names its card operations afresh
    coupons: list[dict[str, Any]] = field(default_factory=list)  # checked codes: {code, series, single_use}

    def cart(self, store: str) -> dict[str, Any]:
        cart: dict[str, Any] = {"store": store, "lines": [
            {k: ln[k] for k in ("sku", "name", "price", "qty", "categories", "no_discount",
                                "no_bonus", "min_price", "vat") if ln.get(k) is not None or k != "vat"}
            for ln in self.lines]}
        if self.coupons:
            cart["coupons"] = [{"code": c["code"], "series": c["series"]} for c in self.coupons]
        return cart


def _atomic(action: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """A refused action leaves the checkout as it was (the ledger's hold is re-read, not trusted,
    on the next change, so a half-moved hold heals itself)."""

    @functools.wraps(action)
    def run(self: Register, *args: Any) -> dict[str, Any]:
        before = copy.deepcopy(self.current)
        try:
            return action(self, *args)
        except BaseException:
            self.current = before
            raise

    return run


def new_checkout_id(terminal_id: str, now: dt.datetime) -> str:
    """≤ 32 printable ASCII (the receipt barcode): T01-20261123113512-9f3a."""
    return f"{terminal_id}-{now.astimezone(dt.UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself must survive a power cut
    finally:
        os.close(fd)


def _ms(now: dt.datetime) -> int:
    return int(now.timestamp() * 1000)


def qty_text(qty_milli: int) -> str:
    whole, milli = divmod(qty_milli, 1000)
    return str(whole) if milli == 0 else f"{whole}.{milli:03d}"


def _age_ok(line: dict[str, Any]) -> bool:
    return not line.get("age_min") or bool(line.get("age_ok_by"))


def parse_qty(value: Any) -> int:
    """A quantity from the API (1, "2", "0.350") → thousandths; floats refused (no rounding)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRequest("qty must be a whole number or a decimal string like \"0.350\"")
    try:
        milli = Decimal(str(value)) * 1000
    except ArithmeticError:
        raise BadRequest(f"qty {value!r} is not a number") from None
    if milli != milli.to_integral_value() or not 0 < milli <= QTY_MILLI_MAX:
        raise BadRequest(f"qty {value!r} must be above 0, at most 1000000, with ≤ 3 decimals")
    return int(milli)


class Register:
    """The terminal's checkout desk: the open checkout, the ledger and the pricing engine."""

    def __init__(self, *, terminal_id: str, store: str, ledger: Ledger, program: core.Program | None,
                 record_path: Path, idle_timeout_s: int, hold_timeout_s: int,
                 publish: Publish, offline_cap_points: int | None = None) -> None:
        self.terminal_id, self.store, self.ledger = terminal_id, store, ledger
        # None until the first rules arrive from the server: checkouts are refused meanwhile.
        self.engine: Any = None if program is None else core.Engine(program)
        self.record_path = record_path
        self.idle_timeout_ms = idle_timeout_s * 1000
        self.hold_timeout_s = hold_timeout_s
        self.publish = publish
        self.offline_cap_points = offline_cap_points
        self.quote_timer: Callable[[float], None] | None = None  # the daemon's metrics, seconds a quote took
        self.current: Checkout | None = None

    # ------------------------------------------------------------------ record

    def _save(self) -> None:
        co = self.current
        if co is None:
            self.record_path.unlink(missing_ok=True)
            return
        data = json.dumps(co.__dict__, separators=(",", ":")).encode()
        if len(data) > RECORD_BYTES_MAX:
            raise CheckoutError(f"checkout {co.id}: record larger than {RECORD_BYTES_MAX} bytes")
        tmp = self.record_path.with_name(self.record_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            # A confirmed payment must survive a power cut; an open cart only a process crash
            # (the page cache survives SIGKILL): no fsync per scan, which costs ms on SD cards.
            # A cart lost to a power cut leaves at most a hold, which expires on its own.
            # So must a card payment about to be asked for (its operation ids are the intent).
            if co.state in DURABLE_STATES:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.record_path)
        if co.state in DURABLE_STATES:
            _fsync_dir(self.record_path.parent)

    def _load(self) -> Checkout | None:
        try:
            with self.record_path.open("rb") as handle:
                data = handle.read(RECORD_BYTES_MAX + 1)
        except FileNotFoundError:
            return None
        try:
            if len(data) > RECORD_BYTES_MAX:
                raise ValueError(f"larger than {RECORD_BYTES_MAX} bytes")
            return Checkout(**parse_record(data, LINES_MAX, QTY_MILLI_MAX))
        except (ValueError, TypeError) as exc:
            # A torn record cannot happen (rename is atomic); a hand-edited one can. Keep it aside.
            aside = self.record_path.with_suffix(".bad")
            os.replace(self.record_path, aside)
            raise CheckoutError(f"{self.record_path}: unreadable checkout record ({exc}); moved "
                                f"to {aside}; its points hold expires on its own") from None

    # ------------------------------------------------------------------ views

    def view(self) -> dict[str, Any]:
        co = self.current
        if co is None:
            return {"state": "idle", "id": None, "lines": [], "card": None, "card_mode": None,
                    "redeem": None, "quote": None, "coupons": []}
        return {"state": co.state, "id": co.id, "card": co.card, "card_mode": co.card_mode, "redeem": co.redeem,
                "lines": [{"index": i, "sku": ln["sku"], "name": ln["name"], "qty": ln["qty"],
                           "price": ln["price"], "code": ln["code"], "weighed": ln["weighed"],
                           "age_min": ln.get("age_min", 0), "age_ok": _age_ok(ln)} for i, ln in enumerate(co.lines)],
                "age_check": any(not _age_ok(ln) for ln in co.lines), "quote": co.quote,
                "coupons": [{"code": c["code"], "series": c["series"]} for c in co.coupons]}

    def _changed(self, now: dt.datetime) -> None:
        """Re-quote, keep the hold in step, persist, tell the UI. Called after every change."""
        co = self.current
        assert co is not None  # callers hold an open checkout
        co.touched_ms = _ms(now)
        co.quote = self._quote(co, now)
        self._sync_hold(co, now)
        self._save()
        self.publish("quote", self.view())

    def _quote(self, co: Checkout, now: dt.datetime) -> dict[str, Any]:
        card = self.ledger.card_for_quote(co.card, now, co.id) if co.card else None
        if card is not None and co.card_mode == "offline" and self.offline_cap_points is not None:
            card = self._cap_offline(card, co, now, self.offline_cap_points)
        if self.engine is None:
            raise CheckoutError("no pricing rules yet: the terminal waits for them from the central server "
                                "(posterm status shows the last sync)")
        started = time.perf_counter()
        try:
            return self.engine.quote(co.cart(self.store), card, now, co.redeem)
        except PricingError as exc:
            raise CheckoutError(f"checkout {co.id}: cannot price the cart: {exc}") from None
        finally:
            if self.quote_timer is not None:
                self.quote_timer(time.perf_counter() - started)

    def _cap_offline(self, card: dict[str, Any], co: Checkout, now: dt.datetime, cap: int) -> dict[str, Any]:
        """The server could not confirm the balance: the card may redeem at most `cap` points on
        this terminal over the whole offline period — less what it redeemed here since the
        server last spoke of it (the ledger's `offline_redeemed`; ARCHITECTURE: a terminal
        offline caps redemption per card over the offline period). Like the ledger's holds, the
        cap is one negative lot the pricing core subtracts; this checkout's own hold counts as
        available to it."""
        summary = self.ledger.card(card["number"], now)
        cap = max(0, cap - int(summary.get("offline_redeemed", 0)))
        own = sum(h["points"] for h in summary["holds"] if h["checkout"] == co.id)
        available = summary["available"] + own
        if available > cap:
            card = {**card, "lots": [*card["lots"], {"points": cap - available, "available_from": None,
                                                     "expires_at": None}]}
        return card

    # ------------------------------------------------------------------ holds

    def _held(self, co: Checkout, now: dt.datetime) -> dict[str, Any] | None:
        if not co.card:
            return None
        for hold in self.ledger.card(co.card, now)["holds"]:
            if hold["checkout"] == co.id:
                return hold
        return None

    def _sync_hold(self, co: Checkout, now: dt.datetime) -> None:
        """Hold exactly the points the quote redeems; renew when half the hold time is gone."""
        card = co.card
        if not card:
            return
        want = co.quote["redeem"]["points"] if co.quote else 0
        held = self._held(co, now)
        # Renewed while less than max(half its time, the idle timeout) is left, so a hold never
        # lapses before the idle timeout could have closed its checkout.
        renew_ms = _ms(now) + max(self.hold_timeout_s * 500, self.idle_timeout_ms)
        if held and held["points"] == want and held["expires_ms"] > renew_ms:
            return
        # Random op ids: after a crash the record may lag the ledger, and a reused id with other
        # content would be refused as a conflict. The hold itself is keyed by (card, checkout).
        if held:
            self.ledger.void_hold(f"{co.id}-v{secrets.token_hex(4)}", card, co.id, now)
        if want:
            until = now + dt.timedelta(seconds=self.hold_timeout_s)
            self.ledger.hold(f"{co.id}-h{secrets.token_hex(4)}", card, co.id, want, now, until)

    def _release(self, co: Checkout, now: dt.datetime) -> int:
        held = self._held(co, now)
        if not held or not co.card:
            return 0
        self.ledger.void_hold(f"{co.id}-v{secrets.token_hex(4)}", co.card, co.id, now)
        return int(held["points"])

    # ------------------------------------------------------------------ actions

    def _open(self, now: dt.datetime, action: str) -> Checkout:
        co = self.current
        if co is None:
            co = self.current = Checkout(new_checkout_id(self.terminal_id, now), _ms(now), _ms(now))
            self.publish("checkout_opened", {"id": co.id})
        if co.state != "open":
            raise CheckoutError(f"checkout {co.id} is waiting for payment; {action} refused — "
                                "confirm the payment or go back to the cart first")
        return co

    def _need(self, action: str) -> Checkout:
        if self.current is None:
            raise CheckoutError(f"no open checkout; {action} refused — scan a product first")
        return self.current

    def product_line(self, code: str, qty_milli: int | None = None, price: int | None = None,
                     weight_code: str | None = None) -> dict[str, Any]:
        """A cart line for a scanned or typed code (weight codes: `weight_code` is the PLU)."""
        try:
            product = self.ledger.product(weight_code or code)
        except LedgerNotFoundError:
            raise NotFound(f"code {code}: not in the catalog") from None
        except LedgerError as exc:
            raise BadRequest(f"code {code}: {exc}") from None
        if (qty_milli is not None and qty_milli <= 0) or (price is not None and price <= 0):
            # The scanner refuses such labels already; this guards every other road in.
            raise BadRequest(f"code {code}: a scale label of 0 g or 0.00 is refused; weigh the item again")
        qty_milli = 1000 if qty_milli is None else qty_milli
        return {"sku": product["sku"], "name": product["name"], "code": code,
                "price": product["price"] if price is None else price, "qty": qty_text(qty_milli),
                "qty_milli": qty_milli, "categories": product["categories"],
                "no_discount": product["no_discount"], "no_bonus": product["no_bonus"],
                "min_price": product["min_price"], "weighed": weight_code is not None or price is not None,
                "vat": product.get("vat"),
                "age_min": product.get("age_min", 0)}

    @_atomic
    def add(self, line: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
        co = self._open(now, "adding a line")
        same = [ln for ln in co.lines if ln["sku"] == line["sku"] and not ln["weighed"]
                and not line["weighed"] and ln["price"] == line["price"]]
        if same:
            # A second scan of a counted product adds to its line, as a cashier expects.
            total = same[0]["qty_milli"] + line["qty_milli"]
            if total > QTY_MILLI_MAX:
                raise CheckoutError(f"checkout {co.id}: line {line['sku']} would hold {qty_text(total)}, more "
                                    f"than the limit of {qty_text(QTY_MILLI_MAX)} a line; nothing changed")
            same[0]["qty_milli"] = total
            same[0]["qty"] = qty_text(total)
        elif len(co.lines) >= LINES_MAX:
            raise CheckoutError(f"checkout {co.id}: at most {LINES_MAX} lines")
        else:
            co.lines.append(line)
        self._changed(now)
        return self.view()

    @_atomic
    def remove(self, index: int, now: dt.datetime) -> dict[str, Any]:
        co = self._need("removing a line")
        if co.state != "open":
            raise CheckoutError(f"checkout {co.id} is waiting for payment; removing refused")
        if not 0 <= index < len(co.lines):
            raise NotFound(f"checkout {co.id} has no line {index} (it has {len(co.lines)})")
        del co.lines[index]
        self._changed(now)
        return self.view()

    @_atomic
    def approve_age(self, attendant: str, now: dt.datetime) -> dict[str, Any]:
        """The attendant saw the customer is old enough for every age-restricted line so far."""
        co = self._need("the age check")
        pending = [ln for ln in co.lines if not _age_ok(ln)]
        if not pending:
            raise CheckoutError(f"checkout {co.id}: no age-restricted product waits for a check")
        for ln in pending:
            ln["age_ok_by"] = attendant
        self._changed(now)
        return self.view()

    @_atomic
    def attach_card(self, number: str, now: dt.datetime, mode: str = "local") -> dict[str, Any]:
        co = self._open(now, "attaching a card")
        try:
            card = self.ledger.card(number, now)
        except LedgerNotFoundError:
            raise NotFound(f"card {number}: not known to this terminal") from None
        if card["blocked"]:
            raise CheckoutError(f"card {number}: blocked; ask the customer to call support")
        if co.card and co.card != number:
            self._release(co, now)
            co.redeem = None
        co.card, co.card_mode = number, mode
        self._changed(now)
        return self.view()

    @_atomic
    def add_coupon(self, code: Any, now: dt.datetime) -> dict[str, Any]:
        """A coupon code typed or scanned, checked (terminal.coupons) and priced with the cart."""
        co = self._open(now, "presenting a coupon")
        program = None if self.engine is None else self.engine.program
        co.coupons.append(coupon_check.check(self.ledger, program, code, now.date(), co.coupons))
        self._changed(now)
        return self.view()

    @_atomic
    def set_redeem(self, redeem: int | str | None, now: dt.datetime) -> dict[str, Any]:
        co = self._need("paying with points")
        if co.state != "open":
            raise CheckoutError(f"checkout {co.id} is waiting for payment; redemption refused")
        if redeem is not None and not co.card:
            raise CheckoutError(f"checkout {co.id}: attach a card before paying with points")
        co.redeem = redeem or None
        self._changed(now)
        return self.view()

    @_atomic
    def begin_payment(self, now: dt.datetime) -> dict[str, Any]:
        co = self._need("payment")
        if not co.lines:
            raise CheckoutError(f"checkout {co.id} is empty; scan a product first")
        if any(not _age_ok(ln) for ln in co.lines):
            raise CheckoutError(f"checkout {co.id}: an age-restricted product waits for the attendant's "
                                "check (POST /v1/checkout/age with an attendant session)")
        if co.state == "open":
            self._changed(now)  # the frozen quote is priced at the moment payment starts
            co.state = "paying"
            self._save()
            self.publish("quote", self.view())
        return self.view()

    @_atomic
    def back_to_cart(self, now: dt.datetime) -> dict[str, Any]:
        co = self._need("going back to the cart")
        if co.state == "paying":
            co.state = "open"
            self._changed(now)
        return self.view()

    def cancel(self, now: dt.datetime, reason: str = "cancelled") -> dict[str, Any]:
        co = self._need("cancel")
        if co.state == "committing":
            raise CheckoutError(f"checkout {co.id}: payment already confirmed; cannot cancel")
        if co.state == "authorizing":
            raise CheckoutError(f"checkout {co.id}: the payment terminal is taking the card payment; "
                                "wait for its answer (a card payment taken is reversed on cancel)")
        released = self._release(co, now)
        self.current = None
        self._save()
        out = {"id": co.id, "reason": reason, "points_released": released}
        self.publish("checkout_closed", out)
        return out

    def expire_idle(self, now: dt.datetime) -> dict[str, Any] | None:
        co = self.current
        if co is None or co.state in DURABLE_STATES or _ms(now) - co.touched_ms < self.idle_timeout_ms:
            return None
        return self.cancel(now, "idle timeout")

    # ------------------------------------------------------------------ payment

    def pay(self, tenders: list[dict[str, Any]] | None, method: str, now: dt.datetime) -> dict[str, Any]:
        """Pay without a payment terminal (every tender confirmed by the attendant)."""
        planned, quote = self.prepare_payment(tenders, method, now, card_terminal=False)
        sale = self.start_payment(planned, quote, now)
        assert sale is not None  # no card operation to wait for
        return sale

    def prepare_payment(self, tenders: list[Any] | None, method: str, now: dt.datetime,
                        card_terminal: bool, attendant: str | None = None) -> tuple[list[dict[str, Any]], Any]:
        """Freeze the quote (state paying) and check the tenders; nothing is asked of anybody yet."""
        co = self._need("payment")
        if not co.lines:
            raise CheckoutError(f"checkout {co.id} is empty; nothing to pay")
        if co.state in DURABLE_STATES:
            raise CheckoutError(f"checkout {co.id}: a payment is under way already")
        if co.state == "open":
            self.begin_payment(now)
        assert co.quote is not None
        co.attempt += 1
        try:
            planned = tender_rules.plan(tenders, method, co.quote["to_pay"], co.id, card_terminal, co.attempt)
            check_payment({"tenders": tender_rules.recorded(planned)}, co.quote["to_pay"], f"checkout {co.id}")
        except (tender_rules.TenderError, LedgerError) as exc:
            raise BadRequest(f"checkout {co.id}: {exc}") from None
        co.attendant = attendant
        return planned, co.quote

    def start_payment(self, planned: list[dict[str, Any]], quote: Any, now: dt.datetime) -> dict[str, Any] | None:
        """Record the payment (fsynced): the sale when nothing waits for a card, else None and the
        checkout is `authorizing` until every card operation is answered."""
        co = self._need("payment")
        if co.state != "paying" or co.quote is not quote:
            raise CheckoutError(f"checkout {co.id} changed while the payment was checked; pay again")
        co.payment = {"tenders": planned}
        if tender_rules.pending(planned):
            co.state = "authorizing"
            self._save()  # the intent: after a crash these operations are asked about, never repeated
            return None
        return self._confirm(co, now)

    def authorized(self, op_id: str, status: str, reference: str, card: str) -> None:
        """One card operation's answer, recorded before anything else happens."""
        co = self._need("payment")
        for tender in (co.payment or {}).get("tenders", []):
            if tender.get("op") == op_id:
                tender["status"] = status
                if reference:
                    tender["reference"] = reference[:128]
                if card:
                    tender["card"] = card[-19:]
        self._save()

    def confirm_authorized(self, now: dt.datetime) -> dict[str, Any]:
        co = self._need("payment")
        if co.state != "authorizing" or not co.payment:
            raise CheckoutError(f"checkout {co.id} has no card payment waiting")
        if any(t.get("status", "approved") != "approved" for t in co.payment["tenders"]):
            raise CheckoutError(f"checkout {co.id}: not every card payment is approved")
        return self._confirm(co, now)

    def payment_failed(self, now: dt.datetime) -> dict[str, Any]:
        """Back to `paying` after a declined, cancelled or reversed card payment."""
        co = self._need("payment")
        co.state, co.payment, co.commit_at = "paying", None, None
        co.touched_ms = _ms(now)
        self._save()
        self.publish("quote", self.view())
        return self.view()

    def _confirm(self, co: Checkout, now: dt.datetime) -> dict[str, Any]:
        assert co.payment is not None
        co.payment = {"tenders": tender_rules.recorded(co.payment["tenders"])}
        co.commit_at = now.isoformat()
        co.state = "committing"
        self._save()  # from here on the sale happens, even across a crash
        failpoints.hit("before_commit")
        return self._commit(co)

    def _commit(self, co: Checkout) -> dict[str, Any]:
        assert co.quote is not None and co.payment is not None and co.commit_at is not None
        try:
            result = self.ledger.commit_sale(co.id, co.quote, co.card, co.payment, co.commit_at, co.id,
                                             co.coupons or None)
        except LedgerError as exc:
            # Refused whole (nothing written): back to `paying` so the cashier can fix it.
            co.state, co.payment, co.commit_at = "paying", None, None
            self._save()
            raise CheckoutError(f"checkout {co.id}: the sale was refused: {exc}") from None
        points_before = None
        if co.card and result["balance"] is not None:
            # Computed from the ledger's answer so a retried commit reports the same numbers.
            points_before = result["balance"] + result["redeemed"] - result["accrued"] - result["debt_paid"]
        sale = {"receipt": co.id, "at": co.commit_at, "quote": co.quote, "card": co.card,
                "tenders": co.payment["tenders"], "names": {ln["sku"]: ln["name"] for ln in co.lines},
                "points_before": points_before, "balance_after": result["balance"], "seq": result["seq"],
                "shift": result.get("shift"), "attendant": co.attendant,
                "change": tender_rules.change_of(co.payment["tenders"]),
                "issued_coupons": result.get("issued_coupons", [])}
        self.publish("sale", {"receipt": co.id, "to_pay": co.quote["to_pay"], "card": co.card,
                              "redeemed": result["redeemed"], "accrued": result["accrued"],
                              "balance": result["balance"], "tenders": sale["tenders"],
                              "change": sale["change"], "card_type_after": co.quote.get("card_type_after"),
                              "level": co.quote.get("level")})
        return sale

    def finish(self) -> None:
        """Forget the committed checkout (after its receipt is in the reprint queue)."""
        if self.current is not None and self.current.state == "committing":
            closed = self.current.id
            self.current = None
            self._save()
            self.publish("checkout_closed", {"id": closed, "reason": "paid", "points_released": 0})

    # ------------------------------------------------------------------ recovery

    def recover(self, now: dt.datetime) -> tuple[str, dict[str, Any] | None]:
        """After a start: ("none" | "resumed" | "expired" | "committed", sale to print or None)."""
        co = self._load()
        if co is None:
            return "none", None
        self.current = co
        if co.state == "committing":
            return "committed", self._commit(co)
        if co.state == "authorizing":
            return "authorizing", None  # the daemon asks the payment terminal, then decides
        co.state = "open"
        if self.expire_idle(now) is not None:
            return "expired", None
        self._changed(now)
        return "resumed", None

    # ------------------------------------------------------------------ returns

    def return_lines(self, receipt_id: str, lines: list[dict[str, Any]] | None,
                     return_id: str | None, now: dt.datetime,
                     tenders: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if self.current is not None:
            raise CheckoutError(f"checkout {self.current.id} is open; finish or cancel it before a return")
        receipt = self.ledger.receipt(receipt_id)
        if receipt is None:
            raise NotFound(f"receipt {receipt_id}: not in this terminal's ledger")
        if lines is None:
            lines = self._remaining(receipt)
            if not lines:
                raise CheckoutError(f"receipt {receipt_id}: everything was returned already")
        return_id = return_id or f"{self.terminal_id}-R{now.astimezone(dt.UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
        if tenders is None:  # not planned by the paying desk: back to the sale's tenders all the same
            tenders = self._split(receipt, lines)
        # §11 level_downgrade: the running program decides the level a return lowers a card to
        level_after = None if self.engine is None else self.engine.program.type_after_return
        result = self.ledger.commit_return(return_id, receipt_id, lines, now, tenders, level_after)
        names = {ln["sku"]: ln["sku"] for ln in receipt["quote"]["lines"]}
        for ln in receipt["quote"]["lines"]:
            try:
                names[ln["sku"]] = self.ledger.product(ln["sku"])["name"]
            except LedgerNotFoundError:
                continue  # a product deleted since the sale prints by its sku
        out = {**result, "at": now.isoformat(), "card": receipt["card"], "sale_quote": receipt["quote"],
               "names": names}
        self.publish("return", {"return": return_id, "receipt": receipt_id,
                                "money": result["refund"]["money"], "points": result["points"],
                                "tenders": result.get("tenders"), "card_type_after": result.get("card_type_after")})
        return out

    @staticmethod
    def _split(receipt: dict[str, Any], lines: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        from core.errors import RefundError
        from core.refund import compute_refund

        try:
            refund = compute_refund(receipt["quote"], {"lines": lines, "previous": receipt["refunds"]})
        except RefundError:
            return None  # the ledger refuses the return with the reason
        return tender_rules.refund_split(receipt["tenders"], receipt.get("refund_tenders", []), refund["money"])

    @staticmethod
    def _remaining(receipt: dict[str, Any]) -> list[dict[str, Any]]:
        done: dict[int, int] = {}
        for refund in receipt["refunds"]:
            for ln in refund["lines"]:
                done[ln["line"]] = done.get(ln["line"], 0) + ln["qty_milli"]
        return [{"line": i, "qty_milli": ln["qty_milli"] - done.get(i, 0)}
                for i, ln in enumerate(receipt["quote"]["lines"]) if ln["qty_milli"] > done.get(i, 0)]
