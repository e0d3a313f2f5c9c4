"""A server update batch — catalog, cards, balance corrections, data versions — applied in one
write transaction and recorded by the batch id (a redelivered batch changes nothing).

Batch: {"catalog": [product | {"sku", "deleted": true}], "cards": [{"number", "type", "holder",
"referrers", "cumulative", "blocked", "version", "balance"?, "lots"?, "birth_date"?,
"issued_on"?, "tags"?}], "balances": [{"number",
"balance", "version"}], "versions": {"rules": "...", "catalog": "..."}, "acked": {"epoch", "seq"}?}.

The server is the authority for each card's lots: a card entry with `lots` replaces the card's
lots with the server's plus this terminal's own events after `acked` (`mirror.py`). A card or
balance entry whose version is not newer than the stored one is stale and skipped. An entry
without lots (an older server) is a balance correction: it moves the lots by the difference (a
lot available now and never expiring when up; soonest-expiring lots, then the debt lot, when
down) and sets server_balance; local_delta, the movements the server has not confirmed yet,
stays. An item that cannot be applied is refused alone and reported (`apply`).
Limits: ≤ 10 000 entries a list.
"""

from __future__ import annotations

from typing import Any

from protocol import coupons as coupon_codes
from terminal.ledger import cards, catalog, codec, coupons, fields, keys, lots, mirror, moments
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

ENTRIES_MAX = 10_000
VERSIONS_MAX = 16
REFUSED_EVENTS_MAX = 100
REASON_CHARS_MAX = 300
BATCH_FIELDS = frozenset({"catalog", "cards", "balances", "versions", "acked", "refused", "coupons"})
REFUSAL_FIELDS = frozenset({"item", "key", "reason"})
CARD_FIELDS = frozenset(
    {"number", "type", "holder", "referrers", "cumulative", "blocked", "version", "balance", "lots"}
) | cards.FACT_FIELDS
_ABSENT = object()
BALANCE_FIELDS = frozenset({"number", "balance", "version"})


def correct_balance(
    tx: Tx,
    number: str,
    balance: int,
    at: moments.Moment,
    source: str,
    end: moments.Moment | None = None,
) -> int:
    """Make server_balance = `balance`, moving the lots by the difference. Returns it."""
    card = tx.card(number)
    diff = balance - card["server_balance"]
    mark = tx.lot_mark(number)
    if diff > 0:
        lots.add(tx, number, diff, at, end, source)
    elif diff < 0:
        _, short = lots.take(tx, number, -diff, at.ms, only_available=False)
        lots.add_debt(tx, number, short)
    # The lots moved by `diff`; that movement is the server's, not a local one (no event
    # reports it, and the server's lots already hold it).
    tx.drop_lot_moves(number, mark)
    card["local_delta"] -= diff
    card["server_balance"] += diff
    return diff


def _checked_card(raw: Any, where: str) -> dict[str, Any]:
    """Every field of a card entry checked before anything is written (a refused entry must
    leave no trace): the card record, version, balance and lots."""
    entry = fields.mapping(raw, where, CARD_FIELDS)
    number = keys.name(entry.get("number"), f"{where} field 'number'")
    out: dict[str, Any] = {
        "number": number,
        "version": fields.whole(entry.get("version"), f"{where} field 'version'", 1),
        "fresh": cards.new_record(
            number,
            entry.get("type", ""),
            entry.get("holder", ""),
            entry.get("referrers", []),
            entry.get("cumulative", 0),
            entry.get("blocked", False),
            {name: entry[name] for name in cards.FACT_FIELDS if name in entry},
        ),
    }
    if "balance" in entry:
        out["balance"] = fields.whole(
            entry["balance"], f"{where} field 'balance'", -fields.POINTS_MAX, fields.POINTS_MAX
        )
    if "lots" in entry:
        if "balance" not in entry:
            raise fields.LedgerInputError(f"{where}: lots without a balance")
        out["lots"] = mirror.checked_lots(entry["lots"], where, out["balance"])
    return out


