"""`posterm provision`: set a terminal up from nothing — config, ledger, key, rules and data.

Checks the config (with the same reader the daemon uses) and every input before anything is
written, creates the ledger (idempotent for the same terminal id), stores the terminal's HMAC key
(32 random bytes, hex, mode 0600, kept when it exists), installs a rules file and imports
catalog/cards CSV files given on the command line. With `--server`, a `[sync]` section is written
and the rules, catalog and cards are pulled through the sync client (terminal/sync) when the
server is reachable; an unreachable server is a warning (the daemon pulls when it runs), a
refusal (wrong key, unknown terminal) is an error. The key the server knows is given with
`--key-file` (from `posterm-central terminal add`). The config is written last, so a failure
leaves no config behind and a re-run needs no `--force`. Limits: `KEY_BYTES`, `PULL_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import shutil
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import core
from terminal.config import ConfigError, TerminalConfig, parse_config, sync_config
from terminal.ledger import Ledger, importing

KEY_BYTES = 32
PULL_TIMEOUT_S = 60.0
DEVICE_PREFIXES = ("evdev", "serial", "sim")


@dataclass(frozen=True)
class ProvisionRequest:
    config_path: Path
    terminal_id: str
    store: str
    store_name: str = ""
    state_dir: Path = Path("/var/lib/posterm")
    socket: Path = Path("/run/posterm/api.sock")
    server_url: str = ""
    scanners: tuple[str, ...] = ()
    card_readers: tuple[str, ...] = ()
    printer: str = ""
    spool_dir: Path | None = None
    rules: Path | None = None
    catalog: Path | None = None
    cards: Path | None = None
    codes: dict[str, Any] | None = None
    key_file: Path | None = None
    force: bool = False
    tcp_port: int = 0  # the local API on 127.0.0.1 too: the kiosk screen's browser connects there
    screen: dict[str, Any] | None = None  # the [screen] table (language, terms_file, …)
    legal_name: str = ""
    address: str = ""
    tax_id: str = ""
    payment: str = ""  # sim:DIR
    fiscal: str = ""  # atol:URL | sim:DIR


def input_table(role: str, spec: str, index: int) -> dict[str, Any]:
    """`evdev:/dev/input/…`, `serial:/dev/ttyACM0`, `sim:/path/script-or-fifo`, or a bare path
    (by-id keyboard devices → evdev, tty/serial → serial, anything else → simulated)."""
    kind, _, path = spec.partition(":") if spec.split(":", 1)[0] in DEVICE_PREFIXES else ("", "", spec)
    if not kind:
        kind = "evdev" if path.startswith("/dev/input") else "serial" if path.startswith(("/dev/tty", "/dev/serial")) \
            else "sim" if not path.startswith("/dev/") else ""
    if not kind or not path:
        raise ConfigError(f"--{role.replace('_', '-')} {spec!r}: give evdev:PATH, serial:PATH or sim:PATH")
    name = f"{role.replace('_', '-')}{index}"
    if kind == "evdev":
        return {"role": role, "driver": "evdev", "name": name, "path": path}
    if kind == "serial":
        return {"role": role, "driver": "serial", "name": name, "port": path}
    return {"role": role, "driver": "simulated", "name": name, "script": path}


def printer_table(spec: str, spool: Path) -> dict[str, Any]:
    """usb:VID:PID (hex), network:HOST[:PORT], file:/dev/usb/lp0, serial:/dev/ttyS0, sim:DIR."""
    kind, _, rest = spec.partition(":")
    table: dict[str, Any] = {"role": "printer", "name": "printer", "spool": str(spool)}
    try:
        if kind == "usb":
            vendor, product = rest.split(":")
            table.update(driver="usb", vendor=int(vendor, 16), product=int(product, 16))
        elif kind == "network":
            host, _, port = rest.partition(":")
            table.update(driver="network", host=host, port=int(port or 9100))
        elif kind in ("file", "serial"):
            table.update({"driver": kind, ("path" if kind == "file" else "port"): rest})
        elif kind == "sim":
            table.update(driver="simulated", dir=rest)
        else:
            raise ValueError(kind)
    except ValueError:
        raise ConfigError(f"--printer {spec!r}: give usb:VID:PID, network:HOST[:PORT], file:PATH, "
                          "serial:PATH or sim:DIR") from None
    return table


def _toml_string(value: str) -> str:
    """A TOML basic string. Control characters (newlines, escapes, DEL) and lone surrogates have
    no place in a name, id or path and are refused: `--store-name $'Shop"\\n[evil]'` must not
    become a config section."""
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        raise ConfigError(f"{value[:40]!r}: control characters (here {bad!r}) are not allowed in the config")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def service_tables(req: ProvisionRequest) -> list[dict[str, Any]]:
    """--payment sim:DIR, --fiscal atol:URL | sim:DIR → [[device]] tables."""
    out = []
    for role, spec in (("payment", req.payment), ("fiscal", req.fiscal)):
        if not spec:
            continue
        kind, _, rest = spec.partition(":")
        if kind == "sim" and rest:
            out.append({"role": role, "driver": "simulated", "name": role, "dir": rest})
        elif kind == "atol" and role == "fiscal" and rest:
            out.append({"role": role, "driver": "atol", "name": role, "url": rest})
        else:
            raise ConfigError(f"--{role} {spec!r}: give " + ("atol:URL or sim:DIR" if role == "fiscal" else "sim:DIR"))
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ConfigError(f"cannot write {type(value).__name__} into the config")


def to_toml(doc: dict[str, Any]) -> str:
    out = ["# posterm terminal config — written by `posterm provision`; see docs/daemon.md", ""]
    for name, table in doc.items():
        tables = table if isinstance(table, list) else [table]
        for item in tables:
            out.append(f"[[{name}]]" if isinstance(table, list) else f"[{name}]")
            out += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
            out.append("")
    return "\n".join(out)


def build_doc(req: ProvisionRequest) -> dict[str, Any]:
    state = req.state_dir
    terminal: dict[str, Any] = {
        "id": req.terminal_id, "store": req.store, "store_name": req.store_name or req.store,
        "ledger_path": str(state / "ledger"), "rules_path": str(state / "rules.toml"),
        "key_path": str(state / "terminal.key")}
    sync: dict[str, Any] | None = None
    if req.server_url:
        terminal["server_url"] = req.server_url
        sync = {"url": req.server_url, "key_file": terminal["key_path"],
                "state_file": str(state / "sync-state.json"), "rules_file": terminal["rules_path"]}
    devices = [input_table("scanner", s, i) for i, s in enumerate(req.scanners)]
    devices += [input_table("card_reader", s, i) for i, s in enumerate(req.card_readers)]
    if req.printer:
        devices.append(printer_table(req.printer, req.spool_dir or state / "spool"))
    devices += service_tables(req)
    terminal.update({k: v for k, v in (("legal_name", req.legal_name), ("address", req.address),
                                       ("tax_id", req.tax_id)) if v})
    doc: dict[str, Any] = {"terminal": terminal, "api": {"socket": str(req.socket)}}
    if req.tcp_port:
        doc["api"]["tcp_port"] = req.tcp_port
    if req.screen:
        doc["screen"] = req.screen
    if req.codes:
        doc["codes"] = req.codes
    if sync:
        doc["sync"] = sync
    if devices:
        doc["device"] = devices
    return doc


def _write_file(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow what we ask for
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_key(path: Path) -> str:
    try:
        data = path.read_bytes()[: KEY_BYTES * 4].strip().lower()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the terminal key: {exc.strerror}") from None
    if len(data) != KEY_BYTES * 2 or not all(c in b"0123456789abcdef" for c in data):
        raise ConfigError(f"{path}: not a terminal key ({KEY_BYTES * 2} hex digits, as "
                          "`posterm-central terminal add` prints it)")
    return data.decode()


def ensure_key(path: Path, given: Path | None) -> str:
    """The key from `given` (the server's), else keep an existing one (re-provisioning must not
    orphan the server's copy), else make one (to be registered with the server)."""
    if given is not None:
        _write_file(path, (read_key(given) + "\n").encode(), 0o600)
        return f"installed from {given}"
    if path.exists():
        read_key(path)
        os.chmod(path, 0o600)
        return "kept"
    _write_file(path, (secrets.token_hex(KEY_BYTES) + "\n").encode(), 0o600)
    return "created"


def provision(req: ProvisionRequest, report: Any = print) -> TerminalConfig:
    """Every value is checked before anything is written: the config text as the daemon will
    read it back, the rules, the key file and every row of the CSV files."""
    doc = build_doc(req)
    text = to_toml(doc)
    try:
        written = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{req.config_path}: the config would not read back: {exc}") from None
    if written != doc:
        raise ConfigError(f"{req.config_path}: the config would not read back as given; check the values")
    config = parse_config(written, req.config_path)
    if req.config_path.exists() and not req.force:
        raise ConfigError(f"{req.config_path}: exists; use --force to replace it")
    program = core.load_rules(req.rules) if req.rules else None
    if req.key_file is not None:
        read_key(req.key_file)
    if req.server_url and req.cards is not None:
        # The bug this prevents: cards imported here, unknown to the server, became debts and
        # lost their holders at the first sync. The chain's cards are moved in at central.
        raise ConfigError(
            f"--cards {req.cards} with --server: the central server owns a synced terminal's cards; "
            "publish the file there (posterm-central publish cards FILE) and they arrive with the first sync"
        )
    now = dt.datetime.now().astimezone()
    for name, path in (("catalog", req.catalog), ("cards", req.cards)):
        if path is not None and not path.is_file():
            raise ConfigError(f"--{name} {path}: no such file")
        if path is not None:
            importing.check_file(path, name, now)
    # The config is written last: a daemon (or a re-run without --force) must never find a config
    # whose ledger, key or data a failure below left half made.
    with Ledger.init(config.ledger_path, config.terminal_id) as ledger:
        report(f"ledger      {config.ledger_path} ready")
        report(f"key         {config.key_path} {ensure_key(config.key_path, req.key_file)} (mode 0600)")
        if program is not None and req.rules is not None:
            config.rules_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(req.rules, config.rules_path)
            report(f"rules       {config.rules_path} installed ({len(program.rules)} rules)")
        if req.catalog is not None:
            result = ledger.import_catalog(req.catalog, now)
            report(f"catalog     {req.catalog} imported: {_counts(result)}")
        if req.cards is not None:
            result = ledger.import_cards(req.cards, now)
            report(f"cards       {req.cards} imported: {_counts(result)}")
        if req.server_url:
            report(f"server      {req.server_url}: {pull_initial(config, ledger)}")
    _write_file(req.config_path, text.encode(), 0o644)
    report(f"config      {req.config_path} written (terminal {config.terminal_id}, store {config.store})")
    if not config.rules_path.exists():
        report(f"warning     no rules at {config.rules_path} yet; the daemon will not start without them")
    return config


def pull_initial(config: TerminalConfig, ledger: Ledger) -> str:
    """One sync round: rules, catalog and cards from the server. Unreachable → a warning."""
    from terminal.sync.client import SyncClient
    from terminal.sync.errors import SyncError, TransientError
    from terminal.sync.loop import Syncer

    sync = sync_config(config)

    async def once() -> dict[str, int]:
        async with SyncClient(sync.url, ledger.terminal_id, sync.key, sync.request_timeout_ms) as client:
            return await asyncio.wait_for(Syncer(ledger, sync, client).once(), PULL_TIMEOUT_S)

    try:
        done = asyncio.run(once())
    except TransientError as exc:
        # The sync loop retries a 401/403 forever (a key rotation may be on its way); at set-up
        # time it means the key or terminal id is wrong, which the technician must hear now.
        if any(f"HTTP {code}" in str(exc) for code in (401, 403)):
            raise ConfigError(f"{sync.url}: the server refused this terminal ({str(exc)[:200]}); "
                              "check --terminal and --key-file") from None
        return f"not reachable now ({str(exc)[:200]}); the daemon pulls when it runs"
    except TimeoutError as exc:
        return f"not reachable now ({str(exc)[:200] or 'timeout'}); the daemon pulls when it runs"
    except SyncError as exc:
        raise ConfigError(f"{sync.url}: the server refused this terminal: {exc}") from None
    versions = ledger.meta()["versions"]
    shown = ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "no versions yet"
    return f"pulled {done['pages']} update page(s), sent {done['sent']} event(s); {shown}"


def _counts(result: Any) -> str:
    if isinstance(result, dict):
        return ", ".join(f"{k} {v}" for k, v in result.items() if isinstance(v, int | str))[:200]
    return str(result)[:200]
