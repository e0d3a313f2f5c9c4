"""`posterm-central`: run the central server and manage its terminals, feed and cards.

    posterm-central --db sqlite:///var/lib/posterm/central.db serve --host 127.0.0.1 --port 8780
    posterm-central --db … terminal add T01        # prints the new key once (hex)
    posterm-central --db … terminal list | rotate-key T01
    posterm-central --db … publish rules rules.toml | publish catalog catalog.csv | publish cards cards.csv
    posterm-central --db … card show 2000001 | card adjust 2000001 -50 | card list | events | shortfalls
    posterm-central --db … coupons issue SERIES [--count N] [--valid-days D] | list | show CODE | double-used
    posterm-central --db … expire [--now ISO]      # the expiry sweep (serve runs it every --expire-every-s)
    posterm-central --db … user add anna --role support   # a web console user; password from stdin
    posterm-central --db … token add crm --scope cards:read --scope cards:write   # prints the token once
    posterm-central --db … token list | revoke crm | writes   # the admin API's tokens and recorded writes
    posterm-central --db … report points_daily --from 2027-01-01 --to 2027-01-31 [--csv] [--svg FILE]
    posterm-central --db … award 2000001 registration --key CRM-42 [--actor NAME] | awards [--card N]

`--db` defaults to env `POSTERM_CENTRAL_DB`. Refusals print one line and exit 2.
Limits: CSV files ≤ `CSV_BYTES_MAX`, ≤ `publishing.CATALOG_ROWS_MAX` rows; rules files ≤ `wire.RULES_BYTES_MAX`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from central import awards, checks, coupons, publishing
from central.admin_store import AdminError
from central.reports import ReportError
from central.store import EVENTS_LIST_MAX, Store, StoreError, new_key, open_store
from core.errors import PricingError
from protocol import cardfile, wire

CSV_BYTES_MAX = 64 * 1024 * 1024
EXIT_REFUSED = 2
KEY_GRACE_S_DEFAULT = 86_400
KEY_GRACE_S_MAX = 30 * 86_400
SERVE_LIMIT_MAX = 65_535  # seconds or connections: anything larger is a typo


class CentralCliError(Exception):
    """A refusal of the CLI: bad file, bad argument."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"posterm-central: {message} (see posterm-central --help)\n")
        raise SystemExit(EXIT_REFUSED)


def _read_text(path: str, bytes_max: int) -> str:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > bytes_max:
            raise CentralCliError(f"{path}: {size} bytes, more than {bytes_max} allowed")
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CentralCliError(f"{path}: cannot read: {exc}") from None


def cmd_serve(store: Store, args: argparse.Namespace) -> int:
    from central.limits import serve
    from central.server import make_app

    if args.host not in ("127.0.0.1", "::1", "localhost") and not args.public:
        raise CentralCliError(f"--host {args.host}: not loopback; add --public to listen there on purpose")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    from central.server import log_line

    log_line(logging.INFO, "central_serving", host=args.host, port=args.port, store=store.name)
    serve(make_app(store, None if args.expire_every_s == 0 else args.expire_every_s), args.host, args.port,
          _limits(args))
    return 0


def _limits(args: argparse.Namespace) -> Any:
    """serve's --head-timeout-s, --body-timeout-s and --connections-max over central.limits' defaults."""
    from central.limits import Limits

    given = {"head_timeout_s": args.head_timeout_s, "body_timeout_s": args.body_timeout_s,
             "connections_max": args.connections_max}
    for name, value in given.items():
        if value is not None and not 0 < value <= SERVE_LIMIT_MAX:
            raise CentralCliError(f"--{name.replace('_', '-')} must be above 0 and at most {SERVE_LIMIT_MAX}")
    return Limits(**{k: v for k, v in given.items() if v is not None})


def cmd_terminal(store: Store, args: argparse.Namespace) -> int:
    if args.action == "list":
        for row in store.terminals():
            print(json.dumps(row))
        return 0
    terminal = wire.check_terminal_id(args.id)
    if not 0 <= args.grace_s <= KEY_GRACE_S_MAX:
        raise CentralCliError(f"--grace-s must be 0..{KEY_GRACE_S_MAX}")
    key = new_key()
    if args.action == "add":
        store.add_terminal(terminal, key)
    else:
        store.set_key(terminal, key, args.grace_s)
    # The key is shown once: the technician copies it into the terminal's key file.
    print(key.hex())
    return 0


