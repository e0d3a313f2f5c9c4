"""`posterm ledger …`: the technician's view of the LMDB ledger.

    posterm ledger init --path DIR --terminal-id T01 [--map-size-mb N]
    posterm ledger import-cards FILE [--force]     (also import-catalog)
    posterm ledger export-balances [--out FILE]
    posterm ledger card NUMBER
    posterm ledger adjust NUMBER POINTS --reason TEXT --technician NAME [--id ID]
    posterm ledger expire [--id ID]
    posterm ledger report balances|points|sales|shift [--from T --to T] [--close]
    posterm ledger verify | stats
    posterm ledger prune [--events-keep-days N] [--receipts-keep-days N]
    posterm ledger backup --out DIR | restore --from DIR [--force] | compact

Every command but init takes `--ledger DIR` (and `--json`, `--now`, `--map-size-mb`).
This shell owns the clock: `--now` (ISO-8601 with offset) defaults to this machine's time.
Operations take `--id` so a retried command is harmless; without it a fresh id is made.
`verify` exits 1 when it finds problems; refusals exit 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import uuid
from typing import Any

from terminal.jsonio import dump_json
from terminal.ledger import Ledger, retention
from terminal.ledger.api import verify_file
from terminal.ledger.backup import restore
from terminal.ledger.store import MAP_SIZE_DEFAULT_BYTES

MIB = 1024 * 1024


def _now(args: argparse.Namespace) -> str:
    return args.now or dt.datetime.now().astimezone().isoformat()


def _open(args: argparse.Namespace) -> Ledger:
    if not args.ledger:
        raise SystemExit(_usage("--ledger DIR is required for this command"))
    return Ledger(args.ledger, args.map_size_mb * MIB)


def _usage(message: str) -> int:
    sys.stderr.write(f"posterm: ledger: {message}\n")
    return 2


def _print(args: argparse.Namespace, value: Any, text: str) -> None:
    if args.json:
        dump_json(value)
    else:
        print(text)


def _adder(sub: Any, common: argparse.ArgumentParser) -> Any:
    def add(name: str, **kwargs: Any) -> Any:
        return sub.add_parser(name, parents=[common], **kwargs)

    return add


def register(subparsers: Any) -> None:
    ledger = subparsers.add_parser("ledger", help="the LMDB ledger: cards, points, reports")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--ledger", help="ledger directory")
    common.add_argument(
        "--map-size-mb",
        type=int,
        default=MAP_SIZE_DEFAULT_BYTES // MIB,
        help="LMDB map size in MiB (default %(default)s)",
    )
    common.add_argument("--now", help="ISO-8601 time with offset (default: this machine's clock)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub = ledger.add_subparsers(dest="ledger_command", required=True)
    add = _adder(sub, common)

    init = add("init", help="create a ledger")
    init.add_argument("--path", required=True)
    init.add_argument("--terminal-id", required=True)
    init.set_defaults(handler=cmd_init)
    for what in ("cards", "catalog"):
        imp = add(f"import-{what}", help=f"import {what} from CSV (see docs/ledger.md)")
        imp.add_argument("file")
        imp.add_argument("--force", action="store_true", help="import the good rows of a bad file")
        imp.set_defaults(handler=cmd_import, what=what)
    export = add("export-balances", help="card balances as CSV")
    export.add_argument("--out", help="file to write (default: stdout)")
    export.set_defaults(handler=cmd_export)
    card = add("card", help="one card: balance, lots, holds")
    card.add_argument("number")
    card.set_defaults(handler=cmd_card)
    adjust = add("adjust", help="add (+N) or remove (-N) points, with a reason")
    adjust.add_argument("number")
    adjust.add_argument("points", type=int)
    adjust.add_argument("--reason", required=True)
    adjust.add_argument("--technician", required=True)
    adjust.add_argument("--expires-at", help="expiry of added points (default: never)")
    adjust.add_argument("--id", help="adjustment id (retrying with the same id is harmless)")
    adjust.set_defaults(handler=cmd_adjust)
    expire = add("expire", help="annul expired points, drop timed-out holds")
    expire.add_argument("--id")
    expire.set_defaults(handler=cmd_expire)
    report = add("report", help="balances | points | sales | shift")
    report.add_argument("kind", choices=("balances", "points", "sales", "shift"))
    report.add_argument("--from", dest="start", help="period start (inclusive)")
    report.add_argument("--to", dest="end", help="period end (exclusive)")
    report.add_argument("--close", action="store_true", help="shift: Z report, closes the shift")
    report.add_argument("--limit", type=int, default=1000, help="balances: at most N cards")
    report.set_defaults(handler=cmd_report)
    add("verify", help="check the whole file").set_defaults(handler=cmd_verify)
    add("stats", help="size, usage, backlog").set_defaults(handler=cmd_stats)
    prune = add("prune", help="drop acked events and old receipts the server holds")
    prune.add_argument("--events-keep-days", type=int, default=retention.EVENTS_KEEP_DAYS_DEFAULT)
    prune.add_argument("--receipts-keep-days", type=int, default=retention.RECEIPTS_KEEP_DAYS_DEFAULT,
                       help="the return window (default %(default)s)")
    prune.set_defaults(handler=cmd_prune)
    back = add("backup", help="a verified, compacted copy, safe while the daemon runs")
    back.add_argument("--out", required=True, help="a new or empty directory")
    back.set_defaults(handler=cmd_backup)
    rest = add("restore", help="put a verified backup in place of the ledger (daemon stopped)")
    rest.add_argument("--from", dest="source", required=True, help="a backup directory")
    rest.add_argument("--force", action="store_true", help="replace an existing ledger")
    rest.set_defaults(handler=cmd_restore)
    add("compact", help="rewrite the file without free pages (daemon stopped)").set_defaults(handler=cmd_compact)


def cmd_init(args: argparse.Namespace) -> int:
    with Ledger.init(args.path, args.terminal_id, args.map_size_mb * MIB) as ledger:
        _print(args, ledger.meta(), f"{args.path}: ledger of terminal {ledger.terminal_id} ready")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        run = ledger.import_cards if args.what == "cards" else ledger.import_catalog
        result = run(args.file, _now(args), args.force)
    lines = [f"{args.file}: imported {result['imported']} {args.what} row(s)"]
    lines += [f"  skipped row {r}, field {f!r}: {p}" for r, f, p in result["problems"]]
    _print(args, result, "\n".join(lines))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        if args.out:
            with open(args.out, "w", encoding="utf-8", newline="") as out:
                count = ledger.export_balances(out, _now(args))
            sys.stderr.write(f"{args.out}: {count} card(s) written\n")
        else:
            ledger.export_balances(sys.stdout, _now(args))
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        card = ledger.card(args.number, _now(args))
    lines = [
        f"card {card['number']} ({card['type'] or 'no type'}) {card['holder']}"
        f"{'  BLOCKED' if card['blocked'] else ''}",
        f"  balance {card['balance']} (server {card['server_balance']} v"
        f"{card['server_version']}, local {card['local_delta']:+d}), available "
        f"{card['available']}, held {card['held']}",
        f"  cumulative {card['cumulative']}, referrers {', '.join(card['referrers']) or '-'}",
    ]
    lines += [
        f"  lot {lot['id']}: {lot['points']:>8} from {lot['available_from'] or '-'} until "
        f"{lot['expires_at'] or 'never'} ({lot['source']})"
        for lot in card["lots"]
    ]
    lines += [
        f"  hold {h['checkout']}: {h['points']} until {h['expires_at']}" for h in card["holds"]
    ]
    _print(args, card, "\n".join(lines))
    return 0


def cmd_adjust(args: argparse.Namespace) -> int:
    op_id = args.id or f"adj-{uuid.uuid4().hex}"
    with _open(args) as ledger:
        result = ledger.adjust(
            op_id,
            args.number,
            args.points,
            args.reason,
            args.technician,
            _now(args),
            args.expires_at,
        )
    _print(
        args,
        result,
        f"card {args.number}: {args.points:+d} points ({op_id}), balance {result['balance']}",
    )
    return 0


def cmd_expire(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        result = ledger.expire(args.id or f"exp-{uuid.uuid4().hex}", _now(args))
    _print(
        args,
        result,
        f"expired {result['points']} point(s) on {result['cards']} card(s), "
        f"dropped {result['holds_dropped']} hold(s)"
        f"{'; more to do, run again' if result['more'] else ''}",
    )
    return 0


def _table(rows: dict[str, dict[str, int]]) -> str:
    if not rows:
        return "(nothing in this period)"
    names = list(next(iter(rows.values())))
    out = [f"{'card type':<16}" + "".join(f"{n:>16}" for n in names)]
    out += [f"{k:<16}" + "".join(f"{v[n]:>16}" for n in names) for k, v in rows.items()]
    return "\n".join(out)


def cmd_report(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        if args.kind == "balances":
            rows = ledger.report_balances(_now(args), args.limit)
            text = "\n".join(
                [
                    f"{'number':<20}{'type':<12}{'balance':>10}{'available':>10}"
                    f"{'held':>8}{'debt':>8}"
                ]
                + [
                    f"{r['number']:<20}{r['type']:<12}{r['balance']:>10}"
                    f"{r['available']:>10}{r['held']:>8}{r['debt']:>8}"
                    for r in rows
                ]
            )
            _print(args, rows, text)
        elif args.kind == "points":
            points = ledger.report_points(args.start, args.end)
            _print(args, points, "\n".join(f"{k:<14}{v:>12}" for k, v in points.items()))
        elif args.kind == "sales":
            sales = ledger.report_sales(args.start, args.end)
            _print(args, sales, _table(sales))
        else:
            x = ledger.report_shift()
            if args.close:
                x["closed"] = ledger.close_shift(f"z-{x['shift']}", x["totals"], _now(args))
            title = f"{'Z' if args.close else 'X'} report, shift {x['shift']}"
            text = "\n".join(
                [title]
                + [f"  {k:<16}{v:>14}" for k, v in x["totals"].items()]
                + [f"  tender {k:<9}{v:>14}" for k, v in x["tenders"].items()]
            )
            _print(args, x, text)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0: sound; 1: damage found (named); 2: not a ledger / unusable input (one line)."""
    if not args.ledger:
        raise SystemExit(_usage("--ledger DIR is required for this command"))
    result = verify_file(args.ledger, args.map_size_mb * MIB)
    text = (
        f"{args.ledger}: {'OK' if result['ok'] else 'PROBLEMS'} — {result['cards']} cards, "
        f"{result['receipts']} receipts, {result['returns']} returns, "
        f"{result['events']} events"
    )
    _print(args, result, "\n".join([text] + [f"  {p}" for p in result["problems"]]))
    return 0 if result["ok"] else 1


