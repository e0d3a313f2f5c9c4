"""Refusals and failures of the sync task. Transient ones are retried forever with backoff."""

from terminal.errors import TerminalError


class SyncError(TerminalError):
    """Sync cannot proceed as configured (bad config, refused batch, conflicting history)."""


class TransientError(SyncError):
    """The central server is unreachable, slow, overloaded or answered something unusable
    (5xx, a dropped connection, an unsigned or wrongly signed reply): retry later."""
