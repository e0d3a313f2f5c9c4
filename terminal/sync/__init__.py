"""Sync with the central server: signed msgpack batches out, the updates feed in, online card
lookups. Protocol: docs/protocol.md. The daemon runs `run_sync(ledger, config, stop_event)`."""

from terminal.sync.cards import CardLookup
from terminal.sync.client import Backoff, SyncClient
from terminal.sync.config import SyncConfig
from terminal.sync.errors import SyncError, TransientError
from terminal.sync.loop import Syncer, run_sync

__all__ = ["Backoff", "CardLookup", "SyncClient", "SyncConfig", "SyncError", "Syncer", "TransientError", "run_sync"]
