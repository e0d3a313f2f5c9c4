"""The central lot fold (`central/lots.py` through `balances.fold`): pure, no database."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central import lots
from central.balances import CardState, fold, touched_cards
from central.lots import DATELESS_KEY, DEBT_KEY, NEVER_MS, CardLots, Origin
from protocol.wire import LOT_ENTRIES_MAX, ProtocolError
from tests.central.events import complete

JAN = "2027-01-01T00:00:00+00:00"
JUN = "2027-06-01T00:00:00+00:00"
DEC = "2027-12-01T00:00:00+00:00"
MAR_MS = 1_803_859_200_000  # 2027-03-01T00:00:00Z: JAN has expired, JUN and DEC have not
NOV_MS = 1_795_000_000_000  # 2026-11: every date above is still ahead


def ms(iso: str) -> int:
    return lots.iso_ms(iso, "test")


def entry(points: int, expires_at: str | None = None, available_from: str | None = None) -> dict[str, Any]:
    return {"points": points, "available_from": available_from, "expires_at": expires_at}


def event(seq: int, kind: str, deltas: dict[str, int], at_ms: int = NOV_MS, **extra: Any) -> dict[str, Any]:
    return complete({"id": os.urandom(16).hex(), "epoch": 1, "seq": seq, "type": kind, "at_ms": at_ms, "deltas": deltas,
                     **extra})


def run(events: list[dict[str, Any]], opening: dict[str, int] | None = None) -> tuple[dict[str, CardState], dict]:
    """Fold events over fresh cards (optionally with a dateless opening balance); checks the invariant."""
    numbers = touched_cards(events)
    cards = {n: CardState(n) for n in numbers}
    book = {n: CardLots(n) for n in numbers}
    for number, balance in (opening or {}).items():
        cards[number].balance = balance
        lots.move(book[number], balance, 0, Origin("publish"))
    fold(events, cards, book, "T01")
    for number, card in cards.items():
        book[number].check(card.balance)
    return cards, book


def points_by_expiry(card: CardLots) -> dict[int, int]:
    return {key[0]: lot.points for key, lot in sorted(card.lots.items())}


def test_a_sale_accrual_becomes_a_dated_lot_with_its_source() -> None:
    sale = event(7, "sale", {"C1": 40}, card="C1", lots={"C1": [entry(40, DEC, JAN)]})
    cards, book = run([sale])
    key = (ms(DEC), ms(JAN))
    assert cards["C1"].balance == 40 and list(book["C1"].lots) == [key]
    lot = book["C1"].lots[key]
    shown = lots.public(key, lot)
    assert (shown["points"], shown["available_from"], shown["expires_at"]) == (40, JAN, DEC)
    assert lot.origin == Origin("sale", "T01", 1, 7)


def test_redemption_takes_the_named_lot_first_then_soonest_expiring() -> None:
    accruals = [
        event(1, "sale", {"C1": 100}, lots={"C1": [entry(100, DEC)]}),
        event(2, "sale", {"C1": 100}, lots={"C1": [entry(100, JUN)]}),
        event(3, "adjustment", {"C1": 50}),  # an older terminal: a dateless lot
    ]
    # The terminal names the DEC lot: the server takes it there although JUN expires sooner.
    named = event(4, "sale", {"C1": -30}, lots={"C1": [entry(-30, DEC)]})
    _, book = run([*accruals, named])
    assert points_by_expiry(book["C1"]) == {ms(JUN): 100, ms(DEC): 70, NEVER_MS: 50}
    # A debit naming no dates (or a lot the server no longer holds): soonest-expiring first.
    generic = event(5, "sale", {"C1": -150}, lots={"C1": [entry(-150)]})
    _, book = run([*accruals, named, generic])
    assert points_by_expiry(book["C1"]) == {ms(DEC): 20, NEVER_MS: 50}


def test_lots_not_yet_available_and_expired_ones_come_last() -> None:
    events = [
        event(1, "sale", {"C1": 10}, lots={"C1": [entry(10, JAN)]}),  # expired at MAR
        event(2, "sale", {"C1": 10}, lots={"C1": [entry(10, DEC, JUN)]}),  # available from JUN
        event(3, "sale", {"C1": 10}, lots={"C1": [entry(10, None)]}),  # usable, never expires
    ]
    _, book = run([*events, event(4, "sale", {"C1": -15}, at_ms=MAR_MS)])
    assert points_by_expiry(book["C1"]) == {ms(JAN): 10, ms(DEC): 5}
    # An expiry event takes expired lots first, even when it names none.
    _, book = run([*events, event(4, "expiry", {"C1": -10}, at_ms=MAR_MS)])
    assert points_by_expiry(book["C1"]) == {ms(DEC): 10, NEVER_MS: 10}


def test_double_spend_leaves_a_debt_lot_the_next_credit_pays_first() -> None:
    opening = {"C1": 100}
    spends = [event(s, "sale", {"C1": -80}, lots={"C1": [entry(-80)]}) for s in (1, 2)]
    cards, book = run(spends, opening)
    assert cards["C1"].balance == -60 and cards["C1"].shortfall == 60
    assert {k: lot.points for k, lot in book["C1"].lots.items()} == {DEBT_KEY: -60}
    pay = event(3, "sale", {"C1": 100}, lots={"C1": [entry(100, DEC)]})
    cards, book = run([*spends, pay], opening)
    assert cards["C1"].balance == 40 and points_by_expiry(book["C1"]) == {ms(DEC): 40}


def test_a_return_restores_to_the_lot_dates_and_claws_back() -> None:
    sale = event(
        1, "sale", {"C1": -20}, card="C1", lots={"C1": [entry(-50, JUN), entry(30, DEC)]}
    )  # redeemed 50 of the JUN lot, accrued 30 expiring in DEC
    ret = event(2, "return", {"C1": 20}, card="C1", lots={"C1": [entry(50, JUN), entry(-30, DEC)]})
    before = event(0, "sale", {"C1": 60}, lots={"C1": [entry(60, JUN)]})
    _, book = run([before, sale, ret])
    assert points_by_expiry(book["C1"]) == {ms(JUN): 60}


def test_old_events_without_lots_move_the_dateless_lot() -> None:
    cards, book = run([event(1, "sale", {"C1": 25}), event(2, "sale", {"C1": 5}), event(3, "return", {"C1": -10})])
    assert cards["C1"].balance == 20
    assert {k: lot.points for k, lot in book["C1"].lots.items()} == {DATELESS_KEY: 20}


def test_non_local_referral_credit_opens_a_lot_with_the_referral_dates() -> None:
    ref = {"card": "R1", "points": 12, "cumulative": 0, "local": False, "available_from": JAN, "expires_at": DEC}
    cards, book = run([event(1, "sale", {}, card="C1", referral=[ref])])
    assert cards["R1"].balance == 12 and points_by_expiry(book["R1"]) == {ms(DEC): 12}


def test_a_net_zero_card_still_moves_its_lots() -> None:
    # Redeemed 10 and accrued 10 in one sale: no delta, but the lots change.
    sale = event(2, "sale", {}, lots={"C1": [entry(-10, JUN), entry(10, DEC)]})
    cards, book = run([event(1, "sale", {"C1": 10}, lots={"C1": [entry(10, JUN)]}), sale])
    assert cards["C1"].balance == 10 and points_by_expiry(book["C1"]) == {ms(DEC): 10}


@pytest.mark.parametrize(
    ("lots_field", "message"),
    [
        ([1], "map"),
        ({"C1": []}, "entries"),
        ({"C1": [entry(5, DEC)] * (LOT_ENTRIES_MAX + 1)}, "entries"),
        ({"C1": [{"points": 5, "expires_at": DEC, "extra": 1}]}, "map of"),
        ({"C1": [entry(0, DEC)]}, "non-zero"),
        ({"C1": [entry(5, "2027-12-01T00:00:00")]}, "offset"),
        ({"C1": [entry(5, "yesterday")]}, "ISO"),
        ({"C1": [entry(5, "1960-01-01T00:00:00+00:00")]}, "range"),
        ({"C1": [entry(4, DEC)]}, "add up"),
        ({"C9": [entry(5, DEC)], "C1": [entry(5, DEC)]}, "add up"),
    ],
)
def test_a_malformed_lots_field_is_refused(lots_field: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        run([event(1, "sale", {"C1": 5}, lots=lots_field)])


def test_a_card_read_and_changed_is_rewritten_whole_with_its_origins() -> None:
    sold = Origin("sale", "T02", 1, 4)
    card = CardLots("C1", {(ms(JUN), 0): 10, (ms(DEC), 0): 5, DATELESS_KEY: 7}, origins={(ms(DEC), 0): sold})
    assert card.changes() == (False, [])  # read, not changed: nothing to write
    lots.debit(card, 12, NOV_MS)  # JUN emptied, DEC down to 3
    lots.credit(card, 4, (ms(JAN), 0), Origin("sale", "T01", 1, 9))
    rewrite, rows = card.changes()
    assert rewrite
    assert sorted((key, lot.points, lot.origin.seq) for key, lot in rows) == [
        ((ms(JAN), 0), 4, 9), ((ms(DEC), 0), 3, 4), (DATELESS_KEY, 7, 0)
    ]


def test_a_card_only_credited_is_not_read_and_only_gains_points() -> None:
    events = [
        event(1, "sale", {"C1": 5}, lots={"C1": [entry(5, DEC)]}),
        event(2, "sale", {"C2": 5}, lots={"C2": [entry(-3, JUN), entry(8, DEC)]}),  # a debit inside
        event(3, "sale", {"C3": -1}),
        event(4, "sale", {"C4": 2}),
    ]
    assert lots.needs_lots(events, {"C1": 0, "C2": 9, "C3": 4, "C4": -2, "C5": 0}) == {"C2", "C3", "C4"}
    card = CardLots("C1", loaded=False)
    lots.credit(card, 5, (ms(DEC), 0), Origin("sale", "T01", 1, 1))
    lots.credit(card, 2, (ms(DEC), 0), Origin("sale", "T01", 1, 2))
    rewrite, rows = card.changes()  # rows to append, without reading the stored ones
    assert not rewrite and [(key, lot.points, lot.origin.seq) for key, lot in rows] == [((ms(DEC), 0), 7, 1)]
    with pytest.raises(lots.LotInvariantError, match="not read"):
        lots.debit(card, 1, NOV_MS)


def test_a_card_not_read_is_checked_by_what_it_gained() -> None:
    card = CardLots("C1", loaded=False, balance_before=40)
    lots.credit(card, 7, (ms(DEC), 0), Origin("sale", "T01", 1, 1))
    card.check_after(47)  # the stored lots held 40 (the last writer checked it), +7
    with pytest.raises(lots.LotInvariantError, match="balance went 40 → 48 but its lots gained 7"):
        card.check_after(48)
    card.lots[DEBT_KEY] = lots.Lot(-1)
    with pytest.raises(lots.LotInvariantError, match="gains -1 points"):
        card.check_after(46)
    read = CardLots("C2", {(ms(JUN), 0): 10}, balance_before=10)
    lots.debit(read, 4, NOV_MS)
    read.check_after(6)
    with pytest.raises(lots.LotInvariantError, match="balance 5 differs from the sum of its lots 6"):
        read.check_after(5)


# ---------------------------------------------------------------- random sequences

DATES = st.sampled_from([None, JAN, JUN, DEC])
CARD_NUMBERS = st.sampled_from(["C1", "C2", "C3"])


@st.composite
def random_event(draw: st.DrawFn, seq: int) -> dict[str, Any]:
    """An event as a terminal of any version could send: with or without `lots`, debits that
    overdraw, credits with or without dates, at any time, referral credits."""
    kind = draw(st.sampled_from(["sale", "return", "expiry", "adjustment"]))
    at_ms = draw(st.sampled_from([NOV_MS, MAR_MS, ms(DEC) + 1]))
    moves: dict[str, list[dict[str, Any]]] = {}
    deltas: dict[str, int] = {}
    for number in draw(st.lists(CARD_NUMBERS, max_size=3, unique=True)):
        points = draw(st.lists(st.integers(-300, 300).filter(bool), min_size=1, max_size=4))
        entries = [entry(p, draw(DATES), draw(DATES)) for p in points]
        if sum(points):
            deltas[number] = sum(points)
        if draw(st.booleans()):
            moves[number] = entries  # else: an older terminal, only the delta
    extra: dict[str, Any] = {"lots": moves} if moves else {}
    if kind == "sale" and draw(st.booleans()):
        extra["referral"] = [
            {"card": draw(CARD_NUMBERS), "points": draw(st.integers(0, 50)), "cumulative": 0, "local": False}
            | {"available_from": draw(DATES), "expires_at": draw(DATES)}
        ]
    return event(seq, kind, deltas, at_ms, **extra)


@st.composite
def event_runs(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 25))
    return [draw(random_event(seq)) for seq in range(1, count + 1)]


@settings(max_examples=300, deadline=None)
@given(events=event_runs(), opening=st.dictionaries(CARD_NUMBERS, st.integers(-100, 500)))
def test_random_event_sequences_keep_balance_equal_to_the_lots(events: list[dict[str, Any]], opening: dict) -> None:
    """After each event: balance = Σ lots, only the debt lot is negative, and the debt lot is
    exactly the negative part of the balance (a card with debt has no points left)."""
    numbers = sorted(set(touched_cards(events)) | set(opening))
    cards = {n: CardState(n) for n in numbers}
    book = {n: CardLots(n) for n in numbers}
    for number, balance in opening.items():
        cards[number].balance = balance
        lots.move(book[number], balance, 0, Origin("publish"))
    shortfall = 0
    for one in events:
        shortfall += sum(s.points for s in fold([one], cards, book, "T01"))
        for number, card in cards.items():
            book[number].check(card.balance)  # Σ lots and the signs
            debt = book[number].lots.get(DEBT_KEY)
            assert (debt.points if debt else 0) == min(0, card.balance)
    assert shortfall == sum(c.shortfall for c in cards.values())
