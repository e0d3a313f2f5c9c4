"""The program central published: the rules file of `posterm-central publish rules`, compiled.

Central needs the program for what it decides itself: the awards it grants (spec §16,
central/awards.py) and the level a return lowers a card to (§11 `level_downgrade`,
central/balances.py). The rules text lives in the feed (kind `rules`), checked at publish time
exactly as a terminal compiles it (central/checks.py); here it is compiled once per published
version and kept (`ProgramCache`, one per store) — a lookup costs one indexed read of the feed
row's cursor. No rules published: no program (None), so no awards and no central level changes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from core.errors import PricingError
from core.rules import Program, compile_rules, parse_rules_text
from protocol.wire import unpack

log = logging.getLogger("posterm.central")
RULES_BODY_BYTES_MAX = 4 * 1024 * 1024  # what a feed body may hold (central/store.py reads the same)
CURSOR_SQL = "SELECT cursor FROM feed WHERE kind = 'rules' AND key = 'rules'"
BODY_SQL = "SELECT cursor, body FROM feed WHERE kind = 'rules' AND key = 'rules'"


class ProgramCache:
    """The last compiled program and the feed cursor it was published under."""

    def __init__(self) -> None:
        self.cursor: int | None = None
        self.program: Program | None = None
        self.lock = threading.Lock()  # collectors' threads share the store

    def get(self, tx: Any) -> Program | None:
        """The published program as `tx` (an `IngestTx`) sees it; None when none is published."""
        rows = tx._rows(CURSOR_SQL, ())
        if not rows:
            return None
        cursor = int(rows[0][0])
        with self.lock:
            if cursor == self.cursor:
                return self.program
        rows = tx._rows(BODY_SQL, ())
        if not rows:
            return None
        cursor, body = int(rows[0][0]), unpack(bytes(rows[0][1]), RULES_BODY_BYTES_MAX, RULES_BODY_BYTES_MAX)
        program = _compiled(body)
        with self.lock:
            self.cursor, self.program = cursor, program
        return program


def _compiled(body: Any) -> Program | None:
    """The program of a feed `rules` body; None (logged) for one that no longer compiles (a
    rules file published by an older server: terminals refuse it too and keep theirs)."""
    text = body.get("text") if isinstance(body, dict) else None
    source = f"published rules {body.get('version') if isinstance(body, dict) else '?'}"
    if not isinstance(text, str):
        log.error("event=program_refused reason=%r", "the published rules item has no text")
        return None
    try:
        return compile_rules(parse_rules_text(text, source), source)
    except PricingError as exc:
        log.error("event=program_refused reason=%r", str(exc)[:300])
        return None
