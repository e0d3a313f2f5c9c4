"""The terminal's config file (`/etc/posterm/terminal.toml`): read, checked, typed.

    [terminal]  id, store, store_name, ledger_path, rules_path, key_path, server_url, and what the
                receipts print about the seller: legal_name, address, tax_id
    [api]       socket (Unix socket path), tcp_port (optional; always bound to 127.0.0.1)
    [checkout]  idle_timeout_s, hold_timeout_s
    [printer]   retry_s (how often a queued receipt is retried while the printer is faulty)
    [sync]      the central server (terminal.sync.config: url, key_file, state_file, rules_file, …);
                read when the daemon starts, because the key file may not exist yet at provisioning
    [codes]     and [[device]]: read by the drivers' config reader (drivers.config)

Every refusal is a `ConfigError` naming the file, table and field. Unknown tables and keys are
refused so a typo does not silently fall back to a default. Limits: `CONFIG_BYTES_MAX`,
`TEXT_CHARS_MAX`, the numeric ranges below.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.config import DevicesConfig, parse_devices
from drivers.errors import DeviceError
from terminal.errors import TerminalError
from terminal.files import read_bounded

CONFIG_BYTES_MAX = 1024 * 1024
TEXT_CHARS_MAX = 512
TERMINAL_ID = re.compile(r"^[A-Za-z0-9_]{1,8}$")
STORE_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
TAX_ID = re.compile(r"^[A-Za-z0-9 -]{0,32}$")  # e.g. a Russian INN of 10 or 12 digits
IDLE_TIMEOUT_S = (10, 24 * 3600)
HOLD_TIMEOUT_S = (30, 24 * 3600)
PRINTER_RETRY_S = (0.1, 600.0)
SOCKET_PATH_CHARS_MAX = 100  # sun_path is 108 bytes; leave room for the NUL and some slack
TABLES = {"terminal", "api", "checkout", "printer", "codes", "device", "sync", "retention"}
PRUNE_INTERVAL_S = (60, 86_400)
KEEP_DAYS = (1, 3_660)


class ConfigError(TerminalError):
    """The terminal config is missing, malformed or has a bad value; the message names it."""


@dataclass(frozen=True, slots=True)
class Retention:
    """[retention]: what the daemon prunes once the server holds it (terminal.ledger.retention)."""

    events_keep_days: int = 35
    receipts_keep_days: int = 30  # the return window at this terminal; later returns go through central
    prune_interval_s: int = 3600


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    path: Path
    terminal_id: str
    store: str
    store_name: str
    ledger_path: Path
    rules_path: Path
    key_path: Path
    server_url: str
    api_socket: Path
    api_tcp_port: int
    idle_timeout_s: int
    hold_timeout_s: int
    printer_retry_s: float
    devices: DevicesConfig
    sync: dict[str, Any] | None = None
    legal_name: str = ""
    address: str = ""
    tax_id: str = ""
    retention: Retention = Retention()

    @property
    def state_dir(self) -> Path:
        """Where the open checkout's record lives: beside the ledger directory."""
        return self.ledger_path.parent

    @property
    def checkout_path(self) -> Path:
        return self.state_dir / "checkout.json"


class _Table:
    def __init__(self, doc: dict[str, Any], name: str, where: str, keys: set[str]) -> None:
        table = doc.get(name, {})
        self.where = f"{where}: [{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{self.where} must be a table")
        for key in table:
            if key not in keys:
                raise ConfigError(
                    f"{self.where}: {str(key)[:40]!r} is not a known setting ({', '.join(sorted(keys))})"
                )
        self.table = table

    def text(self, key: str, default: str | None = None, pattern: re.Pattern[str] | None = None) -> str:
        value = self.table.get(key, default)
        if value is None:
            raise ConfigError(f"{self.where} {key} is required")
        if not isinstance(value, str) or len(value) > TEXT_CHARS_MAX or "\x00" in value:
            raise ConfigError(f"{self.where} {key} must be text of at most {TEXT_CHARS_MAX} characters")
        if pattern is not None and not pattern.match(value):
            raise ConfigError(f"{self.where} {key} {value!r} must match {pattern.pattern}")
        return value

    def path(self, key: str, default: str | None = None) -> Path:
        value = self.text(key, default)
        if not value:
            raise ConfigError(f"{self.where} {key} must not be empty")
        return Path(value)

    def number(self, key: str, default: float, bounds: tuple[float, float], whole: bool = True) -> Any:
        value: Any = self.table.get(key, default)
        wrong_kind = isinstance(value, bool) or not isinstance(value, int | float)
        wrong_kind = wrong_kind or (whole and isinstance(value, float))
        if wrong_kind or not bounds[0] <= value <= bounds[1]:
            kind = "an integer" if whole else "a number"
            raise ConfigError(f"{self.where} {key} must be {kind} {bounds[0]}..{bounds[1]}, got {value!r}")
        return value


