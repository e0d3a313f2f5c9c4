"""`posterm attendant add | list | remove`: who may unlock the kiosk's privileged actions.

The PIN is asked for on the terminal (not echoed) unless `--pin-stdin` reads it from a pipe;
it never appears in the process list, the shell history or a log. The file is written 0600.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from terminal.attendants import ROLE_PERMISSIONS, AttendantError, check_name, new_entry, read_file, write_file
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


def cmd_add(args: argparse.Namespace) -> int:
    path = _path(args)
    entries = read_file(path)
    entry = new_entry(check_name(args.name), args.role, _read_pin(args.pin_stdin))
    existed = args.name in entries
    entries[args.name] = entry
    write_file(path, entries)
    print(f"attendant {args.name}: {'updated' if existed else 'added'}, role {args.role} ({path})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for name, entry in sorted(read_file(_path(args)).items()):
        print(f"{name}\t{entry['role']}\t{' '.join(sorted(ROLE_PERMISSIONS[entry['role']]))}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    path = _path(args)
    entries = read_file(path)
    if entries.pop(args.name, None) is None:
        raise AttendantError(f"{path}: no attendant {args.name}")
    write_file(path, entries)
    print(f"attendant {args.name}: removed")
    return 0
