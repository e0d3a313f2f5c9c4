"""The updates feed: rules, catalog items, data versions and card states after a cursor.

The feed is compacted: each item (rules, one product, one card) keeps only its latest state,
under the cursor of its latest change, so a terminal offline for a month pulls each changed
card once. A card entry is the card's authoritative state — its lots with their dates, their
sum the balance, and its version (the card's cursor); the terminal mirrors those lots exactly
and keeps on top only its own events after `acked`. `acked` (what the server stored from the
asking terminal) and the cards are read in one snapshot (`Store.feed_page`), so each card entry
includes exactly this terminal's events through `acked` — never one more. Entries carry the
card's §12 facts when it has any (central/cardfacts.py).
Limits: `FEED_PAGE_ENTRIES_MAX` entries and about `PAGE_CARD_BYTES_MAX` bytes of card entries a
page (a card's lots make entries of very different sizes; the rest waits for the next page).

A terminal's cursor above the feed's head can only mean that the server was restored from an
older backup: the reply is then an empty page `{"cursor": 0, "reset": true, "head": H}`, and
the terminal takes its card versions above H back to 1 (older than anything this server will
send) and reads the feed again from 0 (terminal/sync/updates.py) — instead of being told
"nothing new" for ever.
"""

from __future__ import annotations

from typing import Any

from central.balances import card_entry
from central.store import FEED_PAGE_ENTRIES_MAX, Store
from protocol import wire

# Under wire.UPDATES_BYTES_MAX with room for rules (≤ 1 MiB) and a page of products.
PAGE_CARD_BYTES_MAX = 4 * 1024 * 1024


def build_updates(store: Store, terminal: str, since: int, limit: int = FEED_PAGE_ENTRIES_MAX) -> dict[str, Any]:
    limit = max(1, min(limit, FEED_PAGE_ENTRIES_MAX))
    acked, items, cards = store.feed_page(terminal, since, limit)
    merged: list[tuple[int, str, Any]] = sorted(
        [(c, "item", (kind, key, body)) for c, kind, key, body in items]
        + [(c, "card", (card, stored)) for c, card, stored in cards],
        key=lambda t: t[0],
    )
    more = len(merged) > limit or len(items) == limit or len(cards) == limit
    page = merged[:limit]
    if not page and since > 0:
        head = store.feed_head()
        if since > head:
            return {"cursor": 0, "more": True, "acked": acked, "rules": None, "catalog": [], "cards": [],
                    "versions": {}, "reset": True, "head": head}
    out: dict[str, Any] = {
        "cursor": since,
        "more": more,
        "acked": acked,
        "rules": None,
        "catalog": [],
        "cards": [],
        "versions": {},
    }
    card_bytes = 0
    facts = store.card_facts([value[0].number for _, what, value in page if what == "card"])
    for cursor, what, value in page:
        if what == "card":
            entry = card_entry(value[0], cursor, value[1]) | facts.get(value[0].number, {})
            size = len(wire.pack(entry))
            if card_bytes + size > PAGE_CARD_BYTES_MAX and out["cards"]:
                out["more"] = True  # this card and the rest come with the next page
                break
            card_bytes += size
            out["cards"].append(entry)
        else:
            kind, key, body = value
            if kind == "rules":
                out["rules"] = body
                out["versions"]["rules"] = body["version"]
            elif kind == "product":
                out["catalog"].append(body)
            elif kind == "coupon":
                out.setdefault("coupons", []).append(body)  # only when there are some: older terminals
            elif kind == "version":
                out["versions"][key] = body["version"]
        out["cursor"] = cursor
    return out
