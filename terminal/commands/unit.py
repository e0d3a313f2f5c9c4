"""`posterm unit-network`: the systemd drop-in that opens posterm.service's IP allow-list to the
central server and network printers of the config (terminal.unit_network). Exit 0 written or
printed, 2 refused (unresolvable host, bad --allow, unwritable path) with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from terminal.commands.daemon import DEFAULT_CONFIG
from terminal.unit_network import DROPIN_PATH, network_dropin, write_dropin


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("unit-network", help="the systemd drop-in allowing the server's and printers' IPs")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"terminal config (default {DEFAULT_CONFIG})")
    parser.add_argument("--out", help=f"write it here (e.g. {DROPIN_PATH}) instead of printing it")
    parser.add_argument("--allow", action="append", default=[], help="one more address or prefix (e.g. a DNS server)")
    parser.set_defaults(handler=handle)


def handle(args: Any) -> int:
    from terminal.config import load_config

    text = network_dropin(load_config(args.config), args.allow)
    if args.out:
        write_dropin(Path(args.out), text)
        print(f"wrote {args.out}; now: systemctl daemon-reload && systemctl restart posterm")
    else:
        print(text, end="")
    return 0
