"""The API's attendant gate: which session a request carries, and the outbox event that names
the attendant behind every privileged action (terminal.attendants holds the sessions).

A privileged handler asks `needs(request, permission)` before it does anything; the action then
runs `attended`: inside `Ledger.attributed`, so its first ledger write carries the
`attendant_action` event in the SAME LMDB write transaction (an action that writes nothing, a
reprint, gets the event alone once it succeeded; a refused action records nothing). The
wrapped function must be synchronous (it runs under the checkout lock, no await in between).
Header: `X-Posterm-Attendant: TOKEN` (from POST /v1/attendant/session).
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


def attended(daemon: Daemon, who: Session | None, action: str, detail: dict[str, Any],
             fn: Callable[..., T]) -> Callable[..., T]:
    """`fn` with the attendant's action recorded in the same ledger transaction; `who` None
    (no attendant needed, e.g. cancelling an empty checkout) is `fn` itself."""
    if who is None:
        return fn
    from terminal.daemon import now_local

    def run(*args: Any) -> T:
        with daemon.ledger.attributed(f"att-{secrets.token_hex(8)}", who.name, who.role, action, detail,
                                      now_local()):
            result = fn(*args)
        daemon.publish("attendant_action", {"attendant": who.name, "action": action, **detail})
        return result

    return run
