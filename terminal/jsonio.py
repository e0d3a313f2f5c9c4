"""JSON in and out for the CLI: bounded reads, exact decimals (never floats), stable output."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from terminal.errors import InputFileError
from terminal.files import read_bounded

JSON_BYTES_MAX = 16 * 1024 * 1024


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def load_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file with decimals kept exact; refuses big or malformed files clearly."""
    data = read_bounded(path, JSON_BYTES_MAX, what)
    try:
        return json.loads(data, parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise InputFileError(f"{path}: the {what} file is not valid JSON: {exc}") from None


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dump_json(value: Any, stream: Any = None) -> None:
    stream = stream or sys.stdout
    json.dump(value, stream, indent=2, ensure_ascii=False, default=_default)
    stream.write("\n")
