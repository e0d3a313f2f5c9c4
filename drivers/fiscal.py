"""Fiscal documents and the `fiscal` device role: what a fiscal registrar must register for every
sale and return (items with price, quantity, VAT rate and amount; payment types; the taxation
system), the driver interface, a simulated registrar, and the durable queue documents wait in.

Order of events (chosen): before any money is taken the daemon asks the registrar `check()` and
builds the document — a registrar that is not ready (no paper, shift over 24 h, not fiscalised,
unreachable) or a document it could not register (an unsupported VAT rate) blocks the sale with
the reason for the attendant. After the sale commits, the document goes into the fiscal queue
(fsynced like the reprint queue) and `FiscalQueue.drain` registers it; the document's id is the
sale's (or return's) id, so a resubmission after a crash is recognised by the registrar instead
of registered twice.

`SimulatedFiscal` is a directory: registered documents are appended to `documents.jsonl`; a file
`not_ready` holding a reason makes `check()` refuse with it, a file `broken` makes `register` fail.
Limits: `items_max`, `payments_max`, `name_chars_max`, the spool's limits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from core.vat import vat_in
from drivers.errors import DeviceError
from drivers.spool import Spool

DocKind = Literal["sell", "sellReturn"]
# ATOL's payment types (ДТО 10 JSON tasks, `payments[].type`; FFD tags 1031, 1081, 1215, 1216, 1217):
# points a card redeems are "other" — иная форма оплаты, встречное предоставление (tag 1217)
PaymentType = Literal["cash", "electronically", "prepaid", "credit", "other"]
POINTS_PAYMENT: PaymentType = "other"
items_max = 1000
payments_max = 16
name_chars_max = 128
amount_minor_max = 10**15
EVENT_TEXT_CHARS_MAX = 200


class FiscalError(DeviceError):
    """The registrar refused a document or is not ready; the message says why, for the attendant."""


@dataclass(frozen=True, slots=True)
class FiscalItem:
    name: str
    price: int  # minor units, VAT included
    qty_milli: int
    amount: int  # what the customer paid for the line, VAT included
    vat_rate_bp: int | None  # 2000 = 20 %; None = outside VAT
    vat_amount: int


@dataclass(frozen=True, slots=True)
class FiscalPayment:
    type: PaymentType
    amount: int


@dataclass(frozen=True, slots=True)
class FiscalDocument:
    doc_id: str
    kind: DocKind
    items: tuple[FiscalItem, ...]
    payments: tuple[FiscalPayment, ...]
    taxation: str
    operator: str

    def __post_init__(self) -> None:
        if self.kind not in ("sell", "sellReturn"):
            raise FiscalError(f"fiscal document {self.doc_id}: kind must be sell or sellReturn")
        if not self.items or len(self.items) > items_max or len(self.payments) > payments_max:
            raise FiscalError(f"fiscal document {self.doc_id}: 1..{items_max} items and ≤ {payments_max} payments")
        for item in self.items:
            if not 0 < len(item.name) <= name_chars_max or not 0 <= item.amount <= amount_minor_max:
                raise FiscalError(f"fiscal document {self.doc_id}: item {item.name[:40]!r} has a bad name or amount")
        if sum(p.amount for p in self.payments) != self.total:
            raise FiscalError(f"fiscal document {self.doc_id}: payments add up to "
                              f"{sum(p.amount for p in self.payments)}, items to {self.total}")

    @property
    def total(self) -> int:
        return sum(item.amount for item in self.items)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> FiscalDocument:
        try:
            raw = json.loads(data)
            return cls(raw["doc_id"], raw["kind"], tuple(FiscalItem(**i) for i in raw["items"]),
                       tuple(FiscalPayment(**p) for p in raw["payments"]), raw["taxation"], raw["operator"])
        except (ValueError, KeyError, TypeError) as exc:
            raise FiscalError(f"fiscal queue: unreadable document ({exc!r})") from None


def payment_type(method: str) -> PaymentType:
    """Cash is cash; every other money tender (card, phone, …) is electronic for the tax office."""
    return "cash" if method == "cash" else "electronically"


def document_from_lines(doc_id: str, kind: DocKind, lines: Sequence[Mapping[str, Any]],
                        names: Mapping[str, str], tenders: Sequence[Mapping[str, Any]],
                        taxation: str, operator: str, amount_key: str = "paid") -> FiscalDocument:
    """A document from quote lines (amount_key "paid") or refund lines joined with their sale
    lines (amount_key "money"). Points a card redeemed are a payment of their own, type "other"
    (the tax office's view: paying with a shop's bonus points is встречное предоставление, not a
    discount — the price stays, docs/fiscal.md): each item's amount is its money plus its
    `redeem_amount`, its VAT the VAT of that whole amount, and the points' money is one payment.
    Lines that cost nothing are left out."""
    items, points_money = [], 0
    for line in lines:
        money, points = int(line[amount_key]), int(line.get("redeem_amount", 0))
        amount = money + points
        if amount <= 0:
            continue
        points_money += points
        rate = line.get("vat_rate")
        vat = int(line.get("vat_amount", 0)) if not points or rate is None else vat_in(amount, int(rate))
        items.append(FiscalItem(str(names.get(line["sku"], line["sku"]))[:name_chars_max] or "?",
                                int(line["price"]), int(line["qty_milli"]), amount,
                                None if rate is None else int(rate), vat))
    merged: dict[str, int] = {}
    for tender in tenders:
        if tender["method"] == "points" or not tender["amount"]:
            continue
        kind_of = payment_type(str(tender["method"]))
        merged[kind_of] = merged.get(kind_of, 0) + int(tender["amount"])
    if points_money:
        merged[POINTS_PAYMENT] = merged.get(POINTS_PAYMENT, 0) + points_money
    payments = tuple(FiscalPayment(t, a) for t, a in merged.items())  # type: ignore[arg-type]
    return FiscalDocument(doc_id, kind, tuple(items), payments, taxation, operator)


@dataclass(frozen=True, slots=True)
class FiscalResult:
    doc_id: str
    ok: bool
    fiscal_number: str = ""
    detail: str = ""


class FiscalRegistrar(Protocol):
    name: str

    async def check(self) -> str | None:
        """None when ready to register; else the reason, for the attendant."""

    async def register(self, document: FiscalDocument) -> FiscalResult: ...


class SimulatedFiscal:
    def __init__(self, name: str, directory: str | Path) -> None:
        self.name, self.directory = name, Path(directory)

    async def check(self) -> str | None:
        path = self.directory / "not_ready"
        if path.exists():
            return path.read_text(encoding="utf-8", errors="replace").strip()[:EVENT_TEXT_CHARS_MAX] or "not ready"
        return None

    async def register(self, document: FiscalDocument) -> FiscalResult:
        if (self.directory / "broken").exists():
            return FiscalResult(document.doc_id, False, detail="simulated registrar is broken")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "documents.jsonl"
        known = self.documents()
        if any(d["doc_id"] == document.doc_id for d in known):  # a resubmission: the same answer
            return FiscalResult(document.doc_id, True, str(1 + [d["doc_id"] for d in known].index(document.doc_id)))
        with path.open("a", encoding="utf-8") as handle:
            handle.write(document.to_json().decode() + "\n")
        return FiscalResult(document.doc_id, True, str(len(known) + 1))

    def documents(self) -> list[dict[str, Any]]:
        path = self.directory / "documents.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def make_registrar(name: str, driver: str, source: str, timeout_s: int = 30,
                   taxation: str = "osn") -> FiscalRegistrar:
    if driver == "simulated":
        return SimulatedFiscal(name, source)
    if driver == "atol":
        from drivers.atol import AtolRegistrar

        return AtolRegistrar(name, source, timeout_s, taxation)
    raise DeviceError(f"fiscal registrar {name}: unknown driver {driver!r}")


class FiscalQueue:
    """Committed documents on disk until the registrar has registered them (oldest first)."""

    def __init__(self, registrar: FiscalRegistrar, spool: Spool,
                 report: Callable[[str, dict[str, Any]], None] = lambda kind, data: None) -> None:
        self.registrar, self.spool, self.report = registrar, spool, report

    def put(self, document: FiscalDocument) -> None:
        self.spool.put(document.doc_id, document.to_json(), "")

    async def drain(self) -> int:
        done = 0
        for job in self.spool.jobs():
            data, _ = self.spool.read(job)
            try:
                document = FiscalDocument.from_json(data)
                result = await self.registrar.register(document)
            except FiscalError as exc:
                self.report("error", {"message": f"fiscal document {job.job_id}: {exc}"})
                return done
            if not result.ok:
                self.report("error", {"message": f"fiscal document {job.job_id} not registered: "
                                                 f"{result.detail[:EVENT_TEXT_CHARS_MAX]}; it is retried"})
                return done
            self.spool.remove(job)
            self.report("fiscal", {"receipt": document.doc_id, "kind": document.kind,
                                   "fiscal_number": result.fiscal_number})
            done += 1
        return done
