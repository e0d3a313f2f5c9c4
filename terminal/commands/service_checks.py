"""`posterm doctor` for the payment terminal and the fiscal registrar: one status call of each
configured device's driver (the same drivers the daemon pays and registers through), one verdict
line each. Nothing is charged or registered: the payment terminal is asked the status of an
operation id that is never used for money (`PROBE_OP`), the registrar runs `check()` (ATOL:
`getDeviceStatus`). Limits: the drivers' own timeouts (ATOL: `drivers.atol.check_timeout_s`).
"""

from __future__ import annotations

import asyncio

from drivers.config import ServiceConfig
from drivers.errors import DeviceError
from drivers.fiscal import make_registrar
from drivers.payment import make_payment_terminal

PROBE_OP = "posterm-doctor-probe"  # no sale or refund id looks like this (they start with the terminal id)


def check_payment(dev: ServiceConfig) -> tuple[bool, str]:
    try:
        answer = make_payment_terminal(dev.name, dev.driver, dev.source).status(PROBE_OP)
    except DeviceError as exc:
        return False, f"ERROR — {exc}"
    if answer.status in ("error", "timeout"):
        return False, (f"NO CONNECTION — {answer.detail or answer.status}; check the terminal's power and "
                       "cable; card payments are refused until it answers")
    return True, "OK, answers status queries"


def check_fiscal(dev: ServiceConfig) -> tuple[bool, str]:
    try:
        registrar = make_registrar(dev.name, dev.driver, dev.source, dev.timeout_s, dev.taxation)
        reason = asyncio.run(registrar.check())
    except DeviceError as exc:
        return False, f"ERROR — {exc}"
    if reason:
        return False, f"NOT READY — {reason}; sales are blocked until it is ready"
    return True, f"OK, ready to register (taxation {dev.taxation})" if dev.driver == "atol" else "OK, ready to register"


def check_service(dev: ServiceConfig) -> tuple[bool, str]:
    return check_payment(dev) if dev.role == "payment" else check_fiscal(dev)
