"""Reference central server: batch ingest, updates feed, authoritative card balances."""