def cmd_stats(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        s = ledger.stats()
    text = (
        f"{s['path']}: terminal {s['terminal']} epoch {s['epoch']}, file "
        f"{s['file_bytes'] / MIB:.1f} MiB of {s['map_size_bytes'] / MIB:.0f} MiB map "
        f"({s['usage_percent']} % used), backlog {s['backlog']} event(s), shift {s['shift']}"
    )
    _print(args, s, text)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    totals = {"events": 0, "receipts": 0, "ops": 0}
    with _open(args) as ledger:
        for _ in range(retention.PASSES_MAX):
            step = ledger.prune(_now(args), args.events_keep_days, args.receipts_keep_days)
            totals = {k: totals[k] + step[k] for k in totals}
            if not step["more"]:
                break
        size = ledger.stats()["usage_percent"]
    _print(args, {**totals, "usage_percent": size},
           f"{args.ledger}: pruned {totals['events']} events, {totals['receipts']} receipts, "
           f"{totals['ops']} op records; map {size} % used")
    return 0


def _copy_text(result: dict[str, Any], verb: str) -> str:
    return (f"{result['path']}: {verb} ledger of terminal {result['terminal']} "
            f"(events through {result['next_seq'] - 1}, acked {result['acked_seq']}, "
            f"{result['file_bytes']} bytes), verified")


def cmd_backup(args: argparse.Namespace) -> int:
    with _open(args) as ledger:
        result = ledger.backup(args.out)
    _print(args, result, _copy_text(result, "backup of the"))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    if not args.ledger:
        return _usage("--ledger DIR is required for this command")
    result = restore(args.source, args.ledger, args.map_size_mb * MIB, args.force)
    _print(args, result, _copy_text(result, "restored"))
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    ledger = _open(args)
    try:
        result = ledger.compact()
    finally:
        ledger.close()
    _print(args, result, _copy_text(result, f"compacted from {result['bytes_before']} bytes,"))
    return 0
