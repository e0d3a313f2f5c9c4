"""posterm's pricing core: rules → compiled Program → quote / refund. Pure: no I/O, no clock.

    program = load_rules("rules.toml")          # or compile_rules(tree)
    engine = Engine(program)
    quote = engine.quote(cart, card, now="2026-12-01T10:00:00+03:00", redeem="max")
    refund = engine.refund(quote, {"lines": [{"line": 0, "qty": 1}]})

`Engine` is the compiled (Cython) engine unless POSTERM_PURE=1 asks for the pure-Python twin
(`core.fallback`); `IMPLEMENTATION` says which one is active. A missing compiled engine without
POSTERM_PURE is reported by `compiled_load_error` and fails the test suite: no silent fallback.
"""

import os

from core.errors import CartError, PricingError, RefundError, RuleError
from core.rules import Program, compile_rules, load_rules

compiled_load_error: str | None = None

if os.environ.get("POSTERM_PURE"):
    from core.fallback import IMPLEMENTATION, Engine
else:
    try:
        from core._cengine import IMPLEMENTATION, Engine  # type: ignore[assignment]
    except ImportError as exc:  # not built (POSTERM_NO_EXTENSIONS, or no compiler at install)
        compiled_load_error = str(exc)
        from core.fallback import IMPLEMENTATION, Engine

__all__ = [
    "IMPLEMENTATION", "CartError", "Engine", "PricingError", "Program", "RefundError", "RuleError",
    "compile_rules", "compiled_load_error", "load_rules",
]
