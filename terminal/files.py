"""Reading files the CLI and daemon are handed: bounded in size, refused with the path named."""

from __future__ import annotations

from pathlib import Path

from terminal.errors import InputFileError, TerminalError


def read_bounded(
    path: str | Path, limit_bytes: int, what: str, error: type[TerminalError] = InputFileError
) -> bytes:
    """The whole file, if it is at most `limit_bytes` long; reads at most one byte more.
    Refusals are `error`s naming the path, so each caller keeps its own error type."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} file: {exc.strerror}") from None
    if len(data) > limit_bytes:
        raise error(f"{path}: the {what} file is larger than {limit_bytes} bytes")
    return data
