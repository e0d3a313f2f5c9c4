"""How deeply a JSON or TOML text nests, found without recursion, before a parser recurses.

Python's `json` and `tomllib` parse nested arrays and tables recursively: a text nested a few
thousand deep (`x = [[[…]]]`, `[[[[…]]]]`) ends in RecursionError — a crash, not a refusal. These
scans count the brackets outside strings and comments in one pass with C-level regular
expressions, so a text deeper than `NESTING_MAX` is refused before any parser sees it. They are
deliberately conservative: a malformed string only makes the count higher (the text is refused
here or by the parser), never lower. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from itertools import accumulate

NESTING_MAX = 32  # rules files nest 3–4 deep, carts 3, API bodies 4

_JSON_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_TOML_SKIPPED = re.compile(
    r'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*', re.DOTALL
)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _depth(brackets: str) -> int:
    """The deepest point of a string of only bracket characters."""
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def json_depth(text: str) -> int:
    return _depth(_NOT_BRACKETS.sub("", _JSON_STRINGS.sub("", text)))


def toml_depth(text: str) -> int:
    return _depth(_NOT_BRACKETS.sub("", _TOML_SKIPPED.sub("", text)))


def too_deep(depth: int, limit: int = NESTING_MAX) -> str | None:
    """The refusal's wording when `depth` is past `limit`, else None."""
    if depth > limit:
        return f"nested {depth} deep, more than {limit} allowed"
    return None
