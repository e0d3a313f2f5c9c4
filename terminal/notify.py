"""sd_notify without libsystemd: datagrams on the Unix socket named by NOTIFY_SOCKET.

`Notifier.from_env()` is a no-op notifier when the variable is unset (the daemon run by hand).
An address starting with `@` is in the abstract namespace. WATCHDOG_USEC (set by systemd when
the unit has WatchdogSec=) gives the ping interval; we ping at half of it, as sd_watchdog_enabled(3)
recommends. A failed send is logged by the caller, never fatal: systemd may be restarting.
Limits: `MESSAGE_BYTES_MAX`.
"""

from __future__ import annotations

import os
import socket

MESSAGE_BYTES_MAX = 4096


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int = 0) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls) -> Notifier:
        address = os.environ.get("NOTIFY_SOCKET") or None
        usec = 0
        raw = os.environ.get("WATCHDOG_USEC", "")
        watchdog_pid = os.environ.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process systemd expects pings from; a child must not ping.
        if raw.isdigit() and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            usec = int(raw)
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half the watchdog timeout, or None when there is no watchdog."""
        return self.watchdog_usec / 2_000_000 if self.watchdog_usec else None

    def send(self, message: str) -> bool:
        """Send one state string; False (never an exception) when it could not be delivered."""
        if self.address is None:
            return False
        data = message.encode()
        if len(data) > MESSAGE_BYTES_MAX:
            raise ValueError(f"sd_notify message longer than {MESSAGE_BYTES_MAX} bytes")
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(data, address)
        except OSError:
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
