"""`posterm attendant add | list | remove`: who may unlock the kiosk's privileged actions.

The PIN is asked for on the terminal (not echoed) unless `--pin-stdin` reads it from a pipe;
it never appears in the process list, the shell history or a log. So is an attendant card
(`--card`, or `--card-stdin` from the line after the PIN's): its number, as the card reader or
scanner reads it, stored only as a hash. The file is written 0600.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from terminal.attendants import (
    ROLE_PERMISSIONS,
    AttendantError,
    card_salt_of,
    check_name,
    new_entry,
    read_file,
    write_file,
)
from terminal.commands.daemon import DEFAULT_CONFIG
from terminal.config import load_config

PIN_LINE_CHARS_MAX = 64


def register(subparsers: Any) -> None:
    att = subparsers.add_parser("attendant", help="attendants who unlock returns, voids, age checks, shifts")
    sub = att.add_subparsers(dest="attendant_command", required=True)
    add = sub.add_parser("add", help="add an attendant or change their role and PIN")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=sorted(ROLE_PERMISSIONS))
    add.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
    add.add_argument("--card", action="store_true", help="also an attendant card: swipe, scan or type it when asked")
    add.add_argument("--card-stdin", action="store_true",
                     help="also an attendant card, read from standard input (the line after the PIN's)")
    lst = sub.add_parser("list", help="names and roles")
    rem = sub.add_parser("remove", help="remove an attendant (their open sessions end)")
    rem.add_argument("name")
    for parser in (add, lst, rem):
        parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"terminal config (default {DEFAULT_CONFIG})")
        parser.add_argument("--file", type=Path, help="attendants file (default: [screen] attendants_file)")
    add.set_defaults(handler=cmd_add)
    lst.set_defaults(handler=cmd_list)
    rem.set_defaults(handler=cmd_remove)


def _path(args: argparse.Namespace) -> Path:
    return Path(args.file) if args.file else load_config(args.config).screen.attendants_file


def _read_pin(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline(PIN_LINE_CHARS_MAX).strip()
    pin = getpass.getpass("PIN: ")
    if getpass.getpass("PIN again: ") != pin:
        raise AttendantError("the two PINs differ; nothing changed")
    return pin


def _read_card(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline(PIN_LINE_CHARS_MAX + 1).strip()
    return getpass.getpass("Card (swipe, scan or type it; not shown): ").strip()


def cmd_add(args: argparse.Namespace) -> int:
    path = _path(args)
    entries = read_file(path)
    pin = _read_pin(args.pin_stdin)
    card = _read_card(args.card_stdin) if args.card or args.card_stdin else None
    entry = new_entry(check_name(args.name), args.role, pin, card, card_salt_of(entries))
    old = entries.get(args.name, {})
    if card is None and "card_hash" in old:  # a new PIN or role keeps the attendant's card
        entry.update(card_salt=old["card_salt"], card_hash=old["card_hash"])
    taken = [n for n, e in entries.items() if n != args.name and e.get("card_hash") == entry.get("card_hash", "-")]
    if taken:
        raise AttendantError(f"this card is attendant {taken[0]}'s already; nothing changed")
    entries[args.name] = entry
    write_file(path, entries)
    has_card = ", with a card" if "card_hash" in entry else ""
    print(f"attendant {args.name}: {'updated' if old else 'added'}, role {args.role}{has_card} ({path})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for name, entry in sorted(read_file(_path(args)).items()):
        card = "\tcard" if "card_hash" in entry else ""
        print(f"{name}\t{entry['role']}\t{' '.join(sorted(ROLE_PERMISSIONS[entry['role']]))}{card}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    path = _path(args)
    entries = read_file(path)
    if entries.pop(args.name, None) is None:
        raise AttendantError(f"{path}: no attendant {args.name}")
    write_file(path, entries)
    print(f"attendant {args.name}: removed")
    return 0
