"""The updates feed: rules, catalog items, data versions and card states after a cursor.

The feed is compacted: each item (rules, one product, one card) keeps only its latest state,
under the cursor of its latest change, so a terminal offline for a month pulls each changed
card once. A card entry carries the authoritative balance and is the balance correction, and
the card's §12 facts when it has any (central/cardfacts.py).
`acked` tells the terminal what the server already stored from it (read before the cards, so
every card balance in the page includes at least those events). Limit: `FEED_PAGE_ENTRIES_MAX`.
"""

from __future__ import annotations

from typing import Any

from central.balances import card_entry
from central.store import FEED_PAGE_ENTRIES_MAX, Store


def build_updates(store: Store, terminal: str, since: int, limit: int = FEED_PAGE_ENTRIES_MAX) -> dict[str, Any]:
    limit = max(1, min(limit, FEED_PAGE_ENTRIES_MAX))
    acked = store.latest_acked(terminal)
    items = store.feed_items(since, limit)
    cards = store.feed_cards(since, limit)
    merged: list[tuple[int, str, Any]] = sorted(
        [(c, "item", (kind, key, body)) for c, kind, key, body in items] + [(c, "card", card) for c, card in cards],
        key=lambda t: t[0],
    )
    more = len(merged) > limit or len(items) == limit or len(cards) == limit
    page = merged[:limit]
    out: dict[str, Any] = {
        "cursor": page[-1][0] if page else since,
        "more": more,
        "acked": acked,
        "rules": None,
        "catalog": [],
        "cards": [],
        "versions": {},
    }
    facts = store.card_facts([value.number for _, what, value in page if what == "card"])
    for cursor, what, value in page:
        if what == "card":
            out["cards"].append(card_entry(value, cursor) | facts.get(value.number, {}))
            continue
        kind, key, body = value
        if kind == "rules":
            out["rules"] = body
            out["versions"]["rules"] = body["version"]
        elif kind == "product":
            out["catalog"].append(body)
        elif kind == "version":
            out["versions"][key] = body["version"]
    return out
