"""Turn one decoded line (from a wedge or a serial frame) into a domain event.

Order: magnetic tracks (`%`/`;`), card barcodes, product codes with valid check digits (GS1
20–29 split when a layout is configured), other printable text as a `text` scan; anything else
is a `RejectedInput` with the reason. Never raises. Limits: `codes.code_chars_max`.
"""

from __future__ import annotations

from drivers.codes import CodeRules, card_from_barcode, code_chars_max, parse_gs1, symbology_of
from drivers.events import CardSwipe, Entry, Event, RejectedInput, ScanEvent, preview
from drivers.track import TrackRead, looks_like_track, parse_tracks


def classify_line(
    device: str, line: str, rules: CodeRules, entry: Entry = "scanner"
) -> Event:
    if not line:
        return RejectedInput(device, "empty code", "")
    if len(line) > code_chars_max:
        return RejectedInput(device, f"code longer than {code_chars_max} characters", preview(line))
    if not line.isprintable():
        return RejectedInput(device, "code contains control characters", preview(line))
    if looks_like_track(line):
        read = parse_tracks(line, rules.track_luhn)
        if isinstance(read, TrackRead):
            return CardSwipe(device, read.number, read.source)
        return RejectedInput(device, read, preview(line))
    card, reason = card_from_barcode(line, rules)
    if card:
        return CardSwipe(device, card, "barcode")
    if reason:
        return RejectedInput(device, reason, preview(line))
    if line.isascii() and line.isdigit():
        return _product(device, line, rules, entry)
    if not line.isascii():
        reason = "code has non-ASCII characters (check the scanner's keyboard layout)"
        return RejectedInput(device, reason, preview(line))
    return ScanEvent(device, line, "text", entry)


def _product(device: str, code: str, rules: CodeRules, entry: Entry) -> Event:
    symbology = symbology_of(code)
    if symbology is None:
        if len(code) in (8, 12, 13):
            return RejectedInput(device, f"{len(code)}-digit code with a wrong check digit", code)
        return ScanEvent(device, code, "text", entry)
    gs1 = parse_gs1(code, rules.gs1)
    if gs1 is None:
        return ScanEvent(device, code, symbology, entry)
    if not (gs1.weight_g or gs1.price_minor):
        # A 0 g or 0.00 label is a scale fault or a mis-set layout, never a product to sell
        # (a weight of 0 was once read as "no weight" and charged as 1 kg).
        what = "a weight of 0 g" if gs1.price_minor is None else "a price of 0"
        return RejectedInput(device, f"scale label with {what}: weigh the item again", code)
    return ScanEvent(
        device, code, symbology, entry, gs1_prefix=gs1.prefix, gs1_item=gs1.item,
        weight_g=gs1.weight_g, price_minor=gs1.price_minor,
    )
