"""`posterm quote | refund | rules check` as a technician runs them: a separate process, JSON out,
bad input → exit code 2 with exactly one line on stderr and never a traceback. The example rules
files in examples/ must give the numbers of spec §10."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NOW = "2026-12-01T10:00:00+03:00"
EXIT_REFUSED = 2


@pytest.fixture(params=["c", "py"])
def engine_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The CLI's environment, once with the compiled engine and once with POSTERM_PURE=1."""
    env = {k: v for k, v in os.environ.items() if k != "POSTERM_PURE"}
    env["PYTHONPATH"] = str(REPO)
    if request.param == "py":
        env["POSTERM_PURE"] = "1"
    return env


def posterm(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "POSTERM_PURE"}
        env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "terminal.cli", *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def quote_json(*args: Any, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = posterm("quote", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def example(rules: str, name: str, *extra: Any, env: dict[str, str] | None = None) -> dict:
    return quote_json("--rules", EXAMPLES / f"{rules}.toml",
                      "--cart", EXAMPLES / f"cart-{name}.json",
                      "--card", EXAMPLES / f"card-{name}.json", "--now", NOW, *extra, env=env)


def assert_refused(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == EXIT_REFUSED
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.endswith("\n"), done.stderr
    assert done.stderr.startswith("posterm: ")
    for fragment in fragments:
        assert fragment in done.stderr


def write(path: Path, content: Any) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- spec §10


def test_example_cumulative(engine_env) -> None:
    q = example("cumulative", "cumulative", env=engine_env)
    # cumulative 6 650 000 ≥ 3 000 000 → 7 % of 1 000 000 = 70 000; 6 650 000 + 930 000
    assert (q["subtotal"], q["discount"], q["total"], q["to_pay"]) == (
        1_000_000, 70_000, 930_000, 930_000)
    assert q["cumulative_after"] == 7_580_000
    assert q["lines"][0]["rules"] == ["cumulative"]


def test_example_standard_silver(engine_env) -> None:
    q = example("standard-silver", "standard", env=engine_env)
    # 5 % of 1 200 000 = 60 000; 2 % of 1 140 000 = 22 800 = 228 points; receipt ≥ 1 000 000
    assert (q["discount"], q["total"], q["to_pay"]) == (60_000, 1_140_000, 1_140_000)
    assert q["redeem"] == {"points": 0, "amount": 0, "max_points": 5_700}
    assert q["accrual"] == {"points": 228, "available_from": NOW,
                            "expires_at": "2027-12-01T10:00:00+03:00"}
    assert q["messages"] == [{"rule": "silver-offer", "text": "Issue a Silver card"}]
    assert q["card_type_after"] == "silver"
    assert q["cumulative_after"] == 1_140_000


def test_example_standard_silver_paying_with_points(engine_env) -> None:
    q = example("standard-silver", "standard", "--redeem", "max", env=engine_env)
    # floor(1 140 000 × 50 % / 100) = 5 700 points = 570 000; 2 % of 570 000 = 114 points
    assert q["redeem"] == {"points": 5_700, "amount": 570_000, "max_points": 5_700}
    assert q["to_pay"] == 570_000
    assert q["accrual"]["points"] == 114
    assert q["lines"][0] | {"rules": None} == {
        "sku": "FRIDGE-1", "qty_milli": 1_000, "price": 1_200_000, "amount": 1_200_000,
        "discount": 60_000, "redeem_amount": 570_000, "paid": 570_000, "accrual_base": 570_000,
        "rules": None, "vat_rate": None, "vat_amount": 0}


def test_example_standard_silver_paying_with_some_points() -> None:
    q = example("standard-silver", "standard", "--redeem", "1000")
    # 1 000 points = 100 000; to_pay 1 040 000; 2 % → 20 800 / 100 = 208 points
    assert (q["redeem"]["points"], q["to_pay"], q["accrual"]["points"]) == (1_000, 1_040_000, 208)


GOLD_POLICIES = {"max": 30_000, "sum": 47_000, "multiply": 41_900, "priority": 17_000,
                 "min": 17_000}


@pytest.mark.parametrize(("policy", "expected"), GOLD_POLICIES.items(), ids=GOLD_POLICIES.keys())
def test_example_gold_promo_under_each_root_policy(tmp_path: Path, policy: str, expected: int):
    text = (EXAMPLES / "gold-promo.toml").read_text(encoding="utf-8")
    assert 'discount_combine = "max"' in text
    rules = write(tmp_path / "gold.toml", text.replace('discount_combine = "max"',
                                                        f'discount_combine = "{policy}"'))
    q = quote_json("--rules", rules, "--cart", EXAMPLES / "cart-gold.json",
                   "--card", EXAMPLES / "card-gold.json", "--now", NOW)
    # 17 % = 17 000, 30 % = 30 000 of 100 000; multiply: 17 000 + 30 % of 83 000 = 41 900
    assert q["discount"] == expected
    assert q["total"] == 100_000 - expected


def test_example_gold_promo(engine_env) -> None:
    q = example("gold-promo", "gold", env=engine_env)
    assert (q["discount"], q["total"], q["lines"][0]["rules"]) == (30_000, 70_000, ["acme-30"])


def test_example_points_per_100(engine_env) -> None:
    q = example("points-per-100", "points", env=engine_env)
    # floor(1 234 567 / 10 000) = 123; available 14 days later, then 180 days
    assert q["to_pay"] == 1_234_567
    assert q["accrual"] == {"points": 123, "available_from": "2026-12-15T10:00:00+03:00",
                            "expires_at": "2027-06-13T10:00:00+03:00"}


@pytest.mark.parametrize("name", ["cumulative", "standard-silver", "gold-promo", "points-per-100"])
def test_examples_pass_rules_check(name: str) -> None:
    done = posterm("rules", "check", EXAMPLES / f"{name}.toml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{EXAMPLES / name}.toml: OK — ")


def test_rules_check_summary() -> None:
    done = posterm("rules", "check", EXAMPLES / "standard-silver.toml")
    lines = done.stdout.splitlines()
    assert lines[0].endswith("OK — 3 rules (1 accrual, 1 discount, 1 message), 0 groups")
    assert lines[2] == "redeem: up to 50 %, receipt ≥ 0, balance ≥ 0, scope all"


# ----------------------------------------------------------------------------- refund


def test_refund_of_a_quoted_receipt(tmp_path: Path) -> None:
    sale = example("standard-silver", "standard", "--redeem", "max")
    quote_file = write(tmp_path / "quote.json", sale)
    cart = write(tmp_path / "return.json", {"lines": [{"line": 0, "qty": 1}]})
    done = posterm("refund", "--rules", EXAMPLES / "standard-silver.toml",
                   "--quote", quote_file, "--return", cart)
    assert done.returncode == 0, done.stderr
    refund = json.loads(done.stdout)
    # the whole receipt back: paid 570 000, 5 700 points restored, 114 clawed, cumulative 1 140 000
    assert (refund["money"], refund["points_restored"], refund["points_clawed"],
            refund["cumulative_decrease"]) == (570_000, 5_700, 114, 1_140_000)


def test_refund_of_part_of_a_weighted_line(tmp_path: Path) -> None:
    rules = write(tmp_path / "r.toml", "")
    cart = write(tmp_path / "cart.json",
                 '{"lines": [{"sku": "CHEESE", "price": 100000, "qty": 0.35}]}')  # JSON decimal
    sale = quote_json("--rules", rules, "--cart", cart, "--now", NOW)
    assert sale["lines"][0]["amount"] == 35_000
    quote_file = write(tmp_path / "quote.json", sale)
    ret = write(tmp_path / "ret.json", '{"lines": [{"line": 0, "qty": 0.1}]}')
    done = posterm("refund", "--rules", rules, "--quote", quote_file, "--return", ret)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["money"] == 10_000  # 35 000 × 0.1 / 0.35


def test_refund_refusal(tmp_path: Path) -> None:
    sale = write(tmp_path / "quote.json", example("cumulative", "cumulative"))
    ret = write(tmp_path / "ret.json", {"lines": [{"line": 0, "qty": 2}]})
    done = posterm("refund", "--rules", EXAMPLES / "cumulative.toml", "--quote", sale,
                   "--return", ret)
    assert_refused(done, "line 0 has 1 left to return, asked 2")


def test_refund_return_must_be_an_object(tmp_path: Path) -> None:
    sale = write(tmp_path / "quote.json", example("cumulative", "cumulative"))
    ret = write(tmp_path / "ret.json", [1])
    done = posterm("refund", "--rules", EXAMPLES / "cumulative.toml", "--quote", sale,
                   "--return", ret)
    assert_refused(done, "the return must be a JSON object")


# ----------------------------------------------------------------------------- refusals

BAD_CARTS = {
    "unknown field": ({"lines": [{"sku": "a", "price": 1, "qty": 1, "colour": "red"}]},
                      "cart line 0: unknown field 'colour'"),
    "negative price": ({"lines": [{"sku": "a", "price": -1, "qty": 1}]},
                       "field 'price' must be between 0 and"),
    "price with decimals": ('{"lines": [{"sku": "a", "price": 1.5, "qty": 1}]}',
                            "field 'price' must be whole minor units"),
    "qty with 4 decimals": ('{"lines": [{"sku": "a", "price": 1, "qty": 0.0005}]}',
                            "field 'qty' has more than 3 decimals"),
    "malformed JSON": ('{"lines": [', "the cart file is not valid JSON"),
    "NaN": ('{"lines": [{"sku": "a", "price": 1, "qty": NaN}]}', "the cart file is not valid JSON"),
}


@pytest.mark.parametrize(("cart", "message"), BAD_CARTS.values(), ids=BAD_CARTS.keys())
def test_bad_cart(tmp_path: Path, cart: Any, message: str) -> None:
    path = write(tmp_path / "cart.json", cart)
    done = posterm("quote", "--rules", EXAMPLES / "cumulative.toml", "--cart", path, "--now", NOW)
    assert_refused(done, message)


BAD_RULES = {
    "unknown group": ('[[rule]]\nid = "r"\nkind = "discount"\npercent = 5\ngroup = "promo"\n',
                      "rule 'r': field 'group': no [[group]] has id 'promo'"),
    "group cycle": ('[[group]]\nid = "a"\nparent = "b"\n[[group]]\nid = "b"\nparent = "a"\n',
                    "group 'a': field 'parent': groups form a cycle"),
    "invalid TOML": ("[[rule]\n", "not valid TOML"),
    "percent 3 decimals": ('[[rule]]\nid = "r"\nkind = "discount"\npercent = 5.125\n',
                           "rule 'r': field 'percent': at most 2 decimals"),
}


@pytest.mark.parametrize(("text", "message"), BAD_RULES.values(), ids=BAD_RULES.keys())
@pytest.mark.parametrize("command", ["quote", "rules check"])
def test_bad_rules(tmp_path: Path, text: str, message: str, command: str) -> None:
    rules = write(tmp_path / "rules.toml", text)
    if command == "quote":
        done = posterm("quote", "--rules", rules, "--cart", EXAMPLES / "cart-gold.json",
                       "--now", NOW)
    else:
        done = posterm("rules", "check", rules)
    assert_refused(done, str(rules), message)


def test_parent_naming_the_implicit_root_is_a_clean_refusal(tmp_path: Path) -> None:
    rules = write(tmp_path / "rules.toml", '[[group]]\nid = "g"\nparent = "(discount root)"\n')
    assert_refused(posterm("rules", "check", rules))


def test_missing_files(tmp_path: Path) -> None:
    absent = tmp_path / "absent.json"
    assert_refused(posterm("quote", "--rules", EXAMPLES / "cumulative.toml", "--cart", absent,
                           "--now", NOW), f"{absent}: cannot read the cart file")
    assert_refused(posterm("rules", "check", tmp_path / "absent.toml"),
                   "cannot read the rules file")
    assert_refused(posterm("quote", "--rules", EXAMPLES / "cumulative.toml",
                           "--cart", EXAMPLES / "cart-cumulative.json", "--card", absent,
                           "--now", NOW), "cannot read the card file")


@pytest.mark.parametrize(("args", "message"), [
    (["--now", "2026-12-01T10:00:00"], "has no UTC offset"),
    (["--now", NOW, "--redeem", "all"], "expected a number of points or 'max'"),
    (["--now", NOW, "--card", str(EXAMPLES / "cart-gold.json")], "card: unknown field 'lines'"),
])
def test_bad_arguments(args: list[str], message: str) -> None:
    done = posterm("quote", "--rules", EXAMPLES / "gold-promo.toml",
                   "--cart", EXAMPLES / "cart-gold.json", *args)
    assert_refused(done, message)


def test_missing_subcommand_is_a_one_line_refusal() -> None:
    assert_refused(posterm(), "posterm: ")
