"""A server update batch — catalog, cards, balance corrections, data versions — applied in one
write transaction and recorded by the batch id (a redelivered batch changes nothing).

Batch: {"catalog": [product | {"sku", "deleted": true}], "cards": [{"number", "type", "holder",
"referrers", "cumulative", "blocked", "version", "balance"?, "birth_date"?, "issued_on"?,
"tags"?}], "balances": [{"number",
"balance", "version"}], "versions": {"rules": "...", "catalog": "..."}}.

Offline authority: the server's balance includes every event this terminal has had acked. A
card or balance entry whose version is not newer than the stored one is stale and skipped.
A correction moves the lots by the difference (a lot available now and never expiring when up;
soonest-expiring lots, then the debt lot, when down) and sets server_balance; local_delta, the
movements the server has not confirmed yet, stays. Limits: ≤ 10 000 entries a list.
"""

from __future__ import annotations

from typing import Any

from terminal.ledger import cards, catalog, fields, keys, lots, moments
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

ENTRIES_MAX = 10_000
VERSIONS_MAX = 16
BATCH_FIELDS = frozenset({"catalog", "cards", "balances", "versions"})
CARD_FIELDS = frozenset(
    {"number", "type", "holder", "referrers", "cumulative", "blocked", "version", "balance"}
) | cards.FACT_FIELDS
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


def _card_entry(tx: Tx, raw: Any, where: str, at: moments.Moment, batch_id: str) -> bool:
    entry = fields.mapping(raw, where, CARD_FIELDS)
    number = keys.name(entry.get("number"), f"{where} field 'number'")
    version = fields.whole(entry.get("version"), f"{where} field 'version'", 1)
    fresh = cards.new_record(
        number,
        entry.get("type", ""),
        entry.get("holder", ""),
        entry.get("referrers", []),
        entry.get("cumulative", 0),
        entry.get("blocked", False),
        {name: entry[name] for name in cards.FACT_FIELDS if name in entry},
    )
    if tx.card_exists(number):
        card = tx.card(number)
        if version <= card["server_version"]:
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
    if "balance" in entry:
        balance = fields.whole(
            entry["balance"], f"{where} field 'balance'", -fields.POINTS_MAX, fields.POINTS_MAX
        )
        correct_balance(tx, number, balance, at, f"update {batch_id}")
    return True


def _balance_entry(tx: Tx, raw: Any, where: str, at: moments.Moment, batch_id: str) -> bool:
    entry = fields.mapping(raw, where, BALANCE_FIELDS)
    number = keys.name(entry.get("number"), f"{where} field 'number'")
    version = fields.whole(entry.get("version"), f"{where} field 'version'", 1)
    balance = fields.whole(
        entry.get("balance"), f"{where} field 'balance'", -fields.POINTS_MAX, fields.POINTS_MAX
    )
    card = tx.card(number)
    if version <= card["server_version"]:
        return False
    card["server_version"] = version
    correct_balance(tx, number, balance, at, f"update {batch_id}")
    return True


def apply(store: Store, batch_id: str, batch: Any, now: Any) -> dict[str, Any]:
    at = moments.moment(now, "now")
    b = fields.mapping(batch, f"update {batch_id}", BATCH_FIELDS)
    products = [
        catalog.check_product(p, f"update {batch_id} catalog {i}")
        for i, p in enumerate(fields.items(b.get("catalog", []), "catalog", ENTRIES_MAX))
    ]
    card_entries = fields.items(b.get("cards", []), f"update {batch_id} cards", ENTRIES_MAX)
    balances = fields.items(b.get("balances", []), f"update {batch_id} balances", ENTRIES_MAX)
    versions = fields.mapping(b.get("versions", {}), f"update {batch_id} versions")
    if len(versions) > VERSIONS_MAX:
        raise fields.LedgerInputError(f"update {batch_id}: more than {VERSIONS_MAX} versions")
    for name, value in versions.items():
        fields.text(name, f"update {batch_id} version name", 32)
        fields.text(value, f"update {batch_id} version {name}", 64)

    def body(tx: Tx) -> dict[str, Any]:
        for product in products:
            catalog.put(tx, product)
        applied = skipped = 0
        for i, raw in enumerate(card_entries):
            ok = _card_entry(tx, raw, f"update {batch_id} card {i}", at, batch_id)
            applied, skipped = applied + ok, skipped + (not ok)
        for i, raw in enumerate(balances):
            ok = _balance_entry(tx, raw, f"update {batch_id} balance {i}", at, batch_id)
            applied, skipped = applied + ok, skipped + (not ok)
        tx.meta["versions"].update(versions)
        tx.meta["last_update"] = batch_id
        result = {
            "batch": batch_id,
            "products": len(products),
            "cards_applied": applied,
            "cards_stale": skipped,
            "versions": dict(tx.meta["versions"]),
        }
        result["seq"] = tx.event(
            "update_applied", at, {k: v for k, v in result.items() if k != "versions"}
        )
        return result

    return write(store, batch_id, "update", b, body)
