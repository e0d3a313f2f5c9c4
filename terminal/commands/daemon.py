"""`posterm run`, `posterm demo`, `posterm provision`, `posterm status`: the daemon and its set-up.

Exit codes: 0 fine, 1 a check failed (demo numbers, daemon unreachable in status), 2 refused
input (bad config, bad arguments) with one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from terminal.config import ConfigError, load_config

DEFAULT_CONFIG = "/etc/posterm/terminal.toml"
STATUS_TIMEOUT_S = 2.0


def register(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="run the terminal daemon (systemd starts this)")
    run.add_argument("--config", default=DEFAULT_CONFIG, help=f"terminal config (default {DEFAULT_CONFIG})")
    run.set_defaults(handler=cmd_run)

    demo = subparsers.add_parser("demo", help="the whole daemon on simulated devices, scripted checkouts")
    demo.add_argument("--keep-running", action="store_true", help="leave the daemon up for a UI (Ctrl-C ends)")
    demo.add_argument("--dir", help="work directory (default: a new temporary one)")
    demo.add_argument("--pricing-only", action="store_true", help="only the pricing-core scenario walk")
    demo.set_defaults(handler=cmd_demo)

    prov = subparsers.add_parser("provision", help="set up a terminal: config, ledger, key, rules, data")
    prov.add_argument("--config", default=DEFAULT_CONFIG, help="config file to write")
    prov.add_argument("--terminal", required=True, help="terminal id (1..8 of A-Z a-z 0-9 _)")
    prov.add_argument("--store", required=True, help="store id, as in the rules' `stores`")
    prov.add_argument("--store-name", default="", help="printed on receipts")
    prov.add_argument("--state-dir", default="/var/lib/posterm", help="ledger, rules, key, spool")
    prov.add_argument("--socket", default="/run/posterm/api.sock", help="the local API's Unix socket")
    prov.add_argument("--server", default="", help="central server URL (http:// or https://)")
    prov.add_argument("--key-file", type=Path, help="the terminal key from `posterm-central terminal add`")
    prov.add_argument("--scanner", action="append", default=[], help="evdev:PATH | serial:PATH | sim:PATH")
    prov.add_argument("--card-reader", action="append", default=[], help="evdev:PATH | serial:PATH | sim:PATH")
    prov.add_argument("--printer", default="", help="usb:VID:PID | network:HOST[:PORT] | file:PATH | "
                                                    "serial:PATH | sim:DIR")
    prov.add_argument("--legal-name", default="", help="the seller's legal name, printed on receipts")
    prov.add_argument("--address", default="", help="the store's address, printed on receipts")
    prov.add_argument("--tax-id", default="", help="the seller's tax id (INN), printed on receipts")
    prov.add_argument("--payment", default="", help="payment terminal: sim:DIR")
    prov.add_argument("--fiscal", default="", help="fiscal registrar: atol:URL (ATOL web server) | sim:DIR")
    prov.add_argument("--rules", type=Path, help="rules file (TOML) to install")
    prov.add_argument("--catalog", type=Path, help="catalog CSV to import")
    prov.add_argument("--cards", type=Path, help="cards CSV to import")
    prov.add_argument("--force", action="store_true", help="replace an existing config file")
    prov.set_defaults(handler=cmd_provision)

    status = subparsers.add_parser("status", help="ledger size, outbox backlog, last sync, device states")
    status.add_argument("--config", default=DEFAULT_CONFIG, help=f"terminal config (default {DEFAULT_CONFIG})")
    status.set_defaults(handler=cmd_status)


def cmd_run(args: argparse.Namespace) -> int:
    from terminal.daemon import serve

    # Our own handler: a library may have configured the root logger already (basicConfig no-op).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("posterm")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
    config = load_config(args.config)
    return asyncio.run(serve(config))


def cmd_demo(args: argparse.Namespace) -> int:
    if args.pricing_only:
        from terminal import demo as pricing_demo

        return pricing_demo.main()
    from terminal.demo_run import run_demo

    return asyncio.run(run_demo(args.dir, args.keep_running))


def cmd_provision(args: argparse.Namespace) -> int:
    from terminal.provision import ProvisionRequest, provision

    req = ProvisionRequest(
        config_path=Path(args.config), terminal_id=args.terminal, store=args.store,
        store_name=args.store_name, state_dir=Path(args.state_dir), socket=Path(args.socket),
        server_url=args.server, scanners=tuple(args.scanner), card_readers=tuple(args.card_reader),
        printer=args.printer, rules=args.rules, catalog=args.catalog, cards=args.cards, key_file=args.key_file,
        force=args.force, legal_name=args.legal_name, address=args.address, tax_id=args.tax_id,
        payment=args.payment, fiscal=args.fiscal)
    provision(req)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from terminal.ledger import Ledger

    config = load_config(args.config)
    if not (config.ledger_path / "data.mdb").exists():
        raise ConfigError(f"{config.ledger_path}: no ledger; run posterm provision first")
    with Ledger(config.ledger_path) as ledger:
        stats = ledger.stats()
        last = ledger.meta().get("last_update")
    print(f"terminal    {config.terminal_id}  store {config.store}")
    print(f"ledger      {stats['path']}: {stats['file_bytes']} bytes, {stats['usage_percent']} % of the map used")
    print(f"outbox      {stats['backlog']} event(s) not yet acknowledged by the server (next seq {stats['next_seq']})")
    print(f"last sync   {last or 'never'}")
    print(f"checkout    {'an open checkout is recorded' if config.checkout_path.exists() else 'none open'}")
    daemon = asyncio.run(_daemon_status(config.api_socket))
    if daemon is None:
        print(f"daemon      not reachable on {config.api_socket} (not running?); device states unknown "
              "— posterm doctor checks the devices directly")
        return 1
    print(f"daemon      pid {daemon['pid']}, up {daemon['uptime_s']} s, engine {daemon['engine']}, "
          f"rules {daemon['rules']}, checkout {daemon['checkout']}, print queue {daemon['print_queue']}")
    sync = daemon.get("sync")
    if sync is not None:
        state = "online" if sync.get("online") else "offline"
        error = f", last error: {sync['last_error']}" if sync.get("last_error") else ""
        print(f"sync        {state}, {sync.get('failures', 0)} failed round(s){error}")
    for name, dev in sorted(daemon["devices"].items()):
        detail = f" ({dev.get('detail')})" if dev.get("detail") else ""
        print(f"device      {name}: {dev.get('role', '?')} {dev.get('state', 'unknown')}{detail}")
    return 0


async def _daemon_status(socket_path: Path) -> dict[str, Any] | None:
    import aiohttp

    from terminal.client import ApiClient

    if not socket_path.exists():
        return None
    try:
        async with ApiClient(socket_path) as client:
            status, data = await asyncio.wait_for(client.call("GET", "/v1/status"), STATUS_TIMEOUT_S)
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None
    return data if status == 200 else None
