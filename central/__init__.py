"""Reference central server: batch ingest, updates feed, authoritative card balances.

`wire` (the format both sides import), `server` (aiohttp service), `store` (the storage
interface and the ingest algorithm) with `store_sqlite` / `store_pg`, `balances` (pure balance
arithmetic), `feed` (updates pages), `cli` (`posterm-central`). Contract: docs/protocol.md.
"""