def cmd_publish(store: Store, args: argparse.Namespace) -> int:
    if args.what == "rules":
        text = _read_text(args.file, wire.RULES_BYTES_MAX)
        version = publishing.check_rules(text, args.file, args.version)
        cursor = publishing.publish_rules(store, text, version)
        print(json.dumps({"rules": version, "cursor": cursor}))
    elif args.what == "catalog":
        text = _read_text(args.file, CSV_BYTES_MAX)
        items = publishing.catalog_items(text, args.file, store.published_barcodes())
        version = checks.version(args.version or publishing.content_label(text.encode()), "catalog")
        cursor = publishing.publish_catalog(store, items, version)
        print(json.dumps({"products": len(items), "catalog": version, "cursor": cursor}))
    else:
        _publish_cards(store, args.file, args.force)
    return 0


def _publish_cards(store: Store, path: str, force: bool) -> None:
    """The chain's card file (protocol/cardfile.py: the terminal's `ledger import-cards` reads
    the same rows and refuses the same ones, with the same message)."""
    data = _read_text(path, cardfile.FILE_BYTES_MAX).encode()
    try:
        rows, problems = publishing.read_cards(data, int(time.time() * 1000), path)
    except cardfile.CardFileError as exc:
        raise CentralCliError(str(exc)) from None
    if problems and not force:
        raise CentralCliError(cardfile.refusal(path, problems))
    publishing.publish_cards(store, rows)
    for row, field, problem in problems:
        sys.stderr.write(f"posterm-central: {path}: skipped row {row}, field {field!r}: {problem}\n")
    print(json.dumps({"cards": len(rows), "skipped": len(problems)}))


def _count(text: str) -> int:
    """A listing's --limit: 1..EVENTS_LIST_MAX (SQLite would read a negative LIMIT as none)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= EVENTS_LIST_MAX:
        raise argparse.ArgumentTypeError(f"must be 1..{EVENTS_LIST_MAX}, got {value}")
    return value


def cmd_card(store: Store, args: argparse.Namespace) -> int:
    if args.action == "list":
        # One JSON line a card: balance and the points that expire soonest (from the lots).
        for row in store.card_listing(args.limit):
            print(json.dumps(row))
        return 0
    if not args.number:
        raise CentralCliError(f"card {args.action}: give a card number")
    if args.action == "adjust":
        if args.points is None:
            raise CentralCliError(f"card adjust {args.number}: give the points to add (or, negative, to take)")
        checks.adjustment(args.number, args.points)
        card = store.adjust_card(args.number, args.points, checks.balance)
        print(json.dumps({"card": card.number, "balance": card.balance}))
        return 0
    found = store.card(args.number)
    if found is None:
        raise CentralCliError(f"card {args.number}: unknown to the central server")
    card, version = found
    facts = store.card_facts([args.number]).get(args.number, {})
    print(json.dumps({**card.__dict__, **facts, "version": version, "lots": store.card_lots(args.number)}))
    return 0


def cmd_expire(store: Store, args: argparse.Namespace) -> int:
    from central.expiry import run_sweep
    from central.lots import iso_ms

    now_ms = None if args.now is None else iso_ms(args.now, "--now")
    print(json.dumps(run_sweep(store, now_ms)))
    return 0


def _interval(text: str) -> float:
    from central.expiry import EXPIRE_EVERY_S_MAX, EXPIRE_EVERY_S_MIN

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value != 0 and not EXPIRE_EVERY_S_MIN <= value <= EXPIRE_EVERY_S_MAX:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or {EXPIRE_EVERY_S_MIN:g}..{EXPIRE_EVERY_S_MAX:g} seconds")
    return value


def cmd_award(store: Store, args: argparse.Namespace) -> int:
    """One grant (spec §16, central/awards.py); the same --key again prints the first grant."""
    import datetime as dt

    done = awards.grant(store, args.card, args.award, args.key, args.actor, dt.datetime.now(dt.UTC))
    print(json.dumps(done.as_dict()))
    return 0


def cmd_awards(store: Store, args: argparse.Namespace) -> int:
    for done in awards.grants(store, args.card, args.limit):
        print(json.dumps(done.as_dict()))
    return 0


def cmd_events(store: Store, args: argparse.Namespace) -> int:
    for terminal, epoch, seq, event_id, body in store.events(args.terminal, args.limit):
        event = wire.unpack(body, wire.BATCH_BYTES_MAX)
        print(json.dumps({"terminal": terminal, "epoch": epoch, "seq": seq, "id": event_id, "type": event["type"]}))
    return 0


def cmd_verify(store: Store, args: argparse.Namespace) -> int:
    result = store.verify()
    print(json.dumps(result))
    return 0 if result["ok"] else 1


def cmd_coupons(store: Store, args: argparse.Namespace) -> int:
    """Marketing codes, the chain's codes, and the single-use codes spent twice (offline)."""
    if args.action == "issue":
        if not args.arg:
            raise CentralCliError("coupons issue needs a series id (a [[coupon_series]] of the published rules)")
        for code in coupons.issue(store, args.arg, args.count, args.valid_days):
            print(code)
    elif args.action == "show":
        found = coupons.show(store, args.arg or "")
        if found is None:
            raise CentralCliError(f"coupon {args.arg}: not known to central")
        print(json.dumps(found))
    else:
        rows = coupons.double_used(store) if args.action == "double-used" else coupons.listing(store, args.arg)
        for row in rows:
            print(json.dumps(row))
    return 0


