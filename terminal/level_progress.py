"""The card's level progress for the screen's level bar (spec §11): the quote's `level`
({type, next, to_next}, computed by the pricing core) with the two thresholds a bar needs —
the current level's and the next level's `cumulative_min`, from the loaded program. The fill
is then (next_min − to_next − min) / (next_min − min), the card's way from its level to the next.
"""

from __future__ import annotations

from typing import Any


def level_progress(engine: Any, quote: dict[str, Any] | None) -> dict[str, Any] | None:
    """{type, next, to_next, cumulative_min, next_cumulative_min} or None (no level card)."""
    level = quote.get("level") if quote else None
    if not level or engine is None:
        return None
    thresholds = {lv.type: lv.cumulative_min for lv in engine.program.levels}
    nxt = level.get("next")
    return {"type": level["type"], "next": nxt, "to_next": level.get("to_next"),
            "cumulative_min": thresholds.get(level["type"]),
            "next_cumulative_min": thresholds.get(nxt) if nxt else None}
