"""A terminal applying hostile update pages from its feed (`wire.decode_updates` →
`apply_page` into a real ledger and rules file): rules nested 500 deep, rules text that is
not TOML or not a program, 10^30 prices and balances, lone surrogates in skus and card
numbers, unknown fields, cursors at the edge. Property: the page is applied, or refused with
one ProtocolError/SyncError line and then neither the ledger nor the rules file changed."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol import wire
from terminal.ledger import Ledger
from terminal.sync import SyncError
from terminal.sync.updates import apply_page

NOW = "2026-11-23T10:00:00+03:00"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
GOOD_RULES = '[program]\npoint_value = 100\n\n[[rule]]\nid = "r1"\nkind = "discount"\npercent = 5\n'
Env = tuple[Ledger, Path]


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with tempfile.TemporaryDirectory(prefix="posterm-fuzz-feed-") as tmp:
        led = Ledger.init(Path(tmp) / "led", "T01", sync=False)
        rules_file = Path(tmp) / "rules.toml"
        rules_file.write_text(GOOD_RULES)
        yield led, rules_file
        led.close()


def state(env: Env) -> Any:
    ledger, rules_file = env
    with ledger.store.env.begin() as txn:
        stored = {name: list(txn.cursor(db=db)) for name, db in ledger.store.dbs.items()}
    return stored, rules_file.read_bytes(), sorted(p.name for p in rules_file.parent.iterdir())


def apply(env: Env, raw: dict[str, Any]) -> str:
    try:
        # surrogatepass: a lone surrogate goes out as the invalid UTF-8 a hostile server would send
        data = msgpack.Packer(use_bin_type=True, unicode_errors="surrogatepass").pack(raw)
    except (OverflowError, ValueError, TypeError):
        return "unpackable"
    before = state(env)
    try:
        apply_page(env[0], wire.decode_updates(data), env[1], NOW)
    except (wire.ProtocolError, SyncError) as exc:
        assert str(exc) and "\n" not in str(exc).strip(), exc
        assert state(env) == before
        return "refused"
    return "applied"


def page(**fields: Any) -> dict[str, Any]:
    return {"v": 1, "cursor": 1, "more": False, **fields}


SEEDS = [
    page(rules={"version": "deep", "text": "x = " + "[" * 500 + "]" * 500 + "\n"}),
    page(rules={"version": "deep-table", "text": "x = " + "{a = " * 500 + "1" + "}" * 500 + "\n"}),
    page(rules={"version": "not-toml", "text": "[program\n"}),
    page(rules={"version": "no-program", "text": '[[rule]]\nid = "x"\nkind = "nonsense"\n'}),
    page(rules={"version": "\ud800", "text": GOOD_RULES}),
    page(rules="not a table"),
    page(catalog=[{"sku": "A\ud800", "price": 100, "name": "x"}]),
    page(catalog=[{"sku": "A1", "price": 10**30, "name": "x"}]),
    page(cards=[{"number": "7700000000026", "version": 1, "balance": -(10**30)}]),
    page(cards=[{"number": "\ud83d", "version": 1, "balance": 1}]),
    page(cards=[{"number": "C1", "version": 2**64 - 1, "balance": 1, "extra": {"a": [1] * 100}}]),
    page(cursor=2**64 - 1, cards=[{"number": "C1", "version": 1, "balance": 1}]),
    page(versions={"rules": "x" * 100_000}),
]


@pytest.mark.parametrize("raw", SEEDS, ids=[f"seed{i}" for i in range(len(SEEDS))])
def test_the_issue_seeds_apply_or_change_nothing(env: Env, raw: dict[str, Any]) -> None:
    assert apply(env, raw) in ("applied", "refused", "unpackable")


def test_bad_rules_in_a_page_keep_the_last_good_rules(env: Env) -> None:
    _, rules_file = env
    good = rules_file.read_bytes()
    for raw in SEEDS[:5]:  # refused whole, or the rest of the page applied: the rules stay
        assert apply(env, raw) in ("applied", "refused")
        assert rules_file.read_bytes() == good


text = st.one_of(st.text(max_size=12), st.sampled_from(["\ud800", "A1", "7700000000026", ""]))
number = st.one_of(st.integers(-(2**64), 2**64 - 1), st.floats(), st.none(), text)
rules_text = st.one_of(st.just(GOOD_RULES), st.text(max_size=200),
                       st.integers(1, 600).map(lambda n: "x = " + "[" * n + "]" * n))
hostile_page = st.fixed_dictionaries(
    {"v": st.just(1), "cursor": st.integers(0, 2**64 - 1), "more": st.booleans()},
    optional={
        "rules": st.fixed_dictionaries({"version": text, "text": rules_text}),
        "catalog": st.lists(st.fixed_dictionaries({"sku": text, "price": number, "name": text}), max_size=3),
        "cards": st.lists(st.fixed_dictionaries({"number": text, "version": number, "balance": number}),
                          max_size=3),
    },
)


@FUZZ
@given(hostile_page)
@example(page(rules={"version": "v1", "text": GOOD_RULES}))
def test_hostile_pages_apply_or_change_nothing(env: Env, raw: dict[str, Any]) -> None:
    apply(env, raw)