def cmd_shortfalls(store: Store, args: argparse.Namespace) -> int:
    for row in store.shortfalls():
        print(json.dumps(row))
    return 0


def cmd_user(store: Store, args: argparse.Namespace) -> int:
    """Console users (central/web): `add` reads the password from the terminal (twice) or one
    line of stdin — never from argv, where `ps` and shell history would show it."""
    from central import console_db, passwords

    if args.action == "list":
        for row in console_db.users(store):
            print(json.dumps(row))
        return 0
    if not args.name or not args.role:
        raise CentralCliError("user add: give a NAME and --role " + "|".join(console_db.ROLES))
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise CentralCliError("the passwords differ; nothing changed")
    else:
        password = sys.stdin.readline(passwords.PASSWORD_CHARS_MAX + 2).rstrip("\r\n")
    try:
        digest = passwords.hash_password(password)
        by = console_db.User(f"cli:{_os_user()}", "admin")
        console_db.add_user(store, args.name, args.role, digest, by)
    except (passwords.PasswordError, console_db.ConsoleError) as exc:
        raise CentralCliError(f"user add {args.name[:40]}: {exc}; nothing changed") from None
    print(json.dumps({"user": args.name, "role": args.role}))
    return 0


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()[:32]
    except (KeyError, OSError):  # no passwd entry (a container's uid)
        return str(os.getuid())


def cmd_report(store: Store, args: argparse.Namespace) -> int:
    """A report (central/reports.py) as JSON, or CSV with --csv; --svg also writes its plot."""
    from central import plots, reports

    start, end = reports.parse_range(args.start, args.end)
    report = reports.run(store, args.name, start, end, reports.check_top(args.top))
    if args.svg:
        try:
            Path(args.svg).write_text(plots.render(report), encoding="utf-8")
        except OSError as exc:
            raise CentralCliError(f"--svg {args.svg}: cannot write: {exc}") from None
    sys.stdout.write(reports.to_csv(report) if args.csv else json.dumps(report.as_dict()) + "\n")
    return 0


