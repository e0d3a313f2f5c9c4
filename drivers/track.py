"""Magnetic stripe tracks as card readers send them (ISO/IEC 7813), as text.

Track 1: `%` format code `B`, PAN (≤ 19 digits), `^`, name, `^`, YYMM, service code, data, `?`.
Track 2: `;` PAN (≤ 19 digits), `=`, YYMM, service code, data, `?` — many loyalty cards carry
only `;PAN?`. A reader marks a track it could not read with `E` (`%E?`, `;E?`).
A reader may send both tracks on one line; track 2 wins when it is good.

`parse_tracks` never raises: it returns a `TrackRead` or a reason. Limits: `track1_chars_max`,
`track2_chars_max`, `pan_digits_max`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from drivers.codes import luhn_valid

track1_chars_max = 79
track2_chars_max = 40
pan_digits_max = 19
pan_digits_min = 6
lrc_chars_max = 1


@dataclass(frozen=True, slots=True)
class TrackRead:
    number: str
    source: Literal["track1", "track2"]
    name: str = ""
    expiry_yymm: str = ""


def _split(line: str) -> tuple[list[str], str | None]:
    """Cut a line into `%…?` and `;…?` segments; a reason when something else is in the way."""
    segments: list[str] = []
    i = 0
    while i < len(line):
        if line[i] not in "%;":
            return segments, f"unexpected {line[i]!r} outside a track"
        end = line.find("?", i)
        if end < 0:
            return segments, "track has no end sentinel '?'"
        segments.append(line[i : end + 1])
        # An LRC character may follow the end sentinel; readers that pass it on send one char.
        i = end + 1
        if i < len(line) and line[i] not in "%;":
            i += lrc_chars_max
    return segments, None


def _pan(pan: str, luhn: bool) -> str | None:
    if not (pan.isascii() and pan.isdigit()):
        return "card number has non-digits"
    if not pan_digits_min <= len(pan) <= pan_digits_max:
        return f"card number must have {pan_digits_min}..{pan_digits_max} digits"
    if luhn and not luhn_valid(pan):
        return "card number fails the Luhn check"
    return None


def parse_track2(seg: str, luhn: bool = False) -> TrackRead | str:
    if len(seg) > track2_chars_max:
        return f"track 2 longer than {track2_chars_max} characters"
    body = seg[1:-1]
    if body == "E":
        return "bad read on track 2 - swipe again"
    pan, sep, rest = body.partition("=")
    reason = _pan(pan, luhn)
    if reason:
        return f"track 2: {reason}"
    if sep and not (rest.isascii() and rest.isdigit()):
        return "track 2: data after '=' must be digits"
    if sep and len(rest) < 4:
        return "track 2: expiry date missing after '='"
    return TrackRead(pan, "track2", expiry_yymm=rest[:4] if sep else "")


def parse_track1(seg: str, luhn: bool = False) -> TrackRead | str:
    if len(seg) > track1_chars_max:
        return f"track 1 longer than {track1_chars_max} characters"
    body = seg[1:-1]
    if body == "E":
        return "bad read on track 1 - swipe again"
    if not body.startswith("B"):
        return "track 1: format code must be 'B'"
    fields = body[1:].split("^")
    if len(fields) != 3:
        return "track 1: expected PAN^NAME^DATA"
    pan, name, rest = fields
    reason = _pan(pan, luhn)
    if reason:
        return f"track 1: {reason}"
    if not (name.isascii() and name.isprintable()) or len(name) > 26:
        return "track 1: name must be ≤ 26 printable characters"
    if len(rest) < 4 or not rest[:4].isdigit():
        return "track 1: expiry date missing"
    return TrackRead(pan, "track1", name=name.strip(), expiry_yymm=rest[:4])


def looks_like_track(line: str) -> bool:
    return line[:1] in ("%", ";")


def parse_tracks(line: str, luhn: bool = False) -> TrackRead | str:
    """The card number from one or two tracks, or the reason the swipe is refused."""
    if len(line) > track1_chars_max + track2_chars_max + 2 * lrc_chars_max:
        return "swipe longer than two tracks"
    segments, reason = _split(line)
    if reason:
        return reason
    reads: list[TrackRead | str] = []
    for seg in segments:
        reads.append(parse_track1(seg, luhn) if seg[0] == "%" else parse_track2(seg, luhn))
    good = [r for r in reads if isinstance(r, TrackRead)]
    for read in good:
        if read.source == "track2":
            return read
    if good:
        return good[0]
    return "; ".join(r for r in reads if isinstance(r, str)) or "empty swipe"
