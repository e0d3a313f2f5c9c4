"""protocol/fastcheck.py (the server's generated event checker) agrees with the reference
checker of protocol/schemas.py on generated events of every type: it accepts exactly the events
the reference accepts, and refuses with the reference's field and message."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import fastcheck, schemas
from tests.central.events import complete
from tests.protocol.test_schemas import every_event_type, valid

ZONES = [dt.UTC, *(dt.timezone(dt.timedelta(hours=h)) for h in (3, -5, 14, -12))]
EDGE_TIMES = [
    schemas.TIME_MIN_ISO,
    schemas.TIME_MAX_ISO,
    "9999-12-31T23:59:59.999999+00:00",  # floors to TIME_MS_MAX: valid
    "2000-01-01T03:00:00.000001+03:00",
]
BAD_TIMES = [
    "1999-12-31T23:59:59.999999+00:00",
    "2000-01-01T00:00:00+00:01",  # 1999 in UTC
    "9999-12-31T23:00:00-05:00",  # year 10000 in UTC
    "0001-01-01T00:00:00+05:00",
    "2026-11-23T10:00:00",  # no offset
    "2026-11-23",
    "yesterday",
    "2026-11-23T10:00:00+03:00" + " " * 40,
    "",
]
ODD = st.sampled_from([None, True, False, -1, 0, 1, 2**63, "", "x", "\x00", "\n", 1.5, b"b", [], {}])
BAD_ONE_IN = 100  # each drawn value, key set or cross-field rule is broken about this rarely


def rarely() -> st.SearchStrategy[bool]:
    return st.integers(0, BAD_ONE_IN - 1).map(lambda i: i == 0)


def value(spec: Any) -> st.SearchStrategy[Any]:
    """A value of `spec`: valid (edges included) but now and then beyond its bounds or of
    another type — so most generated events are valid and the invalid ones miss by one thing."""
    return rarely().flatmap(lambda bad: st.one_of(_bad(spec), ODD) if bad else _valid(spec))


def _valid(spec: Any) -> st.SearchStrategy[Any]:
    kind = type(spec)
    if kind is schemas.Int:
        return st.one_of(st.integers(spec.low, spec.high), st.sampled_from([spec.low, spec.high]))
    if kind is schemas.Text:
        if spec.choices:
            return st.sampled_from(spec.choices)
        sizes = sorted({spec.chars_min, spec.chars_max, min(spec.chars_min + 3, spec.chars_max)})
        return st.sampled_from(sizes).flatmap(lambda n: st.text("ab\n\x00é", min_size=n, max_size=n))
    if kind is schemas.CardNumber:
        return st.one_of(st.text("0123456789Cé ", min_size=1, max_size=8), st.just("C" * 64))
    if kind is schemas.Bool:
        return st.booleans()
    if kind is schemas.Time:
        instants = st.datetimes(min_value=dt.datetime(2000, 1, 2), max_value=dt.datetime(9999, 12, 30),
                                timezones=st.sampled_from(ZONES))
        return st.one_of(instants.map(dt.datetime.isoformat), st.sampled_from(EDGE_TIMES))
    if kind is schemas.Nullable:
        return st.one_of(st.none(), _valid(spec.inner))
    if kind is schemas.Scalar:
        return st.one_of(st.none(), st.integers(-spec.high, spec.high), st.text(max_size=3),
                         st.just("x" * spec.chars_max))
    if kind is schemas.ListOf:
        return st.lists(value(spec.item), max_size=min(spec.items_max, 3))
    if kind is schemas.MapOf:
        return st.dictionaries(_valid(spec.key), value(spec.value), max_size=min(spec.items_max, 3))
    if kind is schemas.Record:
        return record(spec.fields)
    raise AssertionError(f"no strategy for {spec!r}")


def _bad(spec: Any) -> st.SearchStrategy[Any]:
    """Just beyond `spec`: one past a bound, a wrong choice, a bad time, one item too many."""
    kind = type(spec)
    if kind is schemas.Int:
        return st.sampled_from([spec.low - 1, spec.high + 1, True])
    if kind is schemas.Text:
        sizes = [n for n in (spec.chars_min - 1, spec.chars_max + 1) if n >= 0]
        wrong = [spec.choices[0] + "x"] if spec.choices else []
        return st.sampled_from([*("x" * n for n in sizes), *wrong])
    if kind is schemas.CardNumber:
        return st.sampled_from(["", "C\n1", "C" * 65, "C\x00"])
    if kind is schemas.Time:
        return st.sampled_from(BAD_TIMES)
    if kind is schemas.Nullable:
        return _bad(spec.inner)
    if kind is schemas.Scalar:
        return st.sampled_from([-spec.high - 1, spec.high + 1, "x" * (spec.chars_max + 1), 1.5, []])
    if kind is schemas.ListOf:
        if spec.items_max < 20:
            return st.lists(_valid(spec.item), min_size=spec.items_max + 1, max_size=spec.items_max + 1)
        return st.lists(_bad(spec.item), min_size=1, max_size=2)
    if kind is schemas.MapOf:
        return st.one_of(st.dictionaries(_bad(spec.key), _valid(spec.value), min_size=1, max_size=1),
                         st.dictionaries(_valid(spec.key), _bad(spec.value), min_size=1, max_size=1))
    if kind is schemas.Record:
        return record(spec.fields, broken=True)
    return ODD


@st.composite
def record(draw: st.DrawFn, fields: tuple[schemas.Field, ...], broken: bool = False) -> dict[str, Any]:
    out = {}
    for f in fields:
        if not f.required and draw(st.booleans()):
            continue  # optional ones half the time
        out[f.name] = draw(value(f.spec))
    if (broken or draw(rarely())) and out:
        how = draw(st.sampled_from(["unknown", "missing", "field"] if broken else ["unknown", "missing"]))
        name = draw(st.sampled_from(sorted(out)))
        if how == "unknown":
            out["colour"] = 1
        elif how == "missing":
            del out[name]
        else:
            out[name] = draw(_bad(next(f.spec for f in fields if f.name == name)))
    return out


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """An event of any type: its fields drawn from its schema, then made consistent across fields
    (at = at_ms, lines adding up to to_pay) but now and then not, and its card now and then
    null (a sale or return moving points must name it)."""
    kind = draw(st.sampled_from([*schemas.EVENTS, "foo"]))
    fields = schemas.COMMON + schemas.EVENTS.get(kind, ())
    event = {**draw(record(fields)), "type": kind}
    if type(event.get("at")) is str and schemas.iso_ms(event["at"]) is not None:
        event["at_ms"] = schemas.iso_ms(event["at"]) + (draw(st.sampled_from([1, -1])) if draw(rarely()) else 0)
    if kind == "sale" and type(event.get("lines")) is list and not draw(rarely()):
        paid = [line.get("paid") for line in event["lines"] if type(line) is dict]
        if all(type(p) is int for p in paid) and len(paid) == len(event["lines"]):
            event["to_pay"] = sum(paid)
    if kind in schemas.CARD_FOR_POINTS and "card" in event and draw(st.integers(0, 19)) == 0:
        event["card"] = None
    return event


def outcome(check: Any, event: Any) -> tuple[str, str] | None:
    try:
        check(event)
    except schemas.Invalid as exc:
        return exc.path, exc.reason
    return None


def agree(event: Any) -> bool:
    """The fast checker gives the reference's outcome; returns whether the event is valid."""
    wanted = outcome(schemas.check_event, event)
    assert outcome(fastcheck.check_event, event) == wanted
    kind = event.get("type") if type(event) is dict else None
    if type(kind) is str and kind in fastcheck.ACCEPT:
        assert fastcheck.ACCEPT[kind](event) is (wanted is None), fastcheck.SOURCES[kind]
    return wanted is None


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_the_fast_checker_agrees_with_the_reference(event: dict[str, Any]) -> None:
    agree(event)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(schemas.EVENTS)), st.data())
