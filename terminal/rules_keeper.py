"""The daemon's pricing program and the last good rules file kept beside the ledger.

A rules file is compiled before it replaces the running program; the bytes of every file that
compiled are copied to `rules.last-good.toml` next to the ledger directory. A file that does
not compile — nested 500 deep, not TOML, a bad rule — is refused: the running program stays,
and the refusal is kept (`refusal`) for the daemon to report as an event, a log line and in
`status`. At start the same holds: a bad or missing rules file with a last good copy starts the
daemon on that copy (reported), so a bad file can never crash-loop the unit. Only with no good
program at all, and no server to send one, is the start refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import core
from core.errors import PricingError, RuleError
from core.rules import FILE_BYTES_MAX, compile_rules, parse_rules_text
from terminal.errors import TerminalError
from terminal.files import read_bounded

GOOD_NAME = "rules.last-good.toml"


class RulesKeeper:
    def __init__(self, rules_path: Path, ledger_path: Path) -> None:
        self.rules_path = rules_path
        self.good_path = ledger_path.parent / GOOD_NAME
        self.refusal: str | None = None

    def _compile(self, path: Path) -> tuple[core.Program, bytes]:
        data = read_bounded(path, FILE_BYTES_MAX, "rules")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RuleError(f"{path}: the rules file is not UTF-8 text") from None
        return compile_rules(parse_rules_text(text, str(path)), str(path)), data

    def _keep(self, data: bytes) -> None:
        """Copy a file that compiled (atomically; a copy that cannot be written only loses the
        fallback, never the program)."""
        try:
            if self.good_path.exists() and self.good_path.read_bytes() == data:
                return
            tmp = self.good_path.with_name(GOOD_NAME + ".tmp")
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.good_path)
        except OSError as exc:
            self.refusal = f"{self.good_path}: cannot keep the last good rules: {exc.strerror}"

    def load(self) -> core.Program:
        """The rules file compiled; refuses (PricingError/TerminalError) and keeps nothing new
        when it does not compile."""
        program, data = self._compile(self.rules_path)
        self.refusal = None
        self._keep(data)
        return program

    def refuse(self, exc: Exception) -> str:
        self.refusal = f"{self.rules_path}: refused, the last good rules stay: {exc}"
        return self.refusal

    def at_start(self, waiting_allowed: bool) -> core.Program | None:
        """The program to start with: the rules file, else the last good copy (reported), else
        None when a server will send rules (`waiting_allowed`), else the refusal."""
        if not self.rules_path.exists() and waiting_allowed and not self.good_path.exists():
            return None  # the first rules have not arrived from the server yet
        try:
            return self.load()
        except (PricingError, TerminalError) as exc:
            failure = exc
        if self.good_path.exists():
            try:
                program, _ = self._compile(self.good_path)
            except (PricingError, TerminalError):
                pass  # a damaged copy: fall through to the original refusal
            else:
                self.refusal = (f"{self.rules_path}: refused ({failure}); started with the last good "
                                f"rules {program.version or ''} from {self.good_path}")
                return program
        if waiting_allowed:
            self.refusal = f"{self.rules_path}: refused ({failure}); waiting for rules from the server"
            return None
        raise failure
