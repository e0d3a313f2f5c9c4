"""`Ledger`: the one object the terminal holds — opens the file and offers every operation.

    ledger = Ledger.init("/var/lib/posterm/ledger", terminal_id="T01")   # once
    ledger = Ledger("/var/lib/posterm/ledger")
    card = ledger.card_for_quote("2000001", now)          # → core.Engine(...).quote(..., card, ...)
    ledger.commit_sale("s-1", quote, "2000001", {"tenders": [...]}, now)

Every write is one LMDB transaction, atomic and idempotent by its caller-given id; time is
always passed in.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, TextIO

from terminal.ledger import (
    adjust,
    adopted,
    backup,
    cards,
    cash,
    catalog,
    codec,
    coupons,
    expiry,
    holds,
    importing,
    keys,
    moments,
    outbox,
    reports,
    retention,
    returns,
    sales,
    shifts,
    staff,
    updates,
    upgrade,
    verify,
)
from terminal.ledger.errors import LedgerDamagedError, LedgerError, LedgerInputError
from terminal.ledger.store import (
    FORMAT_VERSION,
    FORMATS_READ,
    MAP_SIZE_DEFAULT_BYTES,
    MAP_SIZE_MAX_BYTES,
    MAP_SIZE_MIN_BYTES,
    META_KEY,
    Store,
)
from terminal.ledger.tx import Tx, write

EPOCH_MAX = 2**62  # the server keeps epochs as 64-bit integers


def _fresh_epoch() -> int:
    return int(time.time() * 1000)


def _make_dirs(path: Path) -> list[Path]:
    """Create `path` and missing parents; returns those created (deepest last)."""
    missing = [p for p in [path, *path.parents] if not p.exists()][::-1]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_made(missing)
        raise LedgerError(f"{path}: cannot create the ledger directory: {exc.strerror}") from None
    return missing


def _remove_made(created: list[Path]) -> None:
    for made in reversed(created):
        for name in ("data.mdb", "lock.mdb"):
            (made / name).unlink(missing_ok=True)
        try:
            made.rmdir()
        except OSError:
            return  # not empty or gone: leave what is not ours


class Ledger:
    def __init__(
        self, path: str | Path, map_size_bytes: int = MAP_SIZE_DEFAULT_BYTES, sync: bool = True
    ) -> None:
        self.store = Store(path, map_size_bytes, sync=sync)
        try:
            if upgrade.needed(self.store):
                upgrade.run(self.store)
            with self.store.env.begin() as txn:
                meta = self.store.read_meta(txn)
        except LedgerError:
            self.store.close()
            raise
        if meta.get("format") not in FORMATS_READ:
            self.store.close()
            raise LedgerError(
                f"{path}: ledger format {meta.get('format')}, this build reads "
                f"{', '.join(map(str, sorted(FORMATS_READ)))}"
            )
        self.terminal_id: str = meta["terminal"]

    @classmethod
    def init(
        cls,
        path: str | Path,
        terminal_id: str,
        map_size_bytes: int = MAP_SIZE_DEFAULT_BYTES,
        sync: bool = True,
        epoch: int | None = None,
    ) -> Ledger:
        """Create the ledger (or open it again: init is idempotent for the same terminal id).

        `epoch` numbers this ledger's event stream; the server keys events by (terminal, epoch,
        seq). By default it is the creation time in ms since 1970 — the one clock read here — so
        a terminal re-provisioned on a new disk starts a new stream instead of repeating the old
        one's sequence numbers, which the server would refuse as a conflict forever."""
        keys.text(terminal_id, "terminal id")
        if epoch is not None and (type(epoch) is not int or not 1 <= epoch <= EPOCH_MAX):
            raise LedgerInputError(f"epoch must be a whole number 1..{EPOCH_MAX}, got {epoch!r}")
        if not MAP_SIZE_MIN_BYTES <= map_size_bytes <= MAP_SIZE_MAX_BYTES:
            raise LedgerInputError(
                f"map size {map_size_bytes} bytes is outside {MAP_SIZE_MIN_BYTES}..{MAP_SIZE_MAX_BYTES}"
            )
        created = _make_dirs(Path(path))
        try:
            store = Store(path, map_size_bytes, sync=sync, create=True)
        except LedgerError:
            _remove_made(created)  # a refused init leaves nothing behind
            raise
        try:
            with store.env.begin(write=True) as txn:
                raw = txn.get(META_KEY, db=store.dbs["meta"])
                if raw is None:
                    meta = {
                        "format": FORMAT_VERSION,
                        "terminal": terminal_id,
                        "epoch": _fresh_epoch() if epoch is None else epoch,
                        "next_seq": 1,
                        "acked_seq": 0,
                        "next_lot_id": 0,
                        "shift": 1,
                        "shift_first_seq": 1,
                        "shift_opened_at": None,
                        "versions": {},
                        "last_update": None,
                    }
                    txn.put(META_KEY, codec.dump(META_KEY, meta), db=store.dbs["meta"])
                elif (owner := store.read_meta(txn)["terminal"]) != terminal_id:
                    raise LedgerError(f"{path}: already a ledger of terminal {owner}")
        finally:
            store.close()
        return cls(path, map_size_bytes, sync=sync)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads

    def meta(self) -> dict[str, Any]:
        with self.store.env.begin() as txn:
            return self.store.read_meta(txn)

    def card_for_quote(self, number: str, now: Any, checkout: str | None = None) -> dict[str, Any]:
        with self.store.env.begin() as txn:
            return cards.for_quote(
                txn, self.store.dbs, number, moments.moment(now, "now"), checkout
            )

    def card(self, number: str, now: Any) -> dict[str, Any]:
        with self.store.env.begin() as txn:
            return cards.summary(txn, self.store.dbs, number, moments.moment(now, "now"))

    def product(self, code: str) -> dict[str, Any]:
        with self.store.env.begin() as txn:
            return catalog.lookup(txn, self.store.dbs, code)

    def receipt(self, receipt_id: str) -> dict[str, Any] | None:
        with self.store.env.begin() as txn:
            key = keys.text(receipt_id, "receipt id")
            raw = txn.get(key, db=self.store.dbs["receipts"])
            return None if raw is None else codec.load(key, raw, f"receipt {receipt_id}")

    def coupon(self, code: str) -> dict[str, Any] | None:
        """What this terminal knows of a coupon code (terminal.ledger.coupons), or None."""
        with self.store.env.begin() as txn:
            return coupons.lookup(txn, self.store.dbs, code)

    def adopt_receipt(self, sale: Any, now: Any) -> dict[str, Any]:
        """Another terminal's sale, from the central server, kept here for a return."""
        return adopted.adopt(self.store, sale, now)

    def merge_returns(self, receipt_id: str, returns: Any) -> dict[str, Any]:
        """The server's returns of a receipt held here, made at other terminals, counted here."""
        return adopted.merge_returns(self.store, receipt_id, returns)

    def usage(self) -> float:
        return self.store.usage()

    def stats(self) -> dict[str, Any]:
        meta = self.meta()
        with self.store.env.begin() as txn:
            counts = {name: txn.stat(db)["entries"] for name, db in self.store.dbs.items()}
        data = self.store.path / "data.mdb"
        return {
            "path": str(self.store.path),
            "terminal": meta["terminal"],
            "epoch": meta["epoch"],
            "file_bytes": data.stat().st_size,
            "map_size_bytes": self.store.map_size_bytes,
            "usage_percent": round(self.usage() * 100, 2),
            "backlog": meta["next_seq"] - 1 - meta["acked_seq"],
            "next_seq": meta["next_seq"],
            "acked_seq": meta["acked_seq"],
            "shift": meta["shift"],
            "versions": meta["versions"],
            "updates_refused": meta.get("updates_refused", 0),
            "entries": counts,
        }

    # ------------------------------------------------------------------ writes

    def commit_sale(
        self,
        sale_id: str,
        quote: Any,
        card: str | None,
        payment: Any,
        now: Any,
        checkout: str | None = None,
        presented: Any = None,
        language: str | None = None,
    ) -> dict[str, Any]:
        return sales.commit(self.store, sale_id, quote, card, payment, now, checkout, presented, language)

    def commit_return(
        self, return_id: str, receipt_id: str, lines: Any, now: Any, tenders: Any = None,
        level_after: returns.LevelAfter | None = None,
    ) -> dict[str, Any]:
        return returns.commit(self.store, return_id, receipt_id, lines, now, tenders, level_after)

    def cash_move(self, op_id: str, kind: str, amount: Any, reason: Any, now: Any) -> dict[str, Any]:
        return cash.move(self.store, op_id, kind, amount, reason, now)

    def expire(self, op_id: str, now: Any) -> dict[str, Any]:
        return expiry.sweep(self.store, op_id, now)

    def adjust(
        self,
        op_id: str,
        number: str,
        points: int,
        reason: str,
        technician: str,
        now: Any,
        expires_at: Any = None,
    ) -> dict[str, Any]:
        return adjust.adjust(self.store, op_id, number, points, reason, technician, now, expires_at)

    def hold(
        self, op_id: str, number: str, checkout: str, points: int, now: Any, expires_at: Any
    ) -> dict[str, Any]:
        return holds.place(self.store, op_id, number, checkout, points, now, expires_at)

    def void_hold(self, op_id: str, number: str, checkout: str, now: Any) -> dict[str, Any]:
        return holds.void(self.store, op_id, number, checkout, now)

    def apply_updates(self, batch_id: str, batch: Any, now: Any) -> dict[str, Any]:
        return updates.apply(self.store, batch_id, batch, now)

    def rebase_feed(self, head: int, was: int) -> dict[str, Any]:
        """A restored central server: card versions above its feed head go back (updates.rebase)."""
        return updates.rebase(self.store, head, was)

    def close_shift(self, op_id: str, totals: dict[str, Any], now: Any) -> dict[str, Any]:
        return shifts.close(self.store, op_id, totals, now)

    def attendant_action(self, op_id: str, attendant: str, role: str, action: str,
                         detail: dict[str, Any], now: Any) -> dict[str, Any]:
        return staff.attendant_action(self.store, op_id, attendant, role, action, detail, now)

    def attributed(self, op_id: str, attendant: str, role: str, action: str,
                   detail: dict[str, Any], now: Any) -> contextlib.AbstractContextManager[None]:
        """`with ledger.attributed(...): action()` — the action and its attendant_action event
        in one write transaction (terminal.ledger.staff.attributed)."""
        return staff.attributed(self.store, op_id, attendant, role, action, detail, now)

    def read_pin_tries(self) -> dict[str, Any]:
        return staff.read_tries(self.store)

    def write_pin_tries(self, state: dict[str, Any]) -> None:
        staff.write_tries(self.store, state)

    def register_card(self, op_id: str, number: str, card_type: str, phone: str,
                      consent: dict[str, Any], store_id: str, now: Any) -> dict[str, Any]:
        return staff.register_card(self.store, op_id, number, card_type, phone, consent, store_id, now)

    def card_by_phone(self, phone: str) -> str:
        with self.store.env.begin() as txn:
            return staff.card_by_phone(txn, self.store.dbs, phone)

    # ------------------------------------------------------------------ outbox

    def outbox_pending(self, limit: int = outbox.BATCH_EVENTS_MAX) -> list[dict[str, Any]]:
        return outbox.pending(self.store, limit)

    def mark_acked(self, through_seq: int) -> dict[str, Any]:
        return outbox.mark_acked(self.store, through_seq)

    def backlog(self) -> int:
        return outbox.backlog(self.store)

    # ------------------------------------------------------------------ technicians

    def import_cards(self, path: str | Path, now: Any, force: bool = False) -> dict[str, Any]:
        return importing.import_cards(self.store, path, now, force)

    def unconfirmed_cards(self, limit: int = 10) -> list[str]:
        """Cards no server has confirmed (terminal/sync/seeding.py)."""
        with self.store.env.begin() as txn:
            return cards.unconfirmed(txn, self.store.dbs, limit)

    def local_cards_confirmed(self, now: Any) -> dict[str, Any]:
        """The server knows every locally imported card: the first sync may send events."""
        at = moments.moment(now, "now")

        def body(tx: Tx) -> dict[str, Any]:
            return {"confirmed": tx.meta.pop("local_cards", 0), "at": at.iso}

        return write(self.store, f"local-cards-confirmed:{self.meta()['epoch']}", "import", {}, body)

    def import_catalog(self, path: str | Path, now: Any, force: bool = False) -> dict[str, Any]:
        return importing.import_catalog(self.store, path, now, force)

    def export_balances(self, out: TextIO, now: Any) -> int:
        return importing.export_balances(self.store, out, now)

    def prune(self, now: Any, events_keep_days: int = retention.EVENTS_KEEP_DAYS_DEFAULT,
              receipts_keep_days: int = retention.RECEIPTS_KEEP_DAYS_DEFAULT) -> dict[str, Any]:
        """One bounded retention pass (see `retention`); call again while `more`."""
        return retention.prune(self.store, now, events_keep_days, receipts_keep_days)

    def backup(self, out: str | Path) -> dict[str, Any]:
        return backup.backup(self.store, out)

    def compact(self) -> dict[str, Any]:
        """Compact the file in place; the ledger is closed afterwards."""
        return backup.compact(self.store)

    def verify(self) -> dict[str, Any]:
        return verify.verify(self.store)

    # ------------------------------------------------------------------ reports

    def report_balances(
        self, now: Any, rows_max: int = reports.CARDS_SCAN_MAX
    ) -> list[dict[str, Any]]:
        return list(reports.balances(self.store, now, rows_max))

    def report_points(self, start: Any = None, end: Any = None) -> dict[str, int]:
        return reports.points(self.store, start, end)

    def report_sales(self, start: Any = None, end: Any = None) -> dict[str, dict[str, int]]:
        return reports.sales_by_card_type(self.store, start, end)

    def report_shift(self) -> dict[str, Any]:
        return reports.shift(self.store)


def verify_file(path: str | Path, map_size_bytes: int = MAP_SIZE_DEFAULT_BYTES) -> dict[str, Any]:
    """`Ledger.verify` for a file that may be too damaged to open as a ledger: damage (a bad
    meta record, a truncated file) is a result with problems, not a refusal. What is not a
    ledger at all (no such directory) is still refused with `LedgerError`."""
    try:
        with Ledger(path, map_size_bytes) as ledger:
            return ledger.verify()
    except LedgerDamagedError as exc:
        opening = str(exc)
    try:
        store = Store(path, map_size_bytes)
    except LedgerDamagedError as exc:
        return {"ok": False, "damaged": 1, "problems": [str(exc)], "cards": 0, "events": 0,
                "receipts": 0, "returns": 0}
    try:
        result = verify.verify(store)
    finally:
        store.close()
    if not any(opening.startswith(p.split(":")[0]) for p in result["problems"]):
        result["problems"].insert(0, opening)
    result["ok"] = False
    return result
