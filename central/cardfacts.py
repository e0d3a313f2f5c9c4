"""A card's spec §12 customer facts on the central server: birth date, issued on, tags.

They come from the chain's card file (`publish cards`, protocol/cardfile.py) and change only when
it is published again, so they live beside the cards table, not in it (`card_facts`: number →
msgpack map), and events never read them. The updates feed adds them to each card entry it
sends, so terminals keep them on their card records. The same SQL runs on SQLite and
PostgreSQL (the driver's placeholder aside).
"""

from __future__ import annotations

from typing import Any

from protocol.wire import pack, unpack

SCHEMA_SQLITE = "CREATE TABLE IF NOT EXISTS card_facts (number TEXT PRIMARY KEY, facts BLOB NOT NULL);"
SCHEMA_PG = "CREATE TABLE IF NOT EXISTS card_facts (number TEXT PRIMARY KEY, facts BYTEA NOT NULL);"
FACTS_BYTES_MAX = 4096
READ_CHUNK = 500  # SQLite's bound-parameter limit


def put(tx: Any, facts: dict[str, dict[str, Any]]) -> None:
    """Replace the facts of these cards (an empty map forgets them), inside the caller's
    transaction (`IngestTx._rows`). `RETURNING` keeps both drivers' fetchall happy."""
    for number in sorted(facts):
        if facts[number]:
            tx._rows(
                "INSERT INTO card_facts (number, facts) VALUES (?, ?) ON CONFLICT (number) "
                "DO UPDATE SET facts = excluded.facts RETURNING number",
                (number, pack(facts[number])),
            )
        else:
            tx._rows("DELETE FROM card_facts WHERE number = ? RETURNING number", (number,))


def read(query: Any, numbers: list[str]) -> dict[str, dict[str, Any]]:
    """The facts of the cards that have any; `query` is `Store._query`."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(numbers), READ_CHUNK):
        chunk = numbers[start : start + READ_CHUNK]
        marks = ",".join("?" * len(chunk))
        for number, body in query(f"SELECT number, facts FROM card_facts WHERE number IN ({marks})", tuple(chunk)):
            out[str(number)] = unpack(bytes(body), FACTS_BYTES_MAX)
    return out
