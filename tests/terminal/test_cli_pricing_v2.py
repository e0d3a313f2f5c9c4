"""The v2 seed scenarios of examples/ (spec §11–§17) through `posterm quote` and `rules check`,
on both engines: each file with its cart and card gives the numbers its header states."""

from __future__ import annotations

from typing import Any

import pytest

from tests.terminal.test_cli_pricing import EXAMPLES, NOW, posterm, quote_json
from tests.terminal.test_cli_pricing import engine_env as engine_env  # the c / py fixture

V2_EXAMPLES = ["levels-birthday", "coupons", "three-for-two", "capped-promo", "awards"]


def v2_example(rules: str, name: str, *extra: Any, now: str = NOW, env: dict[str, str] | None = None) -> dict:
    return quote_json("--rules", EXAMPLES / f"{rules}.toml", "--cart", EXAMPLES / f"cart-{name}.json",
                      "--card", EXAMPLES / f"card-{name}.json", "--now", now, *extra, env=env)


def test_levels_birthday_week_and_welcome_offer(engine_env) -> None:
    q = v2_example("levels-birthday", "levels", env=engine_env)
    # birthday week 10 % beats bronze 3 %; 1 % of 900.00 = 9 points + 500 welcome points
    assert (q["discount"], q["total"]) == (10_000, 90_000)
    assert q["lines"][0]["rules"] == ["birthday-week"]
    assert q["accrual"]["points"] == 509
    assert q["accrual"]["expires_at"] == "2026-12-31T10:00:00+03:00"  # the welcome rule's 30 days
    assert q["cumulative_after"] == 3_040_000
    assert q["card_type_after"] == "silver"
    assert q["level"] == {"type": "silver", "next": "gold", "to_next": 6_960_000}
    assert q["vat"] == [{"rate": 2_000, "paid": 90_000, "amount": 15_000}]


def test_levels_after_the_birthday_week(engine_env) -> None:
    q = v2_example("levels-birthday", "levels", now="2026-12-10T10:00:00+03:00", env=engine_env)
    assert q["lines"][0]["rules"] == ["level-discount"] and q["discount"] == 3_000


def test_spring_coupon_and_next_visit_coupon(engine_env) -> None:
    q = v2_example("coupons", "coupons", now="2026-04-10T10:00:00+03:00", env=engine_env)
    assert [line["discount"] for line in q["lines"]] == [30_000, 0]
    assert q["coupons"] == [{"code": "SPR-0001", "series": "spring", "used": True}]
    assert q["issued_coupons"] == [{"rule": "issue-next-visit", "series": "next-visit", "valid_days": 30}]


def test_three_for_two_on_a_category(engine_env) -> None:
    q = v2_example("three-for-two", "three-for-two", env=engine_env)
    assert [line["discount"] for line in q["lines"]] == [0, 9_000, 0, 12_000]
    assert q["discount"] == 21_000
    assert q["vat"] == [{"rate": 1_000, "paid": 54_000, "amount": 2_727 + 2_182},
                        {"rate": 2_000, "paid": 24_000, "amount": 4_000}]


def test_capped_promo_group(engine_env) -> None:
    q = v2_example("capped-promo", "capped", env=engine_env)
    assert [line["discount"] for line in q["lines"]] == [24_725, 24_725, 550]
    assert q["accrual"]["points"] == 200  # 5 % of 5 700.00 = 285, capped
    q = v2_example("capped-promo", "capped", "--redeem", "max", env=engine_env)
    assert q["redeem"] == {"points": 1_000, "amount": 100_000, "max_points": 1_000}
    assert q["accrual"]["points"] == 200  # 5 % of 4 700.00 = 235, capped
    q = v2_example("capped-promo", "capped", "--redeem", "49", env=engine_env)
    assert q["redeem"]["points"] == 0  # below min_redeem_points


def test_registration_and_review_awards(engine_env) -> None:
    q = v2_example("awards", "awards", env=engine_env)
    assert (q["to_pay"], q["accrual"]["points"]) == (50_000, 15)
    q = v2_example("awards", "awards", "--redeem", "max", env=engine_env)
    assert (q["redeem"]["points"], q["to_pay"], q["accrual"]["points"]) == (100, 40_000, 12)


@pytest.mark.parametrize("name", V2_EXAMPLES)
def test_v2_examples_pass_rules_check(name: str) -> None:
    done = posterm("rules", "check", EXAMPLES / f"{name}.toml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{EXAMPLES / name}.toml: OK — ")


def test_rules_check_summarises_levels_series_awards_and_caps() -> None:
    out = {name: posterm("rules", "check", EXAMPLES / f"{name}.toml").stdout.splitlines()
           for name in ("levels-birthday", "coupons", "capped-promo", "awards")}
    assert ("levels: bronze from 0, silver from 3000000, gold from 10000000; a return lowers the level: yes"
            in out["levels-birthday"])
    assert any(line.startswith("  welcome ") and line.endswith("when card age 0–30 d")
               for line in out["levels-birthday"])
    assert ("coupon series spring: single use, valid 2026-03-01 … 2026-05-31; issued by -; needed by spring-15"
            in out["coupons"])
    assert ("coupon series next-visit: single use, valid always; issued by issue-next-visit; "
            "needed by next-visit-10" in out["coupons"])
    assert ("caps: group promo ≤ 50000 a receipt; accrual ≤ 200 points a receipt; redeem ≤ 1000 points "
            "a receipt; redeem at least 50 points or none" in out["capped-promo"])
    assert "award registration: 100 points, activation 0 d, expiry 90 d, per card 1" in out["awards"]
    assert "award review: 20 points, activation 0 d, expiry 365 d, per card no limit" in out["awards"]
