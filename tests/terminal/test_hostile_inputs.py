"""Issue 12's smaller hostile inputs: scale labels of 0 g or 0.00, a line at its quantity limit,
and provisioning values that would write a config the daemon cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.classify import classify_line
from drivers.codes import CodeRules, GS1Layout, gtin_check_digit
from drivers.events import RejectedInput, ScanEvent
from terminal.checkout import QTY_MILLI_MAX, BadRequest, CheckoutError
from terminal.cli import main
from terminal.demo_run import DATA

from .test_daemon_checkout import MILK, NOW, ledger, make_register  # noqa: F401  (ledger: the fixture)

RULES = CodeRules(gs1={"21": GS1Layout("21", 5, "weight_g", 5), "22": GS1Layout("22", 4, "price_minor", 6)})


def _label(body12: str) -> str:
    return body12 + str(gtin_check_digit(body12))


@pytest.mark.parametrize("body", ["210012300000", "220012000000"])
def test_a_zero_weight_or_zero_price_label_is_rejected_input(body):
    event = classify_line("scanner0", _label(body), RULES)
    assert isinstance(event, RejectedInput) and "weigh the item again" in event.reason


def test_a_real_weight_label_still_scans():
    event = classify_line("scanner0", _label("210012300350"), RULES)
    assert isinstance(event, ScanEvent) and event.weight_g == 350


def test_the_checkout_refuses_a_zero_label_from_any_road(ledger, tmp_path):  # noqa: F811
    reg = make_register(ledger, tmp_path)
    for kwargs in ({"qty_milli": 0}, {"price": 0}):
        with pytest.raises(BadRequest, match=r"0 g or 0\.00 is refused"):
            reg.product_line("2100123000000", weight_code="2100123", **kwargs)


def test_adding_past_the_quantity_limit_is_refused_naming_it(ledger, tmp_path):  # noqa: F811
    reg = make_register(ledger, tmp_path)
    line = reg.product_line(MILK)
    reg.add({**line, "qty_milli": QTY_MILLI_MAX, "qty": "1000000"}, NOW)
    with pytest.raises(CheckoutError, match="limit of 1000000 a line; nothing changed") as refused:
        reg.add(reg.product_line(MILK), NOW)
    assert refused.value.status == 409
    assert [ln["qty"] for ln in reg.view()["lines"]] == ["1000000"]


def _provision(tmp_path: Path, *extra: str) -> int:
    return main(["provision", "--config", str(tmp_path / "etc" / "terminal.toml"), "--terminal", "T07",
                 "--store", "S01", "--state-dir", str(tmp_path / "state"), "--socket", str(tmp_path / "api.sock"),
                 *extra])


@pytest.mark.parametrize("extra", [
    ("--store-name", 'Shop"\n[evil]\nx=1'),
    ("--store-name", "Shop\x7f"),
    ("--store", "S01\x1b[2J"),
    ("--cards", "BAD_CARDS"),
    ("--catalog", "BAD_CARDS"),
    ("--rules", "DEEP_RULES"),
])
def test_provision_refuses_before_writing_anything(tmp_path, capsys, extra):
    bad_cards = tmp_path / "cards.csv"
    bad_cards.write_text("number,type,holder,cumulative,balance,expires_at,referrer\nC1,standard,A,x,1,,\n")
    deep = tmp_path / "rules.toml"
    deep.write_text("x = " + "[" * 500 + "]" * 500)
    args = [a.replace("BAD_CARDS", str(bad_cards)).replace("DEEP_RULES", str(deep)) for a in extra]
    assert _provision(tmp_path, "--rules", str(DATA / "rules.toml"), *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "etc").exists() and not (tmp_path / "state").exists()


def test_provision_escapes_quotes_and_backslashes(tmp_path, capsys):
    from terminal.config import load_config

    assert _provision(tmp_path, "--store-name", 'Shop "Nice" \\ ü') == 0
    assert load_config(tmp_path / "etc" / "terminal.toml").store_name == 'Shop "Nice" \\ ü'


@pytest.mark.parametrize("text", ["[" * 30000 + "]" * 30000, '{"a":' * 33 + "1" + "}" * 33, '["\\ud800"]'])
def test_json_bodies_are_bounded_before_the_parser_recurses(text):
    from terminal.jsonio import loads_bounded

    with pytest.raises(ValueError, match=r"deep|surrogate"):
        loads_bounded(text)
    assert loads_bounded('{"a":' * 32 + '"\\ud83d\\ude00"' + "}" * 32)  # a paired escape is an emoji