def test_agreement_on_valid_events_with_one_field_changed(kind: str, data: st.DataObject) -> None:
    """A valid sample event, one field replaced by a drawn value: near misses of every field."""
    event = complete({"id": "0" * 32, "epoch": 1, "seq": 1, "type": kind})
    fields = {f.name: f for f in schemas.COMMON + schemas.EVENTS[kind]}
    name = data.draw(st.sampled_from(sorted(fields)))
    spec = fields[name].spec
    event[name] = data.draw(st.one_of(_valid(spec), _bad(spec), ODD))
    agree(event)


def test_every_event_a_real_ledger_writes_is_accepted_fast(tmp_path: Any) -> None:
    written = every_event_type(tmp_path)
    assert {e["type"] for e in written} == set(schemas.EVENTS)
    assert all(agree(event) for event in written)
    assert all(fastcheck.ACCEPT[e["type"]](e) for e in written)


@pytest.mark.parametrize("event", [None, [], "sale", {"type": ["sale"]}, {"type": "foo"}, valid("sale", to_pay=-1)])
def test_non_events_are_refused_like_the_reference(event: Any) -> None:
    assert agree(event) is False


# ---------------------------------------------------------------- every field at its edges

AT = "2026-11-23T10:00:00+03:00"


def full_sample(spec: Any) -> Any:
    """A valid value of `spec` that reaches every nested field: optional fields present, one
    item in every list and map, nullable values not null."""
    kind = type(spec)
    if kind is schemas.Int:
        return max(spec.low, min(spec.high, 0))
    if kind is schemas.Text:
        return spec.choices[0] if spec.choices else "k" * max(spec.chars_min, 1)
    if kind is schemas.CardNumber:
        return "C1"
    if kind is schemas.Bool:
        return False
    if kind is schemas.Time:
        return AT
    if kind is schemas.Nullable:
        return full_sample(spec.inner)
    if kind is schemas.Scalar:
        return 1
    if kind is schemas.ListOf:
        return [full_sample(spec.item)]
    if kind is schemas.MapOf:
        return {full_sample(spec.key): full_sample(spec.value)}
    if kind is schemas.Record:
        return {f.name: full_sample(f.spec) for f in spec.fields}
    raise AssertionError(f"no sample for {spec!r}")