def rebase(store: Store, head: int, was: int) -> dict[str, Any]:
    """The central server was restored (its feed's head `head` is below our cursor `was`): card
    versions above `head` go back to 1 — confirmed by a server, older than anything the restored
    one sends — so its entries apply again, in one write transaction. Versions at or below
    `head` are the same history on both sides and stay."""

    def body(tx: Tx) -> dict[str, Any]:
        above = []
        with tx.txn.cursor(db=tx.dbs["cards"]) as cursor:
            for key, raw in cursor:
                record = codec.load(bytes(key), raw, "card")
                if record["server_version"] > head:
                    above.append(record["number"])
        for number in above:
            tx.card(number)["server_version"] = 1
        return {"head": head, "was": was, "cards": len(above)}

    return write(store, f"rebase-{was}-{head}", "feed_rebase", {"head": head, "was": was}, body)


def _card_entry(
    tx: Tx, entry: dict[str, Any], at: moments.Moment, batch_id: str, pending: dict[str, list[mirror.Pending]]
) -> bool:
    number, version, fresh = entry["number"], entry["version"], entry["fresh"]
    if tx.card_exists(number):
        card = tx.card(number)
        if version <= card["server_version"]:
            if card.get("offline_redeemed"):
                card["offline_redeemed"] = 0  # the server spoke of the card: a new offline period
            return False
        for name in ("type", "holder", "referrers", "cumulative", "blocked"):
            card[name] = fresh[name]
        for name in cards.FACT_FIELDS:  # the server's facts replace ours, unknown ones included
            card.pop(name, None)
            if name in fresh:
                card[name] = fresh[name]
    else:
        tx.new_card(fresh)
        card = fresh
    card["server_version"] = version
    card["offline_redeemed"] = 0
    if "lots" in entry:
        mirror.mirror(tx, number, entry["balance"], entry["lots"], pending.get(number, []))
    elif "balance" in entry:  # an older server: a balance correction
        correct_balance(tx, number, entry["balance"], at, f"update {batch_id}")
    return True


def _checked_balance(raw: Any, where: str) -> dict[str, Any]:
    entry = fields.mapping(raw, where, BALANCE_FIELDS)
    return {
        "number": keys.name(entry.get("number"), f"{where} field 'number'"),
        "version": fields.whole(entry.get("version"), f"{where} field 'version'", 1),
        "balance": fields.whole(
            entry.get("balance"), f"{where} field 'balance'", -fields.POINTS_MAX, fields.POINTS_MAX
        ),
    }


def _balance_entry(tx: Tx, entry: dict[str, Any], at: moments.Moment, batch_id: str) -> bool:
    card = tx.card(entry["number"])
    if entry["version"] <= card["server_version"]:
        return False
    card["server_version"] = entry["version"]
    correct_balance(tx, entry["number"], entry["balance"], at, f"update {batch_id}")
    return True


def _checked_coupon(raw: Any, where: str) -> dict[str, Any]:
    try:
        return coupon_codes.check_item(raw)
    except coupon_codes.CouponCodeError as exc:
        raise fields.LedgerInputError(f"{where}: {exc}") from None


def _refusal(kind: str, raw: Any, exc: Exception) -> dict[str, str]:
    return {"item": kind, "key": mirror.describe(raw), "reason": str(exc)[:REASON_CHARS_MAX]}


def _checked(items: list[Any], kind: str, where: str, check: Any, refused: list[dict[str, str]]) -> list[Any]:
    """The items that pass `check`; each refused one goes to `refused` (the rest still apply)."""
    out = []
    for i, raw in enumerate(items):
        try:
            out.append(check(raw, f"{where} {kind} {i}"))
        except fields.LedgerInputError as exc:
            refused.append(_refusal(kind, raw, exc))
    return out


def _checked_version(raw: Any, where: str) -> tuple[str, str]:
    name, value = raw
    return fields.text(name, f"{where} name", 32), fields.text(value, f"{where} {name}", 64)


