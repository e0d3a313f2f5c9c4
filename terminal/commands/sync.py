"""`posterm sync …`: one sync round by hand, or the sync state.

    posterm sync once   --ledger DIR --config posterm.toml   # drain the outbox, pull updates
    posterm sync status --ledger DIR --config posterm.toml   # backlog, acked seq, updates cursor

`once` tries each step once (no retry loop) and exits 0 when everything was sent and pulled;
a failure prints one line and exits 2 — nothing unsent is ever dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from terminal.ledger import Ledger
from terminal.sync.client import SyncClient
from terminal.sync.config import SyncConfig
from terminal.sync.loop import Syncer
from terminal.sync.updates import read_cursor


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sync", help="exchange batches with the central server")
    parser.add_argument("action", choices=["once", "status"])
    parser.add_argument("--ledger", required=True, help="the ledger directory")
    parser.add_argument("--config", required=True, help="the terminal config file with a [sync] section")
    parser.set_defaults(handler=handle)


async def _once(ledger: Ledger, config: SyncConfig) -> dict[str, int]:
    async with SyncClient(config.url, ledger.terminal_id, config.key, config.request_timeout_ms) as client:
        return await Syncer(ledger, config, client).once()


def handle(args: argparse.Namespace) -> int:
    config = SyncConfig.from_file(args.config)
    with Ledger(args.ledger) as ledger:
        if args.action == "once":
            done = asyncio.run(_once(ledger, config))
            print(json.dumps({**done, "backlog": ledger.backlog()}))
            return 0
        meta = ledger.meta()
        print(
            json.dumps(
                {
                    "terminal": meta["terminal"],
                    "epoch": meta["epoch"],
                    "acked_seq": meta["acked_seq"],
                    "backlog": ledger.backlog(),
                    "updates_cursor": read_cursor(config.state_file, meta["epoch"]),
                    "versions": meta["versions"],
                    "central": config.url,
                }
            )
        )
    return 0