def edges(spec: Any) -> list[Any]:
    """Values at and just beyond `spec`'s bounds, and of other types."""
    kind = type(spec)
    other: list[Any] = [None, True, 1.5, "1", b"1", []]
    if kind is schemas.Int:
        return [spec.low, spec.high, spec.low - 1, spec.high + 1, 0, 1, -1, False, *other]
    if kind is schemas.Text:
        sizes = {n for n in (spec.chars_min - 1, spec.chars_min, spec.chars_max, spec.chars_max + 1) if n >= 0}
        choices = [*spec.choices, spec.choices[0] + "x", spec.choices[0][:-1]] if spec.choices else []
        return [*("x" * n for n in sorted(sizes)), *choices, 1, *other]
    if kind is schemas.CardNumber:
        return ["", "C", "C" * 64, "C" * 65, "C\n", "C\x00", "C é", 1, *other]
    if kind is schemas.Time:
        return [*EDGE_TIMES, *BAD_TIMES, 1, *other]
    if kind is schemas.Nullable:
        return [None, *edges(spec.inner)]
    if kind is schemas.Scalar:
        return [spec.high, -spec.high, spec.high + 1, -spec.high - 1, "x" * spec.chars_max,
                "x" * (spec.chars_max + 1), "", *other]
    if kind is schemas.ListOf:
        item = full_sample(spec.item)
        return [[], [item] * spec.items_max, [item] * (spec.items_max + 1), [None], "x", *other[:2]]
    if kind is schemas.MapOf:
        value = full_sample(spec.value)
        many = {f"K{i}": value for i in range(spec.items_max + 1)}
        return [{}, many, {1: value}, {"": value}, {"C\n": value}, [("C1", value)], *other[:2]]
    if kind is schemas.Record:
        sample = full_sample(spec)
        dropped = [{k: v for k, v in sample.items() if k != f.name} for f in spec.fields]
        return [{}, {**sample, "colour": 1}, *dropped, "x", *other[:2]]
    return other


def leaves(spec: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """(path, spec) of every value inside a `full_sample(spec)`, containers included."""
    out = [(path, spec)]
    kind = type(spec)
    if kind is schemas.Nullable:
        return [(path, spec), *leaves(spec.inner, path)[1:]]
    if kind is schemas.ListOf:
        out += leaves(spec.item, (*path, 0))
    elif kind is schemas.MapOf:
        out += leaves(spec.value, (*path, full_sample(spec.key)))
    elif kind is schemas.Record:
        for f in spec.fields:
            out += leaves(f.spec, (*path, f.name))
    return out


def full_event(kind: str) -> dict[str, Any]:
    event: dict[str, Any] = full_sample(schemas.Record(schemas.COMMON + schemas.EVENTS[kind]))
    event.update(type=kind, at=AT, at_ms=schemas.iso_ms(AT))
    return event


def replaced(event: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(event) if type(event) is dict else list(event)
    copy[path[0]] = replaced(event[path[0]], path[1:], new)
    return copy


@pytest.mark.parametrize("kind", sorted(schemas.EVENTS))
def test_every_field_at_its_edges(kind: str) -> None:
    """Each value of a full event (every optional field, an item in every list) replaced by each
    of its edge values: the fast checker and the reference agree every time."""
    event = full_event(kind)
    assert agree(event), kind
    fields = schemas.Record(schemas.COMMON + schemas.EVENTS[kind])
    checked = 0
    for path, spec in leaves(fields)[1:]:
        for new in edges(spec):
            agree(replaced(event, path, new))
            checked += 1
    for at in [*EDGE_TIMES, *BAD_TIMES]:  # `at` with its own at_ms: the range of the instant itself
        ms = schemas.iso_ms(at)
        agree({**event, "at": at, "at_ms": ms if ms is not None else event["at_ms"]})
    if kind == "sale":
        agree({**event, "to_pay": 1})  # the lines no longer add up
        agree({**event, "card": None, "deltas": {}, "accrued": 1})
    assert checked > 10
