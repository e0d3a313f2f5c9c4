"""The `[sync]` section of the terminal's config file, with every limit named.

[sync]
url = "http://127.0.0.1:8780"        # the central server
key_file = "/etc/posterm/terminal.key" # 64 hex digits from `posterm-central terminal add`
state_file = "/var/lib/posterm/sync-state.json"  # the updates cursor
rules_file = "/var/lib/posterm/rules.toml"       # where published rules are written
offline_redeem_max_points = 1000     # per card over an offline period (since the server last spoke of it)
card_timeout_ms = 800                # online card lookup at swipe time
request_timeout_ms = 15000
backoff_base_ms = 250
backoff_max_ms = 30000
idle_interval_ms = 2000              # how often to look for new events and updates
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.wire import KEY_BYTES
from terminal.sync.errors import SyncError

CONFIG_BYTES_MAX = 64 * 1024
TIMEOUT_MS_MAX = 300_000
POINTS_MAX = 10**9
FIELDS = frozenset(
    {
        "url",
        "key_file",
        "key",
        "state_file",
        "rules_file",
        "offline_redeem_max_points",
        "card_timeout_ms",
        "request_timeout_ms",
        "backoff_base_ms",
        "backoff_max_ms",
        "idle_interval_ms",
    }
)


@dataclass(frozen=True)
class SyncConfig:
    url: str
    key: bytes
    state_file: Path
    rules_file: Path | None = None
    offline_redeem_max_points: int = 1000
    card_timeout_ms: int = 800
    request_timeout_ms: int = 15_000
    backoff_base_ms: int = 250
    backoff_max_ms: int = 30_000
    idle_interval_ms: int = 2_000

    @classmethod
    def from_mapping(cls, raw: Any, where: str = "[sync]") -> SyncConfig:
        if not isinstance(raw, dict):
            raise SyncError(f"{where}: must be a table")
        unknown = raw.keys() - FIELDS
        if unknown:
            raise SyncError(f"{where}: unknown setting(s) {sorted(unknown)}")
        url = raw.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise SyncError(f"{where}: url must be http(s)://host:port")
        if "key" in raw:
            key_hex = raw["key"]
        elif "key_file" in raw:
            try:
                key_hex = Path(raw["key_file"]).read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise SyncError(f"{where}: key_file {raw['key_file']}: {exc}") from None
        else:
            raise SyncError(f"{where}: key_file is missing")
        try:
            key = bytes.fromhex(key_hex)
        except (ValueError, TypeError):
            key = b""
        if len(key) != KEY_BYTES:
            raise SyncError(f"{where}: the terminal key must be {2 * KEY_BYTES} hex digits")
        if not isinstance(raw.get("state_file"), str):
            raise SyncError(f"{where}: state_file is missing")
        ints = {}
        for name in ("card_timeout_ms", "request_timeout_ms", "backoff_base_ms", "backoff_max_ms", "idle_interval_ms"):
            value = raw.get(name, getattr(cls, name))
            if type(value) is not int or not 1 <= value <= TIMEOUT_MS_MAX:
                raise SyncError(f"{where}: {name} must be 1..{TIMEOUT_MS_MAX}")
            ints[name] = value
        cap = raw.get("offline_redeem_max_points", cls.offline_redeem_max_points)
        if type(cap) is not int or not 0 <= cap <= POINTS_MAX:
            raise SyncError(f"{where}: offline_redeem_max_points must be 0..{POINTS_MAX}")
        rules = raw.get("rules_file")
        return cls(
            url=url.rstrip("/"),
            key=key,
            state_file=Path(raw["state_file"]),
            rules_file=Path(rules) if isinstance(rules, str) else None,
            offline_redeem_max_points=cap,
            **ints,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> SyncConfig:
        p = Path(path)
        try:
            if p.stat().st_size > CONFIG_BYTES_MAX:
                raise SyncError(f"{path}: more than {CONFIG_BYTES_MAX} bytes")
            tree = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SyncError(f"{path}: cannot read: {exc}") from None
        return cls.from_mapping(tree.get("sync"), f"{path} [sync]")
