"""Reports from the ledger: card balances; points accrued / redeemed / expired / clawed back per
period; sales by card type; shift (X/Z) totals. Period reports read the outbox (every event is
kept with its time and shift), so they show committed data only.

Periods are half-open [from, to). Limits: `EVENTS_SCAN_MAX` events, `CARDS_SCAN_MAX` cards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from terminal.ledger import codec, holds, keys, lots, moments, outbox
from terminal.ledger.store import Store

EVENTS_SCAN_MAX = 10_000_000
CARDS_SCAN_MAX = 10_000_000


def balances(store: Store, now: Any, rows_max: int = CARDS_SCAN_MAX) -> Iterator[dict[str, Any]]:
    at = moments.moment(now, "now")
    with store.env.begin() as txn:
        for count, (key, raw) in enumerate(txn.cursor(db=store.dbs["cards"])):
            if count >= rows_max:
                return  # the caller asked for the first `rows_max` cards
            number = keys.read_text(bytes(key))
            card = codec.load(bytes(key), raw, f"card {number}")
            debt = sum(
                -lot["points"]
                for _, lot in lots.card_lots(txn, store.dbs, number)
                if lot.get("debt")
            )
            held = sum(h["points"] for h in holds.active(txn, store.dbs, number, at.ms))
            free = lots.available(txn, store.dbs, number, at.ms)
            yield {
                "number": number,
                "type": card["type"],
                "holder": card["holder"],
                "cumulative": card["cumulative"],
                "balance": card["server_balance"] + card["local_delta"],
                "available": max(0, free - held),
                "held": held,
                "debt": debt,
                "server_balance": card["server_balance"],
                "server_version": card["server_version"],
                "local_delta": card["local_delta"],
                "blocked": card["blocked"],
            }


def _events(store: Store, first_seq: int = 1) -> Iterator[dict[str, Any]]:
    with store.env.begin() as txn:
        yield from outbox.events_from(txn, store.dbs, first_seq, EVENTS_SCAN_MAX)


def _period(start: Any, end: Any) -> tuple[int, int]:
    low = 0 if start is None else moments.moment(start, "from").ms
    high = 2**63 if end is None else moments.moment(end, "to").ms
    return low, high


def points(store: Store, start: Any = None, end: Any = None) -> dict[str, int]:
    low, high = _period(start, end)
    out = dict.fromkeys(
        (
            "accrued",
            "referral",
            "redeemed",
            "restored",
            "expired",
            "annulled",
            "clawed",
            "debt",
            "adjusted_up",
            "adjusted_down",
        ),
        0,
    )
    for event in _events(store):
        if not low <= event["at_ms"] < high:
            continue
        kind = event["type"]
        if kind == "sale":
            out["accrued"] += event["accrued"]
            out["redeemed"] += event["redeemed"]
            out["referral"] += sum(r["points"] for r in event["referral"] if r.get("local"))
        elif kind == "return":
            for name in ("restored", "annulled", "clawed", "debt"):
                out[name] += event[name]
        elif kind == "expiry":
            out["expired"] += event["points"]
        elif kind == "adjustment":
            out["adjusted_up" if event["points"] > 0 else "adjusted_down"] += abs(event["points"])
    return out


def _blank() -> dict[str, int]:
    return dict.fromkeys(
        ("sales", "total", "discount", "to_pay", "redeemed_money", "returns", "returned_money"), 0
    )


def sales_by_card_type(
    store: Store, start: Any = None, end: Any = None
) -> dict[str, dict[str, int]]:
    low, high = _period(start, end)
    out: dict[str, dict[str, int]] = {}
    for event in _events(store):
        if event["type"] not in ("sale", "return") or not low <= event["at_ms"] < high:
            continue
        row = out.setdefault(
            event["card_type"] or "(no card)" if event["card"] else "(no card)", _blank()
        )
        if event["type"] == "sale":
            row["sales"] += 1
            for name in ("total", "discount", "to_pay", "redeemed_money"):
                row[name] += event[name]
        else:
            row["returns"] += 1
            row["returned_money"] += event["money"]
    return dict(sorted(out.items()))


def shift(store: Store) -> dict[str, Any]:
    """X report: totals of the open shift (events since it opened). The first shift of a ledger
    was never opened by a close: it counts as opened at its first event."""
    with store.env.begin() as txn:
        meta = store.read_meta(txn)
    totals = _blank() | {"accrued": 0, "redeemed": 0, "cash_in": 0, "cash_out": 0}
    tenders: dict[str, int] = {}
    refunds: dict[str, int] = {}
    vat_sales: dict[int, list[int]] = {}
    vat_returns: dict[int, list[int]] = {}
    cash_moves: list[dict[str, Any]] = []
    opened_at = meta["shift_opened_at"]
    for event in _events(store, meta["shift_first_seq"]):
        if event["shift"] != meta["shift"]:
            continue
        opened_at = opened_at or event["at"]
        if event["type"] == "sale":
            totals["sales"] += 1
            for name in ("total", "discount", "to_pay", "redeemed_money", "accrued", "redeemed"):
                totals[name] += event[name]
            for tender in event["tenders"]:
                tenders[tender["method"]] = tenders.get(tender["method"], 0) + tender["amount"]
            _add_vat(vat_sales, event.get("vat", ()), "paid")
        elif event["type"] == "return":
            totals["returns"] += 1
            totals["returned_money"] += event["money"]
            for part in event.get("tenders", ()):
                refunds[part["method"]] = refunds.get(part["method"], 0) + part["amount"]
            _add_vat(vat_returns, event.get("vat", ()), "money")
        elif event["type"] in ("cash_in", "cash_out"):
            totals[event["type"]] += event["amount"]
            if len(cash_moves) < CASH_MOVES_LISTED_MAX:
                cash_moves.append({"kind": event["type"], "amount": event["amount"], "reason": event["reason"]})
    return {
        "shift": meta["shift"],
        "opened_at": opened_at,
        "totals": totals,
        "tenders": dict(sorted(tenders.items())),
        "refunds": dict(sorted(refunds.items())),
        "vat": {"sales": _vat_list(vat_sales, "paid"), "returns": _vat_list(vat_returns, "money")},
        "cash_moves": cash_moves,
    }


CASH_MOVES_LISTED_MAX = 100


def _add_vat(into: dict[int, list[int]], summary: Any, base: str) -> None:
    for row in summary or ():
        entry = into.setdefault(row["rate"], [0, 0])
        entry[0] += row[base]
        entry[1] += row["amount"]


def _vat_list(by_rate: dict[int, list[int]], base: str) -> list[dict[str, int]]:
    return [{"rate": rate, base: v[0], "amount": v[1]} for rate, v in sorted(by_rate.items())]
