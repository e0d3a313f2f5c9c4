"""JSON in and out for the CLI, the local API and the checkout record: bounded reads, nesting
bounded before the parser recurses, no lone surrogates, exact decimals (never floats), stable
output written whole or not at all."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from core import nesting
from terminal.errors import InputFileError
from terminal.files import read_bounded

JSON_BYTES_MAX = 16 * 1024 * 1024
JSON_DEPTH_MAX = nesting.NESTING_MAX
# A `\ud800`-style escape: the only way a lone surrogate gets into decoded JSON (UTF-8 input
# cannot hold one). Only texts with such an escape are walked for unpaired ones.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _no_surrogates(value: Any) -> None:
    """Refuse strings holding a lone UTF-16 surrogate: they cannot be written as UTF-8, so they
    would fail later — halfway through printing a quote, or when stored — instead of now."""
    stack = [value]
    while stack:  # no recursion; bounded by the (size-bounded) document
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise ValueError(f"the text {item[:40]!r} holds a lone UTF-16 surrogate (not Unicode text)")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads_bounded(
    text: str | bytes, parse_float: Callable[[str], Any] = Decimal, depth_max: int = JSON_DEPTH_MAX
) -> Any:
    """`json.loads` with its nesting checked first; every refusal is a ValueError saying why
    (UnicodeDecodeError, RecursionError-free)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    deep = nesting.too_deep(nesting.json_depth(text), depth_max)
    if deep:
        raise ValueError(deep)
    value = json.loads(text, parse_float=parse_float, parse_constant=_no_constants)
    if _SURROGATE_ESCAPE.search(text):
        _no_surrogates(value)
    return value


def load_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file with decimals kept exact; refuses big, deep or malformed files clearly."""
    data = read_bounded(path, JSON_BYTES_MAX, what)
    try:
        return loads_bounded(data)
    except (ValueError, RecursionError) as exc:
        raise InputFileError(f"{path}: the {what} file is not valid JSON: {exc}") from None


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dump_json(value: Any, stream: Any = None) -> None:
    """The whole text is made before anything is written: a value that cannot be written prints
    nothing rather than half a document."""
    stream = stream or sys.stdout
    text = json.dumps(value, indent=2, ensure_ascii=False, default=_default)
    stream.write(text + "\n")
