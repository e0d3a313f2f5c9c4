"""Property tests: random sequences of sales, returns, adjustments, holds and expiry sweeps keep
balance = Σ lots on every card, the outbox gap-free, and returns add up to their sales."""

from __future__ import annotations

import datetime as dt
import tempfile

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from terminal.ledger import Ledger, LedgerBalanceError, LedgerInputError

from .conftest import add_card, tenders

START = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
CARDS = ["C1", "C2", "C3"]

op = st.one_of(
    st.tuples(
        st.just("sale"),
        st.sampled_from([*CARDS, None]),
        st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 4)), min_size=1, max_size=3),
        st.sampled_from([None, 1, 50, "max"]),
    ),
    st.tuples(st.just("return"), st.integers(0, 50), st.integers(0, 3), st.integers(1, 4)),
    st.tuples(
        st.just("adjust"),
        st.sampled_from(CARDS),
        st.integers(-500, 500),
        st.sampled_from([None, 30, 400]),
    ),
    st.tuples(st.just("hold"), st.sampled_from(CARDS), st.integers(1, 300)),
    st.tuples(st.just("time"), st.integers(1, 200)),
)


def _apply(led: Ledger, engine, step: tuple, i: int, now: dt.datetime, sales: list) -> dt.datetime:
    kind = step[0]
    iso = now.isoformat()
    try:
        if kind == "sale":
            _, card, lines, redeem = step
            cart = {
                "store": "S01",
                "lines": [{"sku": f"P{j}", "price": p, "qty": q} for j, (p, q) in enumerate(lines)],
            }
            quote = engine.quote(
                cart, led.card_for_quote(card, iso) if card else None, iso, redeem if card else None
            )
            led.commit_sale(f"s{i}", quote, card, tenders(quote), iso)
            sales.append((f"s{i}", quote))
        elif kind == "return" and sales:
            _, pick, line, qty = step
            receipt_id, quote = sales[pick % len(sales)]
            line %= len(quote["lines"])
            led.commit_return(f"r{i}", receipt_id, [{"line": line, "qty": qty}], iso)
        elif kind == "adjust" and step[2]:
            end = None if step[3] is None else (now + dt.timedelta(days=step[3])).isoformat()
            led.adjust(f"a{i}", step[1], step[2], "property", "t", iso, end)
        elif kind == "hold":
            led.hold(
                f"h{i}", step[1], f"K{i}", step[2], iso, (now + dt.timedelta(minutes=5)).isoformat()
            )
        elif kind == "time":
            now += dt.timedelta(days=step[1])
            led.expire(f"e{i}", now.isoformat())
        event(f"done: {kind}")
    except (LedgerBalanceError, LedgerInputError):
        event(f"refused: {kind}")  # a refusal must change nothing: the checks below see it
    return now


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(op, min_size=1, max_size=25))
def test_random_operations_keep_every_invariant(engine, steps):
    with tempfile.TemporaryDirectory() as path:
        led = Ledger.init(path, "T01", map_size_bytes=32 * 1024 * 1024, sync=False)
        for number in CARDS:
            add_card(led, number, 300, now=START.isoformat())
        now, sales = START, []
        for i, step in enumerate(steps):
            before = led.meta()["next_seq"]
            now = _apply(led, engine, step, i, now, sales)
            assert led.meta()["next_seq"] >= before
            for number in CARDS:
                card = led.card(number, now.isoformat())
                assert card["balance"] == sum(lot["points"] for lot in card["lots"])
                assert all(lot["points"] > 0 or lot["debt"] for lot in card["lots"])
        result = led.verify()
        assert result["ok"], result["problems"]
        for receipt_id, quote in sales:
            refunds = led.receipt(receipt_id)["refunds"]
            assert sum(r["money"] for r in refunds) <= quote["to_pay"]
        led.close()


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(0, 5000),
    st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 5)), min_size=1, max_size=4),
    st.sampled_from([None, 7, "max"]),
    st.randoms(use_true_random=False),
)
def test_returning_everything_in_any_split_restores_the_card_exactly(
    engine, balance, lines, redeem, rnd
):
    with tempfile.TemporaryDirectory() as path:
        led = Ledger.init(path, "T01", map_size_bytes=32 * 1024 * 1024, sync=False)
        iso = START.isoformat()
        add_card(led, "C1", balance, now=iso)
        before = led.card("C1", iso)
        cart = {
            "store": "S01",
            "lines": [{"sku": f"P{j}", "price": p, "qty": q} for j, (p, q) in enumerate(lines)],
        }
        quote = engine.quote(cart, led.card_for_quote("C1", iso), iso, redeem)
        led.commit_sale("s", quote, "C1", tenders(quote), iso)
        left = {i: q * 1000 for i, (_, q) in enumerate(lines)}
        n = 0
        while left:
            line = rnd.choice(sorted(left))
            qty = rnd.randint(1, left[line] // 1000) * 1000
            led.commit_return(f"r{n}", "s", [{"line": line, "qty_milli": qty}], iso)
            left[line] -= qty
            if not left[line]:
                del left[line]
            n += 1
        after = led.card("C1", iso)
        assert after["balance"] == before["balance"]
        assert after["cumulative"] == before["cumulative"]
        assert after["lots"] == before["lots"]
        refunds = led.receipt("s")["refunds"]
        assert sum(r["money"] for r in refunds) == quote["to_pay"]
        assert led.verify()["ok"]
        led.close()
