"""Pulling the updates feed and applying each page atomically.

A page is validated by `wire.decode_updates` (shape, limits) and by the ledger (every field)
inside ONE ledger write transaction, recorded under a batch id made of the cursor and a
digest of the content: a redelivered page changes nothing. An item the terminal cannot apply
(a card entry out of range, a malformed product, rules that do not compile) is refused alone,
logged and reported to the server (an `update_refused` event); the rest of the page applies
and the cursor moves on — one bad item never stalls the feed. A page malformed as a whole
changes nothing and is refused. Published rules are compiled first, written aside, and renamed into
`rules_file` only after the ledger took the page (the daemon reloads its engine when the
ledger's `versions["rules"]` changes). The cursor is saved (atomic rename) only after the page
is applied; a crash in between re-pulls the same page, which the ledger answers from its
operation log.
Limits: `PAGES_PER_PULL_MAX` pages per pull.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import PricingError
from core.rules import compile_rules, parse_rules_text
from protocol import wire
from terminal.ledger import Ledger, LedgerError
from terminal.sync.client import SyncClient
from terminal.sync.errors import SyncError

log = logging.getLogger("posterm.sync")

PAGES_PER_PULL_MAX = 1_000
STATE_BYTES_MAX = 4096


def read_cursor(state_file: Path, epoch: int | None = None) -> int:
    """The updates cursor saved for the ledger of `epoch`. A state file saved for another ledger
    (a terminal re-provisioned on a new disk, a ledger re-initialised beside an old state file)
    gives 0: the new ledger has none of the updates that cursor counts as applied."""
    try:
        raw = state_file.read_bytes()[:STATE_BYTES_MAX]
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise SyncError(f"{state_file}: cannot read the sync state: {exc}") from None
    try:
        state = json.loads(raw)
        cursor, saved_for = state["cursor"], state.get("epoch")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SyncError(f"{state_file}: damaged sync state; delete it to pull every update again") from None
    if type(cursor) is not int or cursor < 0:
        raise SyncError(f"{state_file}: cursor {cursor!r} is not a cursor")
    if epoch is not None and saved_for is not None and saved_for != epoch:
        log.warning(
            "event=sync_state_reset state_file=%s saved_epoch=%s ledger_epoch=%s cursor=%s",
            state_file, saved_for, epoch, cursor,
        )
        return 0
    return cursor


def cursor_state(cursor: int, epoch: int) -> bytes:
    return json.dumps({"cursor": cursor, "epoch": epoch}).encode()


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that a crash leaves the old or the new content, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise SyncError(f"{path}: cannot write: {exc}") from None


def ledger_batch(page: dict[str, Any]) -> dict[str, Any]:
    batch = {
        "catalog": page.get("catalog", []),
        "cards": page.get("cards", []),
        "balances": page.get("balances", []),
        "versions": page.get("versions", {}),
    }
    if page.get("coupons"):
        batch["coupons"] = page["coupons"]
    if page.get("refused"):
        batch["refused"] = page["refused"]
    if (batch["cards"] or batch.get("coupons")) and "acked" in page:
        batch["acked"] = page["acked"]  # what the card states include of this terminal's events
    return batch


def _check_rules(rules: dict[str, Any]) -> str | None:
    """None when the published rules compile; else why not."""
    try:
        source = f"central rules {rules['version']}"
        compile_rules(parse_rules_text(rules["text"], source), source)  # nesting bounded first
    except PricingError as exc:
        return f"central rules {rules['version']}: refused: {exc}"
    return None


def _refuse_rules(page: dict[str, Any], reason: str) -> dict[str, Any]:
    """The page without its rules (the old ones stay), the refusal reported with the rest."""
    versions = {k: v for k, v in page.get("versions", {}).items() if k != "rules"}
    refused = {"item": "rules", "key": str(page["rules"]["version"])[:64], "reason": reason[:300]}
    return {**page, "rules": None, "versions": versions, "refused": [refused]}


def apply_page(ledger: Ledger, page: dict[str, Any], rules_file: Path | None, now: Any) -> dict[str, Any]:
    """Apply one decoded page (blocking; run in a thread). A refused page raises SyncError and
    changes nothing — but acks the page reports stay confirmed: they are facts of the server,
    not of the page's content, and must precede the balances. Rules that do not compile are a
    bad item, not a bad page: they are skipped (the running program and rules file stay), the
    refusal is logged and returned as `rules_refused`, and the rest of the page applies."""
    rules = page.get("rules")
    refused = None
    if rules is not None:
        reason = _check_rules(rules)
        if reason is not None:
            page, rules, refused = _refuse_rules(page, reason), None, reason
            log.warning("event=rules_refused cursor=%s reason=%r", page.get("cursor"), refused)
    acked = page.get("acked")
    meta = ledger.meta()
    if acked and acked["epoch"] == meta["epoch"] and acked["seq"] > meta["acked_seq"]:
        # The server stored events whose ack we never saw (killed between its commit and our
        # ack): confirm them first, so the balances below do not count them twice.
        ledger.mark_acked(min(acked["seq"], meta["next_seq"] - 1))
    staged = None
    if rules is not None and rules_file is not None:
        # Written aside now, renamed into place only once the ledger took the page.
        staged = rules_file.with_name(rules_file.name + ".new")
        write_atomic(staged, rules["text"].encode())
    try:
        result = _apply_ledger(ledger, page, now)
    except SyncError:
        if staged is not None:
            staged.unlink(missing_ok=True)
        raise
    if staged is not None and rules_file is not None:
        try:
            os.replace(staged, rules_file)
        except OSError as exc:
            raise SyncError(f"{rules_file}: cannot write: {exc}") from None
    return result if refused is None else {**result, "rules_refused": refused}


def _apply_ledger(ledger: Ledger, page: dict[str, Any], now: Any) -> dict[str, Any]:
    batch = ledger_batch(page)
    if not any(batch.values()):
        return {"cards_applied": 0, "products": 0}
    digest = hashlib.sha256(wire.pack(batch)).hexdigest()[:24]
    try:
        result = ledger.apply_updates(f"central-{page['cursor']}-{digest}", batch, now)
    except LedgerError as exc:
        raise SyncError(f"update page at cursor {page['cursor']}: refused, nothing changed: {exc}") from None
    for item in result.get("refused", []):
        # The rest of the page applied; the server is told by an `update_refused` event.
        log.error(
            "event=update_refused cursor=%s item=%s key=%s reason=%r",
            page["cursor"], item["item"], item["key"], item["reason"],
        )
    return result


class UpdatesPuller:
    def __init__(self, ledger: Ledger, client: SyncClient, state_file: Path, rules_file: Path | None) -> None:
        self.ledger, self.client = ledger, client
        self.state_file, self.rules_file = state_file, rules_file
        self.epoch = ledger.meta()["epoch"]
        self.cursor = read_cursor(state_file, self.epoch)
        self.applied_pages = 0
        self.rules_refused: str | None = None  # the last rules from the feed that did not compile

    async def _rebase(self, head: int) -> None:
        """The server's feed ends below our cursor: it was restored from an older backup. Card
        versions above its head go back, then the feed is read again from 0 (central/feed.py)."""
        done = await asyncio.to_thread(self.ledger.rebase_feed, head, self.cursor)
        log.warning("event=feed_reset cursor=%s head=%s cards_rebased=%s", self.cursor, head, done["cards"])
        await asyncio.to_thread(write_atomic, self.state_file, cursor_state(0, self.epoch))
        self.cursor = 0

    async def pull(self) -> int:
        """Pull and apply pages until the feed has no more; returns the pages applied."""
        pages = 0
        for _ in range(PAGES_PER_PULL_MAX):
            try:
                backlog = await asyncio.to_thread(self.ledger.backlog)
                page = await self.client.get_updates(self.cursor, backlog)
            except wire.ProtocolError as exc:
                raise SyncError(f"update page after cursor {self.cursor}: refused: {exc}") from None
            if page.get("reset"):
                await self._rebase(page.get("head", 0))
                continue
            if page["cursor"] < self.cursor:
                raise SyncError(f"central moved the cursor back ({page['cursor']} < {self.cursor})")
            now = datetime.now(UTC).isoformat()
            result = await asyncio.to_thread(apply_page, self.ledger, page, self.rules_file, now)
            if "rules_refused" in result:
                self.rules_refused = result["rules_refused"]
            advanced = page["cursor"] != self.cursor
            if advanced:
                await asyncio.to_thread(write_atomic, self.state_file, cursor_state(page["cursor"], self.epoch))
                log.info(
                    "event=updates_applied cursor=%s cards=%s products=%s",
                    page["cursor"],
                    result.get("cards_applied", 0),
                    result.get("products", 0),
                )
                self.cursor = page["cursor"]
                pages += 1
            if not page["more"] or not advanced:
                break
        self.applied_pages += pages
        return pages
