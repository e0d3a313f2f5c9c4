"""`posterm`: one command line for operators and technicians.

Each area adds its subcommands through a module in `terminal.commands` with a
`register(subparsers)` function; a handler returns the exit code. Refusals of bad input
(PricingError, TerminalError, DeviceError) print one line on stderr and exit with code 2 —
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from core.errors import PricingError
from drivers.errors import DeviceError
from terminal.errors import TerminalError

COMMAND_MODULES = (
    "terminal.commands.pricing",
    "terminal.commands.ledger",
    "terminal.commands.devices",
    "terminal.commands.daemon",
    "terminal.commands.sync",
    "terminal.commands.unit",
)
USER_ERRORS = (PricingError, TerminalError, DeviceError)
EXIT_REFUSED = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints usage; keep it to one clear line
        sys.stderr.write(f"posterm: {message} (see posterm --help)\n")
        raise SystemExit(EXIT_REFUSED)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="posterm", description="Loyalty-aware POS terminal service.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except USER_ERRORS as exc:
        sys.stderr.write(f"posterm: {exc}\n")
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