def cmd_token(store: Store, args: argparse.Namespace) -> int:
    """The admin API's bearer tokens (central/admin_store.py)."""
    from central import admin_store

    if args.action == "list":
        for row in admin_store.list_tokens(store):
            print(json.dumps(row))
    elif args.action == "writes":
        for row in admin_store.writes(store):
            print(json.dumps(row))
    elif not args.name:
        raise CentralCliError(f"token {args.action}: give the token's name")
    elif args.action == "add":
        # Shown once: only its hash is stored. The integration keeps it in its secrets.
        print(admin_store.add_token(store, args.name, args.scope or []))
    else:
        admin_store.revoke_token(store, args.name)
        print(json.dumps({"revoked": args.name}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="posterm-central", description="posterm central server")
    parser.add_argument(
        "--db",
        default=os.environ.get("POSTERM_CENTRAL_DB", "sqlite:///central.db"),
        help="sqlite:///path or postgresql://… (env POSTERM_CENTRAL_DB)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8780)
    serve.add_argument("--public", action="store_true", help="allow a non-loopback --host")
    serve.add_argument("--head-timeout-s", type=float,
                       help="drop a connection whose request head is not complete this long after connecting")
    serve.add_argument("--body-timeout-s", type=float,
                       help="answer 408 to a request whose body is not complete this long after its head")
    serve.add_argument("--connections-max", type=int,
                       help="connections served at once; one more gets 503")
    serve.add_argument(
        "--expire-every-s", type=_interval, default=3600.0,
        help="run the expiry sweep every this many seconds (default 3600; 0: only `expire`)",
    )
    serve.set_defaults(handler=cmd_serve)
    expire = sub.add_parser("expire", help="expire every lot past its date now (the server's sweep; prints the count)")
    expire.add_argument("--now", help="sweep as of this ISO-8601 time with offset (default: now)")
    expire.set_defaults(handler=cmd_expire)
    term = sub.add_parser("terminal", help="provision terminals and their keys")
    term.add_argument("action", choices=["add", "list", "rotate-key"])
    term.add_argument("id", nargs="?")
    term.add_argument(
        "--grace-s",
        type=int,
        default=KEY_GRACE_S_DEFAULT,
        help="rotate-key: seconds the old key keeps working (default one day; 0 revokes it now)",
    )
    term.set_defaults(handler=cmd_terminal)
    pub = sub.add_parser("publish", help="publish rules, catalog or cards to every terminal")
    pub.add_argument("what", choices=["rules", "catalog", "cards"])
    pub.add_argument("file")
    pub.add_argument("--version", help="version label (default: content hash)")
    pub.add_argument("--force", action="store_true", help="cards: publish the good rows of a file with bad ones")
    pub.set_defaults(handler=cmd_publish)
    card = sub.add_parser("card", help="show (with its lots), adjust or list cards' authoritative balances")
    card.add_argument("action", choices=["show", "adjust", "list"])
    card.add_argument("number", nargs="?")
    card.add_argument("points", nargs="?", type=int)
    card.add_argument("--limit", type=_count, default=EVENTS_LIST_MAX, help="list: at most this many cards")
    card.set_defaults(handler=cmd_card)
    award = sub.add_parser("award", help="grant an award of the published program to a card (idempotent by --key)")
    award.add_argument("card")
    award.add_argument("award", help="the award's id in the published rules ([[award]] id)")
    award.add_argument("--key", required=True, help="idempotency key: the same key never grants twice")
    award.add_argument("--actor", default="cli", help="who grants it (recorded with the grant; default cli)")
    award.set_defaults(handler=cmd_award)
    granted = sub.add_parser("awards", help="list the recorded award grants, oldest first")
    granted.add_argument("--card")
    granted.add_argument("--limit", type=_count, default=1000)
    granted.set_defaults(handler=cmd_awards)
    events = sub.add_parser("events", help="list stored events")
    events.add_argument("--terminal")
    events.add_argument("--limit", type=_count, default=1000)
    events.set_defaults(handler=cmd_events)
    cpn = sub.add_parser("coupons", help="issue marketing codes, list or show codes, list double uses")
    cpn.add_argument("action", choices=["issue", "list", "show", "double-used"])
    cpn.add_argument("arg", nargs="?", help="issue: the series; show: the code; list: a series (optional)")
    cpn.add_argument("--count", type=int, default=1, help=f"issue: how many codes (1..{coupons.ISSUE_COUNT_MAX})")
    cpn.add_argument("--valid-days", type=int, help="issue: each code's own last day is today + this (UTC)")
    cpn.set_defaults(handler=cmd_coupons)
    short = sub.add_parser("shortfalls", help="list booked double-spend shortfalls")
    short.set_defaults(handler=cmd_shortfalls)
    user = sub.add_parser("user", help="web console users: add NAME --role R (password from stdin) | list")
    user.add_argument("action", choices=["add", "list"])
    user.add_argument("name", nargs="?")
    user.add_argument("--role", help="viewer | support | marketing | admin")
    user.set_defaults(handler=cmd_user)
    verify = sub.add_parser("verify", help="check every card's balance against its stored lots (exit 1 if not)")
    verify.set_defaults(handler=cmd_verify)
    _report_parser(sub)
    _token_parser(sub)
    return parser


def _token_parser(sub: Any) -> None:
    from central.admin_store import SCOPES

    token = sub.add_parser("token", help="the admin API's bearer tokens: add (prints it once), list, revoke")
    token.add_argument("action", choices=["add", "list", "revoke", "writes"])
    token.add_argument("name", nargs="?")
    token.add_argument("--scope", action="append", choices=SCOPES, help="add: a scope (repeat for more)")
    token.set_defaults(handler=cmd_token)


def _report_parser(sub: Any) -> None:
    from central.reports import REPORTS, TOP_DEFAULT

    report = sub.add_parser("report", help="a report as JSON (or --csv) for a range of days")
    report.add_argument("name", choices=sorted(REPORTS))
    report.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD (UTC)")
    report.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD (included)")
    report.add_argument("--top", type=int, default=TOP_DEFAULT, help="top_products: how many (1..100)")
    report.add_argument("--csv", action="store_true", help="CSV instead of JSON (money in integer minor units)")
    report.add_argument("--svg", help="also write the report's plot (SVG) to this file")
    report.set_defaults(handler=cmd_report)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "terminal" and args.action != "list" and not args.id:
        sys.stderr.write("posterm-central: terminal add/rotate-key need a terminal id\n")
        return EXIT_REFUSED
    try:
        store = open_store(args.db)
    except (StoreError, ImportError) as exc:
        sys.stderr.write(f"posterm-central: {exc}\n")
        return EXIT_REFUSED
    try:
        return int(args.handler(store, args))
    except (CentralCliError, checks.CheckError, coupons.CouponError, StoreError, wire.ProtocolError,
            PricingError, ReportError, AdminError, awards.AwardError) as exc:
        sys.stderr.write(f"posterm-central: {exc}\n")
        return EXIT_REFUSED
    finally:
        if args.command != "serve":
            store.close()


if __name__ == "__main__":
    sys.exit(main())
