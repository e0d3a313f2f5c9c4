"""Device configuration: the `[[device]]` tables and the `[codes]` table of the terminal config,
already parsed from TOML, checked field by field into typed settings.

Every refusal is a `ConfigError` naming the device index and field, e.g.
"device 2 (scanner): layout must be one of de, fr, ru, us, got 'uk'". Unknown keys are refused
too, so a typo ("baud") does not silently fall back to a default.
Limits: `devices_max`, `text_chars_max`, `gs1_layouts_max`, `card_rules_max`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from escpos.capabilities import CAPABILITIES

from drivers.codes import CardBarcode, CodeRules, GS1Layout, gs1_prefixes
from drivers.errors import ConfigError
from drivers.keymaps import LAYOUTS
from drivers.printer import PrinterSpec
from drivers.render import columns_max, columns_min
from drivers.serial_input import BAUDRATES, FRAMINGS, PARITIES, SerialProtocol

devices_max = 16
text_chars_max = 512
gs1_layouts_max = 10
card_rules_max = 10
default_spool_root = "/var/spool/posterm"

ROLES = ("printer", "scanner", "card_reader", "payment", "fiscal")
PRINTER_DRIVERS = ("network", "file", "usb", "serial", "simulated")
INPUT_DRIVERS = ("evdev", "serial", "simulated")
_COMMON = {"role", "driver", "name"}
_KEYS = {
    ("printer", "network"): {"host", "port", "timeout_s"},
    ("printer", "file"): {"path"},
    ("printer", "usb"): {"vendor", "product", "timeout_s"},
    ("printer", "serial"): {"port", "baudrate", "timeout_s"},
    ("printer", "simulated"): {"dir"},
    ("input", "evdev"): {"path", "layout", "grab", "kind", "gap_ms"},
    ("input", "serial"): {"port", "baudrate", "parity", "bytesize", "stopbits", "framing",
                          "lrc", "gap_ms"},
    ("input", "simulated"): {"script"},
    ("payment", "simulated"): {"dir"},
    ("fiscal", "simulated"): {"dir"},
    ("fiscal", "atol"): {"url", "timeout_s", "taxation"},
}
PAYMENT_DRIVERS = ("simulated",)
FISCAL_DRIVERS = ("atol", "simulated")
# ATOL's taxation system names (ДТО 10 JSON tasks, field `taxationType`)
TAXATIONS = ("osn", "usnIncome", "usnIncomeOutcome", "esn", "patent")
_PRINTER_KEYS = {"profile", "columns", "status", "spool"}


@dataclass(frozen=True, slots=True)
class InputConfig:
    index: int
    name: str
    role: str
    driver: str
    source: str  # evdev path, serial port or script/FIFO path
    layout: str = "us"
    grab: bool = True
    kind: str = "auto"
    gap_ms: int = 100
    protocol: SerialProtocol | None = None

    def describe(self) -> str:
        return f"{self.driver} {self.source}"


@dataclass(frozen=True, slots=True)
class PrinterConfig:
    index: int
    spec: PrinterSpec
    spool: str


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """A payment terminal or a fiscal registrar: `source` is its directory (simulated) or URL."""

    index: int
    name: str
    role: str
    driver: str
    source: str
    timeout_s: int = 30
    taxation: str = "osn"

    def describe(self) -> str:
        return f"{self.driver} {self.source}"


@dataclass(frozen=True, slots=True)
class DevicesConfig:
    printers: tuple[PrinterConfig, ...]
    inputs: tuple[InputConfig, ...]
    codes: CodeRules
    payment: tuple[ServiceConfig, ...] = ()
    fiscal: tuple[ServiceConfig, ...] = ()


class _Table:
    """One TOML table being read, with the words to blame when a field is wrong."""

    def __init__(self, table: Any, where: str) -> None:
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table, got {type(table).__name__}")
        self.table, self.where = table, where

    def fail(self, field: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: {field} {message}")

    def text(self, field: str, default: str | None = None, choices: tuple[str, ...] = ()) -> str:
        value = self.table.get(field, default)
        if value is None:
            raise self.fail(field, "is required")
        if not isinstance(value, str) or not value or len(value) > text_chars_max:
            raise self.fail(field, f"must be text of 1..{text_chars_max} characters")
        if choices and value not in choices:
            raise self.fail(field, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def integer(self, field: str, default: int | None, low: int, high: int) -> int:
        value = self.table.get(field, default)
        if value is None:
            raise self.fail(field, "is required")
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(field, f"must be an integer {low}..{high}, got {value!r}")
        return value

    def boolean(self, field: str, default: bool) -> bool:
        value = self.table.get(field, default)
        if not isinstance(value, bool):
            raise self.fail(field, f"must be true or false, got {value!r}")
        return value

    def only(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.fail(str(key)[:40], f"is not a known setting here ({known})")


def parse_devices(devices: Any, codes: Any = None) -> DevicesConfig:
    """The `device` array and the optional `codes` table → checked settings."""
    if devices is None:
        devices = []
    if not isinstance(devices, list):
        raise ConfigError("device: must be an array of tables ([[device]])")
    if len(devices) > devices_max:
        raise ConfigError(f"device: at most {devices_max} devices, got {len(devices)}")
    printers, inputs, services = [], [], []
    for index, table in enumerate(devices):
        t = _Table(table, f"device {index}")
        role = t.text("role", choices=ROLES)
        t.where = f"device {index} ({role})"
        if role == "printer":
            printers.append(_printer(index, t))
        elif role in ("payment", "fiscal"):
            services.append(_service(index, role, t))
        else:
            inputs.append(_input(index, role, t))
    return DevicesConfig(tuple(printers), tuple(inputs), parse_codes(codes),
                         tuple(s for s in services if s.role == "payment"),
                         tuple(s for s in services if s.role == "fiscal"))


def _service(index: int, role: str, t: _Table) -> ServiceConfig:
    driver = t.text("driver", choices=PAYMENT_DRIVERS if role == "payment" else FISCAL_DRIVERS)
    t.only(_COMMON | _KEYS[role, driver])
    name = t.text("name", f"{role} {index}")
    if driver == "simulated":
        return ServiceConfig(index, name, role, driver, t.text("dir"))
    url = t.text("url")
    if not url.startswith(("http://", "https://")):
        raise t.fail("url", "must start with http:// or https:// (ATOL's web server, e.g. "
                            f"http://127.0.0.1:16732), got {url!r}")
    return ServiceConfig(index, name, role, driver, url.rstrip("/"), t.integer("timeout_s", 30, 1, 300),
                         t.text("taxation", "osn", TAXATIONS))


def _printer(index: int, t: _Table) -> PrinterConfig:
    driver = t.text("driver", choices=PRINTER_DRIVERS)
    t.only(_COMMON | _PRINTER_KEYS | _KEYS["printer", driver])
    name = t.text("name", f"printer {index}")
    profiles = tuple(sorted(CAPABILITIES["profiles"]))
    profile = t.text("profile", "default")
    if profile not in profiles:
        raise t.fail("profile", f"{profile!r} is not a python-escpos profile (e.g. TM-T88V, "
                                "TM-T20II, POS-5890, default)")
    columns = t.table.get("columns")
    if columns is not None:
        columns = t.integer("columns", None, columns_min, columns_max)
    kw: dict[str, Any] = {}
    if driver == "network":
        kw = {"host": t.text("host"), "port": t.integer("port", 9100, 1, 65535)}
    elif driver == "file":
        kw = {"path": t.text("path")}
    elif driver == "simulated":
        kw = {"path": t.text("dir")}
    elif driver == "usb":
        kw = {"vendor": t.integer("vendor", None, 1, 0xFFFF),
              "product": t.integer("product", None, 1, 0xFFFF)}
    elif driver == "serial":
        kw = {"serial_port": t.text("port"), "baudrate": _baud(t, 19200)}
    if driver in ("network", "usb", "serial"):
        kw["timeout_s"] = t.integer("timeout_s", 3, 1, 60)
    # A file or device node cannot answer DLE EOT; asking would write the query into it.
    status = t.boolean("status", driver in ("network", "usb", "serial", "simulated"))
    spec = PrinterSpec(name, driver, profile, columns, status, **kw)
    spool = t.text("spool", f"{default_spool_root}/printer-{index}")
    return PrinterConfig(index, spec, spool)


def _baud(t: _Table, default: int) -> int:
    baud = t.integer("baudrate", default, 1200, 115200)
    if baud not in BAUDRATES:
        raise t.fail("baudrate", f"must be one of {', '.join(map(str, BAUDRATES))}")
    return baud


def _input(index: int, role: str, t: _Table) -> InputConfig:
    driver = t.text("driver", choices=INPUT_DRIVERS)
    t.only(_COMMON | _KEYS["input", driver])
    name = t.text("name", f"{role} {index}")
    if driver == "evdev":
        return InputConfig(
            index, name, role, driver, t.text("path"), layout=t.text("layout", "us", LAYOUTS),
            grab=t.boolean("grab", True), kind=t.text("kind", "auto", ("scanner", "human", "auto")),
            gap_ms=t.integer("gap_ms", 100, 10, 10_000),
        )
    if driver == "serial":
        protocol = SerialProtocol(
            baudrate=_baud(t, 9600), bytesize=t.integer("bytesize", 8, 7, 8),
            parity=t.text("parity", "N", tuple(PARITIES)), stopbits=t.integer("stopbits", 1, 1, 2),
            framing=t.text("framing", "crlf", FRAMINGS),  # type: ignore[arg-type]
            lrc=t.boolean("lrc", False), gap_ms=t.integer("gap_ms", 500, 10, 10_000),
        )
        return InputConfig(index, name, role, driver, t.text("port"), protocol=protocol)
    return InputConfig(index, name, role, driver, t.text("script"))


def parse_codes(codes: Any) -> CodeRules:
    if codes is None:
        return CodeRules()
    t = _Table(codes, "codes")
    t.only({"gs1", "cards", "card_text_prefixes", "track_luhn"})
    layouts: dict[str, GS1Layout] = {}
    for i, item in enumerate(_array(t, "gs1", gs1_layouts_max)):
        g = _Table(item, f"codes.gs1[{i}]")
        g.only({"prefix", "item_digits", "value", "value_digits"})
        prefix = g.text("prefix", choices=gs1_prefixes)
        item_digits = g.integer("item_digits", None, 1, 9)
        value_digits = g.integer("value_digits", None, 1, 9)
        if item_digits + value_digits != 10:
            raise g.fail("item_digits", "+ value_digits must be 10 (13 = prefix 2 + 10 + check 1)")
        if prefix in layouts:
            raise g.fail("prefix", f"{prefix} has two layouts")
        value = g.text("value", choices=("weight_g", "price_minor"))
        layout = GS1Layout(prefix, item_digits, value, value_digits)  # type: ignore[arg-type]
        layouts[prefix] = layout
    cards = []
    for i, item in enumerate(_array(t, "cards", card_rules_max)):
        c = _Table(item, f"codes.cards[{i}]")
        c.only({"prefix", "digits", "check"})
        prefix = c.text("prefix")
        if not prefix.isdigit() or len(prefix) > 10:
            raise c.fail("prefix", "must be 1..10 digits")
        check = c.text("check", "ean", ("none", "ean", "luhn"))
        digits = c.integer("digits", None, len(prefix) + 1, 19)
        cards.append(CardBarcode(prefix, digits, check))  # type: ignore[arg-type]
    texts = tuple(_array(t, "card_text_prefixes", card_rules_max))
    if not all(isinstance(p, str) and 0 < len(p) <= 20 and p.isprintable() for p in texts):
        raise t.fail("card_text_prefixes", "must be texts of 1..20 printable characters")
    return CodeRules(layouts, tuple(cards), texts, t.boolean("track_luhn", False))


def _array(t: _Table, field: str, items_max: int) -> list[Any]:
    value = t.table.get(field, [])
    if not isinstance(value, list) or len(value) > items_max:
        raise t.fail(field, f"must be an array of at most {items_max} items")
    return value
