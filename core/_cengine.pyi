"""Type stub of the compiled pricing engine; the API is identical to core.fallback."""

from typing import Any, Literal

from core.rules import Program

IMPLEMENTATION: Literal["compiled"]

class Engine:
    program: Program
    implementation: str
    def __init__(self, program: Program) -> None: ...
    def quote(
        self, cart: Any, card: Any = None, now: Any = None, redeem: Any = None
    ) -> dict[str, Any]: ...
    def refund(self, quote: Any, ret: Any) -> dict[str, Any]: ...

def _div_floor(a: int, b: int) -> int: ...
def _div_round_half_up(a: int, b: int) -> int: ...
