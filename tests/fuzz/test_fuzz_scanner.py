"""Scanner and card-reader byte streams, as hostile as they come: real evdev `InputEvent`s (and
packed `input_event` structs) through the keyboard-wedge decoder, raw bytes through the serial
frame decoder and the line classifier. Property: every output is a ScanEvent, a CardSwipe or a
RejectedInput with one line of reason — never an exception, never a code past its limit.
Seeds: the issue's cases (lone surrogates, 10 000-character codes, control bytes, bad tracks)."""

from __future__ import annotations

import struct

import pytest
from evdev import InputEvent, ecodes
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drivers.classify import classify_line
from drivers.codes import CardBarcode, CodeRules, GS1Layout
from drivers.events import CardSwipe, RejectedInput, ScanEvent
from drivers.keyboard import EVENT_FORMAT, KeyDecoder, code_chars_max, unpack_events
from drivers.keymaps import layout
from drivers.serial_input import FrameDecoder, frame_bytes_max

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RULES = CodeRules(cards=(CardBarcode("77", 13, "ean"),),
                  gs1={"21": GS1Layout("21", 5, "weight_g", 5)}, track_luhn=True)
LAYOUTS = ("us", "de", "fr", "ru")
KEY_CODES = st.one_of(st.sampled_from([ecodes.KEY_ENTER, ecodes.KEY_TAB, ecodes.KEY_LEFTSHIFT,
                                       ecodes.KEY_RIGHTALT, ecodes.KEY_CAPSLOCK, ecodes.KEY_1]),
                      st.integers(0, 0x2FF))
input_event = st.builds(
    InputEvent,
    st.integers(0, 2**40), st.integers(0, 999_999),
    st.sampled_from([ecodes.EV_KEY, ecodes.EV_KEY, ecodes.EV_KEY, ecodes.EV_SYN, ecodes.EV_MSC, 0x1F]),
    KEY_CODES, st.integers(-3, 3),
)


def check(event: object) -> None:
    assert isinstance(event, ScanEvent | CardSwipe | RejectedInput), event
    if isinstance(event, RejectedInput):
        assert event.reason and "\n" not in event.reason and "Traceback" not in event.reason
    if isinstance(event, ScanEvent):
        assert 0 < len(event.code) <= code_chars_max and event.code.isprintable()


@FUZZ
@given(st.sampled_from(LAYOUTS), st.lists(input_event, max_size=300))
def test_key_events_decode_to_events_or_refusals(lay: str, events: list[InputEvent]) -> None:
    decoder = KeyDecoder("scanner0", layout(lay), RULES)
    for event in events:
        out = decoder.feed(event)
        if out is not None:
            check(out)


def _typing(codes: list[int], step_us: int) -> list[InputEvent]:
    out = []
    for i, code in enumerate(codes):
        t = 1_700_000_000_000_000 + i * step_us
        out += [InputEvent(t // 10**6, t % 10**6, ecodes.EV_KEY, code, 1),
                InputEvent(t // 10**6, t % 10**6, ecodes.EV_KEY, code, 0)]
    return out


@pytest.mark.parametrize("lay", LAYOUTS)
def test_a_code_past_the_limit_is_refused_never_scanned(lay: str) -> None:
    decoder = KeyDecoder("scanner0", layout(lay), RULES)
    events = _typing([ecodes.KEY_1] * (code_chars_max * 4) + [ecodes.KEY_ENTER], 1_000)
    outs = [o for o in map(decoder.feed, events) if o is not None]
    assert outs and all(isinstance(o, RejectedInput) for o in outs), outs
    assert any(str(code_chars_max) in o.reason for o in outs)


@FUZZ
@given(st.binary(max_size=24 * 64))
def test_packed_input_event_bytes_never_raise(data: bytes) -> None:
    events, rest = unpack_events(data)
    assert len(rest) < struct.calcsize(EVENT_FORMAT)
    decoder = KeyDecoder("card0", layout("us"), RULES)
    for event in events:
        out = decoder.feed(event)
        if out is not None:
            check(out)


@FUZZ
@given(st.sampled_from(["crlf", "cr", "lf", "stx_etx"]), st.booleans(),
       st.lists(st.tuples(st.binary(max_size=600), st.floats(0, 2_000)), max_size=8))
@example("stx_etx", True, [(b"\x02;7700000000026=2512?\x03\x00", 1.0)])
@example("crlf", False, [(b"\xff\xfe\x00" * 200 + b"\r\n", 1.0)])
@example("lf", False, [(b"1" * (frame_bytes_max * 3) + b"\n", 1.0)])
@example("cr", False, [(b"\xed\xa0\x80\r", 1.0)])  # a lone surrogate in CESU-8 bytes
def test_serial_bytes_become_frames_or_refusals(framing: str, lrc: bool, chunks: list[tuple[bytes, float]]) -> None:
    decoder = FrameDecoder(framing=framing, lrc=lrc)  # type: ignore[arg-type]
    now = 0.0
    for data, delay_ms in chunks:
        now += delay_ms
        for out in decoder.feed(data, now):
            if isinstance(out, RejectedInput):
                check(out)
            else:
                assert len(out) <= frame_bytes_max
                check(classify_line("reader0", out, RULES))


@FUZZ
@given(st.text(max_size=300))
@example("\ud800")  # a lone surrogate
@example("4006381333931\ud83d")
@example("x" * 10_000)
@example(";7700000000026=2512?")  # a track whose number fails Luhn
@example("%B7700000000026^PETROVA/ANNA^2512?")
@example("%E?;E?")  # a bad read of both tracks
@example("21" + "9" * 11)
@example("\x00\x1b[31m")
def test_any_line_classifies_to_an_event_or_a_refusal(line: str) -> None:
    check(classify_line("scanner0", line, RULES))
