"""Random action sequences against the checkout state machine and a real ledger: whatever the
cashier does, the ledger's holds match the open checkout, refused actions change nothing, every
pay is one sale, and the ledger's own verification passes."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import core
from terminal.checkout import CheckoutError, Register
from terminal.demo_run import DATA
from terminal.ledger import Ledger, LedgerError

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
CODES = ["4006381333931", "4600000000015", "4600000000022", "1234567890128"]
CARDS = ["7700000000026", "7700000000033", "7700000000040", "7799999999999"]
PROGRAM = core.load_rules(DATA / "rules.toml")


class CheckoutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="posterm-states-"))
        self.ledger = Ledger.init(self.dir / "ledger", "T01", sync=False)
        self.ledger.import_catalog(DATA / "catalog.csv", NOW)
        self.ledger.import_cards(DATA / "cards.csv", NOW)
        self.reg = Register(terminal_id="T01", store="S01", ledger=self.ledger, program=PROGRAM,
                            record_path=self.dir / "checkout.json", idle_timeout_s=300, hold_timeout_s=900,
                            publish=lambda kind, data: None)
        self.now = NOW
        self.sales = 0

    def teardown(self) -> None:
        report = self.ledger.verify()
        self.ledger.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        assert report["ok"], report["problems"]

    def tick(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now

    def attempt(self, action: Any, *args: Any) -> None:
        """A refused action must leave the checkout exactly as it was."""
        before = self.reg.view()
        try:
            action(*args)
        except (CheckoutError, LedgerError):
            assert self.reg.view() == before

    @rule(code=st.sampled_from(CODES))
    def scan(self, code: str) -> None:
        self.attempt(lambda: self.reg.add(self.reg.product_line(code), self.tick()))

    @rule(index=st.integers(0, 3))
    def remove(self, index: int) -> None:
        self.attempt(self.reg.remove, index, self.tick())

    @rule(number=st.sampled_from(CARDS))
    def card(self, number: str) -> None:
        self.attempt(self.reg.attach_card, number, self.tick())

    @rule(points=st.sampled_from([0, 1, 500, 3000, 20000, "max"]))
    def redeem(self, points: int | str) -> None:
        self.attempt(self.reg.set_redeem, points, self.tick())

    @rule()
    def begin_payment(self) -> None:
        self.attempt(self.reg.begin_payment, self.tick())

    @rule()
    def back_to_cart(self) -> None:
        self.attempt(self.reg.back_to_cart, self.tick())

    @rule()
    def cancel(self) -> None:
        self.attempt(self.reg.cancel, self.tick())

    @precondition(lambda self: self.reg.current is not None and bool(self.reg.current.lines))
    @rule()
    def pay(self) -> None:
        sale = self.reg.pay(None, "card", self.tick())
        self.reg.finish()
        self.sales += 1
        assert self.ledger.receipt(sale["receipt"]) is not None

    @invariant()
    def holds_match_the_open_checkout(self) -> None:
        co = self.reg.current
        for number in CARDS[:3]:
            held = self.ledger.card(number, self.now)["held"]
            want = co.quote["redeem"]["points"] if co and co.card == number and co.quote else 0
            assert held == want, (number, held, want)

    @invariant()
    def one_receipt_per_pay_and_a_consistent_ledger(self) -> None:
        assert self.ledger.stats()["entries"]["receipts"] == self.sales


CheckoutMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_checkout_state_machine = CheckoutMachine.TestCase
