"""The IP allow-list of the terminal's systemd unit: the drop-in that lets the daemon reach its
central server and network printers, and nothing else but loopback.

`systemd/posterm.service` says `IPAddressDeny=any` + `IPAddressAllow=localhost`; systemd takes
only addresses there (no host names), so `posterm unit-network` resolves the hosts named in the
config once, when the technician runs it, and writes

    [Service]
    IPAddressAllow=192.0.2.10 2001:db8::10   # central server (central.example)

to `/etc/systemd/system/posterm.service.d/network.conf`. Run it again after an address changes.
A DNS server that is not on loopback must be added by hand (`--allow ADDR`). Limits:
`PEERS_MAX`, `ADDRESSES_MAX` per host.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from terminal.config import ConfigError, TerminalConfig

DROPIN_PATH = "/etc/systemd/system/posterm.service.d/network.conf"
PEERS_MAX = 32
ADDRESSES_MAX = 16
Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    """Every address `host` has now (an IP literal is returned as it is)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"{host}: cannot be resolved ({exc}); give its address with --allow") from None
    found = sorted({str(info[4][0]) for info in infos})
    return found[:ADDRESSES_MAX]


def peers(config: TerminalConfig) -> list[tuple[str, str]]:
    """(what, host) for every network peer the config names."""
    out: list[tuple[str, str]] = []
    sync_url = (config.sync or {}).get("url")
    for what, url in (("central server", config.server_url), ("sync server", sync_url)):
        host = urlsplit(url).hostname if isinstance(url, str) and url else None
        if host:
            out.append((what, host))
    for printer in config.devices.printers:
        if printer.spec.driver == "network" and printer.spec.host:
            out.append((f"printer {printer.spec.name}", printer.spec.host))
    return out[:PEERS_MAX]


def checked_address(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ConfigError(f"--allow {text[:64]!r}: not an IP address or prefix") from None


def network_dropin(config: TerminalConfig, extra: list[str], resolver: Resolver = resolve) -> str:
    lines = ["# Written by `posterm unit-network` from " + str(config.path) + "; run it again when an",
             "# address changes. Adds to the IPAddressAllow= of posterm.service (loopback only).",
             "[Service]"]
    seen: set[str] = set()
    for what, host in peers(config):
        if host in seen:  # the same server named in [terminal] and [sync]
            continue
        seen.add(host)
        addresses = [checked_address(a) for a in resolver(host)]
        lines.append(f"# {what}: {host}")
        lines.append("IPAddressAllow=" + " ".join(addresses))
    if extra:
        lines.append("# given with --allow")
        lines.append("IPAddressAllow=" + " ".join(checked_address(a) for a in extra))
    return "\n".join(lines) + "\n"


def write_dropin(path: Path, text: str) -> None:
    """Atomically: systemd never reads half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the drop-in: {exc.strerror}") from None
