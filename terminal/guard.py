"""The API's attendant gate: which session a request carries, and the outbox event that names
the attendant behind every privileged action (terminal.attendants holds the sessions).

A privileged handler asks `needs(request, permission)` before it does anything; the action and
its `attendant_action` event then run together under the checkout lock (`attended`), the event
written right after the action's own ledger transaction succeeded — a refused action records
nothing. Header: `X-Posterm-Attendant: TOKEN` (from POST /v1/attendant/session).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from terminal.attendants import Session

if TYPE_CHECKING:
    from aiohttp import web

    from terminal.daemon import Daemon

HEADER = "X-Posterm-Attendant"
T = TypeVar("T")


def needs(daemon: Daemon, request: web.Request, permission: str) -> Session:
    """The request's attendant session if its role has `permission`; else AttendantError (403)."""
    return daemon.attendants.session(request.headers.get(HEADER), permission, time.monotonic())


def attended(daemon: Daemon, who: Session, action: str, detail: dict[str, Any],
             fn: Callable[..., T]) -> Callable[..., T]:
    """`fn` that, once it succeeded, records the attendant's action in the outbox."""
    from terminal.daemon import now_local

    def run(*args: Any) -> T:
        result = fn(*args)
        daemon.ledger.attendant_action(f"att-{secrets.token_hex(8)}", who.name, who.role, action,
                                       detail, now_local())
        daemon.publish("attendant_action", {"attendant": who.name, "action": action, **detail})
        return result

    return run


async def record(daemon: Daemon, who: Session, action: str, detail: dict[str, Any]) -> None:
    """The attendant's action, after an action that took the checkout lock itself, as its event."""
    from terminal.daemon import now_local

    await daemon.act(daemon.ledger.attendant_action, f"att-{secrets.token_hex(8)}", who.name, who.role,
                     action, detail, now_local())
    daemon.publish("attendant_action", {"attendant": who.name, "action": action, **detail})
