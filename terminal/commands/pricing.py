"""`posterm quote`, `posterm refund`, `posterm rules check`: the pricing core from the shell."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import core
from core.rules import Group, Program, Rule
from terminal.errors import InputFileError
from terminal.jsonio import dump_json, load_json


def _redeem_arg(value: str) -> int | str:
    if value == "max":
        return value
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of points or 'max', got {value!r}")
    return int(value)


def register(subparsers: Any) -> None:
    quote = subparsers.add_parser("quote", help="price a cart: prints the quote JSON")
    quote.add_argument("--rules", required=True, help="rules file (TOML)")
    quote.add_argument("--cart", required=True, help="cart JSON")
    quote.add_argument("--card", help="loyalty card JSON")
    quote.add_argument("--now", help="ISO-8601 time with offset (default: this machine's clock)")
    quote.add_argument("--redeem", type=_redeem_arg, help="points to pay with: N or max")
    quote.set_defaults(handler=cmd_quote)

    refund = subparsers.add_parser("refund", help="compute a return of a quoted receipt")
    refund.add_argument("--rules", required=True, help="rules file (TOML)")
    refund.add_argument("--quote", required=True, help="the receipt's quote JSON")
    refund.add_argument("--return", dest="ret", required=True, help="return JSON")
    refund.set_defaults(handler=cmd_refund)

    rules = subparsers.add_parser("rules", help="rules files")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="validate a rules file and summarise it")
    check.add_argument("path", help="rules file (TOML)")
    check.set_defaults(handler=cmd_rules_check)


def cmd_quote(args: argparse.Namespace) -> int:
    engine = core.Engine(core.load_rules(args.rules))
    cart = load_json(args.cart, "cart")
    card = load_json(args.card, "card") if args.card else None
    now: Any = args.now if args.now else dt.datetime.now().astimezone()
    dump_json(engine.quote(cart, card, now, args.redeem))
    return 0


def cmd_refund(args: argparse.Namespace) -> int:
    engine = core.Engine(core.load_rules(args.rules))
    quote = load_json(args.quote, "quote")
    ret = load_json(args.ret, "return")
    if not isinstance(ret, dict):
        raise InputFileError(f"{args.ret}: the return must be a JSON object")
    dump_json(engine.refund(quote, ret))
    return 0


def _percent(bp: int) -> str:
    return f"{bp / 100:g} %"


def _describe_rule(program: Program, rule: Rule) -> str:
    if rule.kind == "discount":
        if rule.value == "percent":
            what = _percent(rule.bp)
        elif rule.value == "amount":
            what = f"{rule.amount} off the scope"
        elif rule.value == "price":
            what = f"fixed price {rule.amount} a unit"
        elif rule.value == "buy":
            what = f"buy {rule.buy_qty}, get {rule.buy_free} at {_percent(rule.bp)} off"
        else:
            what = _tiers(rule)
    elif rule.kind == "accrual":
        what = {"percent": f"{_percent(rule.bp)} in points",
                "per": f"{rule.per_points} point(s) per {rule.amount}",
                "points": f"{rule.amount} points a receipt",
                "tiers": f"points by {_tiers(rule)}"}[rule.value]
        if rule.max_points >= 0:
            what += f", at most {rule.max_points}"
    elif rule.kind == "message":
        what = repr(rule.text) + (f" → upgrade to {rule.upgrade_to}" if rule.upgrade_to else "")
    elif rule.kind == "gift":
        what = f"gift {rule.gift_qty} × {rule.gift_sku}"
    elif rule.kind == "coupon":
        what = f"issues a {program.coupon_series[rule.series].id} code valid {rule.valid_days} d"
    else:
        what = f"levels {', '.join(_percent(bp) for bp in rule.levels_bp)} as {rule.credit}"
    scope = rule.scope
    where = ", ".join(scope.categories + tuple(sorted(scope.skus))) or "all lines"
    return f"  {rule.id:<20} {rule.kind:<9} prio {rule.priority:<4} {what}  [{where}]"


def _tiers(rule: Rule) -> str:
    steps = ", ".join(f"{_percent(bp)} from {t}" for t, bp in rule.tiers)
    return f"tiers on {rule.tier_basis}: {steps}"


def _conditions(program: Program, rule: Rule) -> str:
    """The v2 conditions of a rule (§12–§13), for the summary."""
    when, parts = rule.when, []
    if when.coupon >= 0:
        parts.append(f"coupon {program.coupon_series[when.coupon].id}")
    if when.birthday_before >= 0:
        parts.append(f"birthday −{when.birthday_before}/+{when.birthday_after} d")
    if when.card_age_min >= 0:
        parts.append(f"card age {when.card_age_min}–{when.card_age_max} d")
    if when.tags is not None:
        parts.append(f"tags {', '.join(sorted(when.tags))}")
    if when.exclude_tags is not None:
        parts.append(f"not tags {', '.join(sorted(when.exclude_tags))}")
    return f"  when {'; '.join(parts)}" if parts else ""


def _describe_v2(program: Program) -> list[str]:
    """Levels, coupon series, awards and caps (§11, §13, §15, §16)."""
    out = []
    if program.levels:
        steps = ", ".join(f"{level.type} from {level.cumulative_min}" for level in program.levels)
        out.append(f"levels: {steps}; a return lowers the level: "
                   f"{'yes' if program.level_downgrade else 'no'}")
    for series in program.coupon_series:
        dates = "always" if series.valid_from < 0 and series.valid_to < 0 else (
            f"{_date(series.valid_from)} … {_date(series.valid_to)}")
        issuers = [r.id for r in program.rules if r.kind == "coupon" and r.series == program.series_ids[series.id]]
        users = [r.id for r in program.rules if r.when.coupon == program.series_ids[series.id]]
        out.append(f"coupon series {series.id}: {'single use' if series.single_use else 'reusable'}, "
                   f"valid {dates}; issued by {', '.join(issuers) or '-'}; needed by {', '.join(users) or '-'}")
    for award in program.awards:
        out.append(f"award {award.id}: {award.points} points, activation {award.activation_days} d, "
                   f"expiry {award.expiry_days or 'never'}{' d' if award.expiry_days else ''}, "
                   f"per card {award.per_card_max or 'no limit'}")
    caps = [f"group {g.id} ≤ {g.cap_amount} a receipt" for g in program.groups if g.cap_amount >= 0]
    if program.accrual_max_points >= 0:
        caps.append(f"accrual ≤ {program.accrual_max_points} points a receipt")
    if program.redeem is not None and program.redeem.max_points >= 0:
        caps.append(f"redeem ≤ {program.redeem.max_points} points a receipt")
    if program.redeem is not None and program.redeem.min_redeem_points:
        caps.append(f"redeem at least {program.redeem.min_redeem_points} points or none")
    if caps:
        out.append(f"caps: {'; '.join(caps)}")
    return out


def _date(ordinal: int) -> str:
    return "open" if ordinal < 0 else dt.date.fromordinal(ordinal).isoformat()


def _describe_group(program: Program, group: Group, depth: int, out: list[str]) -> None:
    cap = f", cap {_percent(group.cap_bp)}" if group.cap_bp >= 0 else ""
    if group.cap_amount >= 0:
        cap += f", at most {group.cap_amount} a receipt"
    out.append(f"{'  ' * depth}- {group.id}: {group.combine}{cap}")
    for is_group, index in group.members:
        if is_group:
            _describe_group(program, program.groups[index], depth + 1, out)
        else:
            out.append(f"{'  ' * (depth + 1)}- rule {program.rules[index].id}")


def cmd_rules_check(args: argparse.Namespace) -> int:
    program = core.load_rules(args.path)
    kinds: dict[str, int] = {}
    for rule in program.rules:
        kinds[rule.kind] = kinds.get(rule.kind, 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no rules"
    lines = [
        f"{args.path}: OK — {len(program.rules)} rules ({counts}), {len(program.groups) - 2} groups",
        f"program: version {program.version or '-'}, 1 point = {program.point_value} minor units, "
        f"max discount {_percent(program.max_discount_bp)}, activation {program.activation_days} d, "
        f"expiry {program.expiry_days or 'never'}{' d' if program.expiry_days else ''}",
    ]
    redeem = program.redeem
    lines.append("redeem: not allowed" if redeem is None else
                 f"redeem: up to {_percent(redeem.max_bp)}, receipt ≥ {redeem.min_receipt}, "
                 f"balance ≥ {redeem.min_points}, scope {', '.join(redeem.categories) or 'all'}")
    lines.extend(_describe_v2(program))
    lines.append("rules:")
    lines.extend(_describe_rule(program, rule) + _conditions(program, rule) for rule in program.rules)
    lines.append("combining:")
    for root in (program.discount_root, program.accrual_root):
        _describe_group(program, program.groups[root], 1, lines)
    print("\n".join(lines))
    return 0