def read_toml(path: str | Path) -> dict[str, Any]:
    data = read_bounded(path, CONFIG_BYTES_MAX, "config", ConfigError)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: the config file is not valid TOML: {exc}") from None


def load_config(path: str | Path) -> TerminalConfig:
    path = Path(path)
    return parse_config(read_toml(path), path)


def parse_config(doc: dict[str, Any], path: Path) -> TerminalConfig:
    for name in doc:
        if name not in TABLES:
            raise ConfigError(f"{path}: [{str(name)[:40]}] is not a known table ({', '.join(sorted(TABLES))})")
    term = _Table(doc, "terminal", str(path), {
        "id", "store", "store_name", "ledger_path", "rules_path", "key_path", "server_url",
        "legal_name", "address", "tax_id"})
    api = _Table(doc, "api", str(path), {"socket", "tcp_port"})
    checkout = _Table(doc, "checkout", str(path), {"idle_timeout_s", "hold_timeout_s"})
    printer = _Table(doc, "printer", str(path), {"retry_s"})
    keep = _Table(doc, "retention", str(path), {"events_keep_days", "receipts_keep_days", "prune_interval_s"})
    defaults = Retention()
    server_url = term.text("server_url", "")
    if server_url and not re.match(r"^https?://[^\s/]+", server_url):
        raise ConfigError(f"{term.where} server_url must start with http:// or https://, got {server_url!r}")
    socket = api.path("socket", "/run/posterm/api.sock")
    if len(str(socket)) > SOCKET_PATH_CHARS_MAX:
        raise ConfigError(f"{api.where} socket path is longer than {SOCKET_PATH_CHARS_MAX} characters")
    idle = checkout.number("idle_timeout_s", 300, IDLE_TIMEOUT_S)
    hold = checkout.number("hold_timeout_s", 900, HOLD_TIMEOUT_S)
    if hold < idle:
        raise ConfigError(f"{checkout.where} hold_timeout_s ({hold}) must be at least idle_timeout_s ({idle})")
    try:
        devices = parse_devices(doc.get("device"), doc.get("codes"))
    except DeviceError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return TerminalConfig(
        path=path,
        terminal_id=term.text("id", pattern=TERMINAL_ID),
        store=term.text("store", pattern=STORE_ID),
        store_name=term.text("store_name", ""),
        ledger_path=term.path("ledger_path", "/var/lib/posterm/ledger"),
        rules_path=term.path("rules_path", "/var/lib/posterm/rules.toml"),
        key_path=term.path("key_path", "/var/lib/posterm/terminal.key"),
        server_url=server_url,
        api_socket=socket,
        api_tcp_port=api.number("tcp_port", 0, (0, 65535)),
        idle_timeout_s=idle,
        hold_timeout_s=hold,
        printer_retry_s=float(printer.number("retry_s", 10, PRINTER_RETRY_S, whole=False)),
        devices=devices,
        sync=_sync_table(doc, path),
        legal_name=term.text("legal_name", ""),
        address=term.text("address", ""),
        tax_id=term.text("tax_id", "", TAX_ID),
        retention=Retention(
            events_keep_days=keep.number("events_keep_days", defaults.events_keep_days, KEEP_DAYS),
            receipts_keep_days=keep.number("receipts_keep_days", defaults.receipts_keep_days, KEEP_DAYS),
            prune_interval_s=keep.number("prune_interval_s", defaults.prune_interval_s, PRUNE_INTERVAL_S),
        ),
    )


def _sync_table(doc: dict[str, Any], path: Path) -> dict[str, Any] | None:
    table = doc.get("sync")
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: [sync] must be a table")
    return table


def sync_config(config: TerminalConfig) -> Any:
    """The [sync] settings checked by the sync client's own reader, or None without a [sync]."""
    if config.sync is None:
        return None
    from terminal.sync.config import SyncConfig
    from terminal.sync.errors import SyncError

    try:
        return SyncConfig.from_mapping(config.sync, f"{config.path} [sync]")
    except SyncError as exc:
        raise ConfigError(str(exc)) from None
