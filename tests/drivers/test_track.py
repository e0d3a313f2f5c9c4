from hypothesis import given
from hypothesis import strategies as st

from drivers.track import TrackRead, parse_tracks


def test_track2_with_and_without_data():
    assert parse_tracks(";7777123456789=2512?") == TrackRead("7777123456789", "track2", "", "2512")
    assert parse_tracks(";7777123456789?") == TrackRead("7777123456789", "track2")
    # an LRC char after the end sentinel is skipped
    assert parse_tracks(";7777123456789=2512?x").number == "7777123456789"


def test_track1():
    read = parse_tracks("%B4111111111111111^DOE/JOHN^2512101000000?")
    assert read == TrackRead("4111111111111111", "track1", "DOE/JOHN", "2512")


def test_both_tracks_prefers_track2_and_falls_back_to_track1():
    both = "%B4111111111111111^DOE/JOHN^2512101?;4111111111111111=2512101?"
    assert parse_tracks(both).source == "track2"
    assert parse_tracks("%B4111111111111111^DOE/JOHN^2512101?;E?").source == "track1"


def test_bad_reads_and_garbage():
    assert parse_tracks("%E?") == "bad read on track 1 - swipe again"
    assert parse_tracks(";E?") == "bad read on track 2 - swipe again"
    both = parse_tracks("%E?;E?")
    assert both == "bad read on track 1 - swipe again; bad read on track 2 - swipe again"
    assert parse_tracks(";7777123456789") == "track has no end sentinel '?'"
    assert parse_tracks(";77A7?") == "track 2: card number has non-digits"
    assert parse_tracks(";123?") == "track 2: card number must have 6..19 digits"
    assert parse_tracks("%A123456^X^2512?") == "track 1: format code must be 'B'"
    assert parse_tracks(";" + "1" * 60 + "?").startswith("track 2 longer")


def test_luhn_optional():
    assert isinstance(parse_tracks(";4111111111111111=2512?", luhn=True), TrackRead)
    assert parse_tracks(";4111111111111112=2512?", luhn=True) == (
        "track 2: card number fails the Luhn check"
    )
    assert isinstance(parse_tracks(";4111111111111112=2512?", luhn=False), TrackRead)


@given(st.text(max_size=200), st.booleans())
def test_never_raises(line, luhn):
    assert isinstance(parse_tracks(line, luhn), TrackRead | str)


@given(st.binary(max_size=200))
def test_never_raises_on_bytes(raw):
    assert isinstance(parse_tracks(";" + raw.decode("latin-1")), TrackRead | str)
