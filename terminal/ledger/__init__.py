"""The terminal's LMDB ledger: catalog, cards, point lots, holds, receipts, returns and the
outbox, crash-safe (one fsynced write transaction per operation). See docs/ledger.md."""

from terminal.ledger.api import Ledger
from terminal.ledger.errors import (
    ImportRowsError,
    LedgerBalanceError,
    LedgerConflictError,
    LedgerError,
    LedgerFullError,
    LedgerInputError,
    LedgerInvariantError,
    LedgerNotFoundError,
)

__all__ = [
    "ImportRowsError",
    "Ledger",
    "LedgerBalanceError",
    "LedgerConflictError",
    "LedgerError",
    "LedgerFullError",
    "LedgerInputError",
    "LedgerInvariantError",
    "LedgerNotFoundError",
]
