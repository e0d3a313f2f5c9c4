"""Pricing core benchmarks (issue 2): W1 and W2 quotes on both engines, W3 compile, and the W1
result floor (what building the quote's dicts alone costs, the bound on any engine's ratio).

Run with `make bench`; the README table comes from tests/bench/report.py over the same run.
Under the default test run (benchmarks disabled) each body runs once, as a smoke test.
"""

from __future__ import annotations

import pytest

import core
from core import fallback
from tests.bench import workloads
from tests.conftest import _cengine

IMPLEMENTATIONS = [pytest.param(fallback.Engine, id="pure")]
if _cengine is not None:
    IMPLEMENTATIONS.insert(0, pytest.param(_cengine.Engine, id="compiled"))


@pytest.mark.parametrize("engine_cls", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", ["W1", "W2"])
def test_quote(benchmark, engine_cls, name) -> None:
    tree, cart, card = workloads.w1() if name == "W1" else workloads.w2()
    engine = engine_cls(core.compile_rules(tree))
    benchmark.group = f"{name} quote"
    quote = benchmark(engine.quote, cart, card, workloads.NOW, "max")
    # the workloads are meant to exercise discounts, redemption and messages: keep them so
    assert quote["discount"] > 0 and quote["redeem"]["points"] > 0 and quote["messages"]
    # and the v2 parts: a level card, a coupon used by its rule, a `buy` rule, VAT
    assert quote["level"] is not None and quote["coupons"][0]["used"] and quote["vat"]
    assert any("two-for-one" in line["rules"] for line in quote["lines"])


def test_compile_w3(benchmark) -> None:
    tree, _, _ = workloads.w2()
    benchmark.group = "W3 compile"
    program = benchmark(core.compile_rules, tree)
    assert len(program.rules) == 2002  # + a coupon rule and a buy rule


@pytest.mark.skipif(_cengine is None, reason="compiled engine not built")
def test_quote_w4(benchmark) -> None:
    """W4: 1 000 lines, 10 000 rules over 1 000 categories, every v2 feature (target ≤ 5 ms)."""
    tree, cart, card = workloads.w4()
    engine = _cengine.Engine(core.compile_rules(tree))
    benchmark.group = "W4 quote"
    quote = benchmark(engine.quote, cart, card, workloads.NOW, "max")
    assert quote["discount"] > 0 and quote["redeem"]["points"] > 0 and quote["level"] is not None
    assert any(c["used"] for c in quote["coupons"]) and quote["issued_coupons"] and quote["vat"]
    assert quote == fallback.Engine(engine.program).quote(cart, card, workloads.NOW, "max")


def test_compile_w4(benchmark) -> None:
    tree, _, _ = workloads.w4()
    benchmark.group = "W4 compile"
    program = benchmark(core.compile_rules, tree)
    assert len(program.rules) == 10_000 and program.levels and program.awards


@pytest.mark.skipif(_cengine is None, reason="compiled engine not built")
def test_quote_result_floor(benchmark, tmp_path_factory) -> None:
    """Building W1's result — 20 line dicts and the quote around them — from values held in C.
    In the W1 group, pure twin / this = the ratio an engine with free reading and pricing would get."""
    import pyximport

    pyximport.install(build_dir=str(tmp_path_factory.mktemp("pyxbld")), language_level=3)
    from tests.bench import result_floor

    tree, cart, card = workloads.w1()
    quote = _cengine.Engine(core.compile_rules(tree)).quote(cart, card, workloads.NOW, "max")
    floor = result_floor.ResultFloor(quote)
    benchmark.group = "W1 quote"
    assert benchmark(floor.build) == quote  # the same result, key for key