def _replay_after(tx: Tx, acked: Any) -> int:
    """The last seq of this terminal the server's card states include: the page's `acked` for
    this ledger's epoch (0 for another epoch or none), or, from an older server that sends no
    `acked` in the batch, the ledger's own acked seq."""
    if acked is _ABSENT:
        return int(tx.meta["acked_seq"])
    if not isinstance(acked, dict) or acked.get("epoch") != tx.meta["epoch"] or type(acked.get("seq")) is not int:
        return 0
    return max(0, min(acked["seq"], tx.meta["next_seq"] - 1))


def apply(store: Store, batch_id: str, batch: Any, now: Any) -> dict[str, Any]:
    """Apply a batch; an item that cannot be applied (a malformed product, a card entry out of
    range) is refused alone — reported as an `update_refused` event (at most
    `REFUSED_EVENTS_MAX` a batch), in the result's `refused` and counted in the ledger's
    `updates_refused` — and the rest applies: one bad item never stalls the feed."""
    at = moments.moment(now, "now")
    b = fields.mapping(batch, f"update {batch_id}", BATCH_FIELDS)
    where = f"update {batch_id}"
    refused: list[dict[str, str]] = []
    products = _checked(
        fields.items(b.get("catalog", []), "catalog", ENTRIES_MAX), "product", where, catalog.check_product, refused
    )
    card_entries = _checked(
        fields.items(b.get("cards", []), f"{where} cards", ENTRIES_MAX), "card", where, _checked_card, refused
    )
    balances = _checked(
        fields.items(b.get("balances", []), f"{where} balances", ENTRIES_MAX), "balance", where, _checked_balance,
        refused,
    )
    fed_coupons = _checked(
        fields.items(b.get("coupons", []), f"{where} coupons", ENTRIES_MAX), "coupon", where, _checked_coupon, refused
    )
    raw_versions = fields.mapping(b.get("versions", {}), f"{where} versions")
    if len(raw_versions) > VERSIONS_MAX:
        raise fields.LedgerInputError(f"{where}: more than {VERSIONS_MAX} versions")
    versions = dict(_checked(list(raw_versions.items()), "version", where, _checked_version, refused))
    acked = b.get("acked", _ABSENT)
    for i, raw in enumerate(fields.items(b.get("refused", []), f"{where} refused", REFUSED_EVENTS_MAX)):
        item = fields.mapping(raw, f"{where} refused {i}", REFUSAL_FIELDS)  # refused before the ledger
        refused.append(
            {k: fields.text(item.get(k), f"{where} refused {i} {k}", REASON_CHARS_MAX) for k in REFUSAL_FIELDS}
        )

    def body(tx: Tx) -> dict[str, Any]:
        for product in products:
            catalog.put(tx, product)
        mirrored = {e["number"] for e in card_entries if "lots" in e}
        pending = mirror.pending_moves(tx, mirrored, _replay_after(tx, acked)) if mirrored else {}
        applied = skipped = 0
        for entry in card_entries:
            ok = _card_entry(tx, entry, at, batch_id, pending)
            applied, skipped = applied + ok, skipped + (not ok)
        for entry in balances:
            ok = _balance_entry(tx, entry, at, batch_id)
            applied, skipped = applied + ok, skipped + (not ok)
        replay_after = _replay_after(tx, acked) if fed_coupons else 0
        for item in fed_coupons:  # a code changed here and not yet stored by central keeps its state
            coupons.put_fed(tx, item, replay_after)
        tx.meta["versions"].update(versions)
        tx.meta["last_update"] = batch_id
        tx.meta["updates_refused"] = tx.meta.get("updates_refused", 0) + len(refused)
        for item in refused[:REFUSED_EVENTS_MAX]:
            tx.event("update_refused", at, {"batch": batch_id, **item})
        result = {
            "batch": batch_id,
            "products": len(products),
            "cards_applied": applied,
            "cards_stale": skipped,
            "refused": refused[:REFUSED_EVENTS_MAX],
            "refused_count": len(refused),
        }
        result["seq"] = tx.event("update_applied", at, {k: v for k, v in result.items() if k != "refused"})
        result["versions"] = dict(tx.meta["versions"])
        return result

    return write(store, batch_id, "update", b, body)
