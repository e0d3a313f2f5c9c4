"""`make demo` / `posterm demo`: the seed scenarios of the loyalty spec, priced and returned.

Loads each example rules file, cart and card from `examples/`, prices the cart for the card, pays part with points
where the scenario allows, then returns part of it, and prints what a cashier and a technician
would want to see. Exits 0 when every scenario gives the spec's numbers, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import core
from terminal.jsonio import load_json

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOW = "2026-12-01T10:00:00+03:00"


def _money(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"


SCENARIOS: list[dict[str, Any]] = [
    {"title": "Cumulative card: the discount grows with lifetime spend (spec §10.1)",
     "name": "cumulative", "rules": "cumulative.toml", "redeem": None,
     "expect": {"discount": 70_000, "total": 930_000, "cumulative_after": 7_580_000}},
    {"title": "Standard card: 5 % off, 2 % back in points, an offer of a Silver card (§10.2)",
     "name": "standard", "rules": "standard-silver.toml", "redeem": "max",
     "expect": {"discount": 60_000, "to_pay": 570_000, "accrual_points": 114}},
    {"title": "Gold card 17 % and a 30 % brand promo: the best one wins (§10.3)",
     "name": "gold", "rules": "gold-promo.toml", "redeem": None,
     "expect": {"discount": 30_000}},
    {"title": "One point per 100 roubles paid (§10.4)",
     "name": "points", "rules": "points-per-100.toml", "redeem": None,
     "expect": {"accrual_points": 123}},
]


def _actual(quote: dict[str, Any], key: str) -> Any:
    return quote["accrual"]["points"] if key == "accrual_points" else quote[key]


def run_scenario(scenario: dict[str, Any], out: Any) -> bool:
    engine = core.Engine(core.load_rules(EXAMPLES / scenario["rules"]))
    cart = load_json(EXAMPLES / f"cart-{scenario['name']}.json", "cart")
    card = load_json(EXAMPLES / f"card-{scenario['name']}.json", "card")
    quote = engine.quote(cart, card, NOW, scenario["redeem"])
    out.write(f"\n== {scenario['title']}\n   examples/{scenario['rules']}, "
              f"cart-{scenario['name']}.json, card-{scenario['name']}.json\n")
    for line in quote["lines"]:
        rules = ", ".join(line["rules"]) or "-"
        out.write(f"   {line['sku']:<10} {_money(line['amount']):>12}  discount {_money(line['discount']):>10}"
                  f"  points paid {_money(line['redeem_amount']):>10}  [{rules}]\n")
    out.write(f"   total {_money(quote['total'])}, paid with {quote['redeem']['points']} points "
              f"({_money(quote['redeem']['amount'])}), to pay {_money(quote['to_pay'])}\n")
    accrual = quote["accrual"]
    out.write(f"   points earned {accrual['points']} (usable {accrual['available_from'] or '-'},"
              f" expire {accrual['expires_at'] or 'never'})\n")
    for message in quote["messages"]:
        out.write(f"   message [{message['rule']}]: {message['text']}\n")
    if quote["card_type_after"]:
        out.write(f"   card upgraded to: {quote['card_type_after']}\n")
    refund = engine.refund(quote, {"lines": [{"line": 0, "qty": 1}]})
    out.write(f"   return of the whole receipt: money back {_money(refund['money'])}, points restored "
              f"{refund['points_restored']}, points clawed back {refund['points_clawed']}\n")
    wrong = {k: (v, _actual(quote, k)) for k, v in scenario["expect"].items() if _actual(quote, k) != v}
    for key, (want, got) in wrong.items():
        out.write(f"   MISMATCH {key}: the spec says {want}, the engine gave {got}\n")
    return not wrong


def main() -> int:
    out = sys.stdout
    out.write(f"posterm demo — pricing engine: {core.IMPLEMENTATION}, time {NOW}\n")
    results = [run_scenario(s, out) for s in SCENARIOS]
    out.write(f"\n{sum(results)} of {len(results)} scenarios give the spec's numbers.\n")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
