"""The ledger's refusals. Every message names the card, receipt, row, file or setting at fault.

A refusal raised inside a write transaction aborts it: nothing of the operation is kept.
"""

from terminal.errors import TerminalError


class LedgerError(TerminalError):
    """Base of everything the ledger refuses; safe to show to a technician."""


class LedgerFullError(LedgerError):
    """The LMDB map is full; the transaction was aborted and nothing was written."""


class LedgerInvariantError(LedgerError):
    """An always-on consistency check failed; the transaction was aborted."""


class LedgerDamagedError(LedgerInvariantError):
    """A stored record fails its checksum, or the file is shorter than its meta pages say:
    the operation was refused; the file needs `posterm ledger verify` and its backup."""


class LedgerConflictError(LedgerError):
    """An operation id was reused with different content (exists_with_different_fields)."""


class LedgerNotFoundError(LedgerError):
    """A card, receipt, hold or product named by the caller is not in the ledger."""


class LedgerBalanceError(LedgerError):
    """Not enough points (or a blocked card) for what was asked."""


class LedgerInputError(LedgerError):
    """A value handed to the ledger is malformed or outside its limits."""


class ImportRowsError(LedgerError):
    """A CSV file has bad rows; nothing was imported. `problems` lists (row, field, problem)."""

    def __init__(self, path: str, problems: list[tuple[int, str, str]]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(
            f"{path}: {len(problems)} bad row(s), nothing imported (use --force to import the good "
            f"rows); first: row {first[0]} field {first[1]!r}: {first[2]}"
        )
