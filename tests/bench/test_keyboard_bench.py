"""Decoding throughput of key events (informational): `make bench` prints events per second."""

from drivers.codes import CodeRules
from drivers.events import ScanEvent
from drivers.keyboard import KeyDecoder, events_for_text, pack_event, unpack_events
from drivers.keymaps import layout

CODES = 200


def _events(lay):
    events = []
    for i in range(CODES):
        events += events_for_text("4006381333931", lay, start_us=i * 200_000)
    return events


def _decode(events, lay):
    decoder = KeyDecoder("bench", layout(lay), CodeRules(), kind="scanner")
    return [r for r in map(decoder.feed, events) if r is not None]


def test_decode_key_events_de(benchmark):
    events = _events("de")
    out = benchmark(_decode, events, "de")
    assert out == [ScanEvent("bench", "4006381333931", "ean13")] * CODES
    benchmark.extra_info["key_events"] = len(events)


def test_unpack_and_decode_packed_structs_fr(benchmark):
    raw = b"".join(pack_event(e) for e in _events("fr"))

    def run():
        events, rest = unpack_events(raw)
        assert rest == b""
        return _decode(events, "fr")

    assert len(benchmark(run)) == CODES
