"""The pure-Python pricing engine: the readable twin of `_cengine.pyx`, with the identical API.

`Engine(program).quote(cart, card, now, redeem)` prices a cart as spec/loyalty.md §4–§8 say;
`Engine(program).refund(quote, ret)` computes a return (§9). It is the reference the compiled
engine is tested against: when the two disagree, this file states the intended behaviour.

Order of work for one quote: read inputs → find each rule's scope lines (through the program's
scope index) → decide which rules hold → discounts through the group tree → redemption →
accrual through the accrual groups → messages, gifts, referral, card upgrade.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.arith import BP_PER_UNIT, percent_of, price_times_qty, split_largest_remainder
from core.inputs import (
    POINTS_MAX,
    REDEEM_ALL,
    Card,
    Line,
    lot_dates,
    read_card,
    read_cart,
    read_moment,
    read_redeem,
)
from core.refund import compute_refund
from core.rules import CARD_NONE, CARD_REQUIRED, Group, Program, Rule

IMPLEMENTATION = "pure"


def category_matches(category: str, prefix: str) -> bool:
    """A line category matches a rule category when equal to it or below it (`a/b` under `a`)."""
    return category == prefix or category.startswith(prefix + "/")


def category_prefixes(category: str) -> list[str]:
    """`a/b/c` → [`a`, `a/b`, `a/b/c`]: the rule categories it can match."""
    parts = category.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class _Quote:
    """The state of one quote while it is being computed."""

    def __init__(self, program: Program, store: str, lines: list[Line], card: Card | None,
                 now: dt.datetime) -> None:
        self.program = program
        self.store = store
        self.lines = lines
        self.card = card
        self.now = now
        self.scope_lines = self._find_scope_lines()
        self.holds = {i: self._holds(program.rules[i], ls) for i, ls in self.scope_lines.items()}

    # ---------------------------------------------------------------- which rules apply

    def _find_scope_lines(self) -> dict[int, list[int]]:
        """Rule index → the lines in its scope, for rules with at least one such line."""
        program = self.program
        found: dict[int, list[int]] = {}
        for li, line in enumerate(self.lines):
            candidates = set(program.rules_for_all)
            candidates.update(program.rules_by_sku.get(line.sku, ()))
            for category in line.categories:
                for prefix in category_prefixes(category):
                    candidates.update(program.rules_by_category.get(prefix, ()))
            for ri in sorted(candidates):
                if not self._excluded(program.rules[ri], line):
                    found.setdefault(ri, []).append(li)
        return found

    @staticmethod
    def _excluded(rule: Rule, line: Line) -> bool:
        if line.sku in rule.scope.exclude_skus:
            return True
        return any(
            category_matches(category, excluded)
            for category in line.categories
            for excluded in rule.scope.exclude_categories
        )

    def _holds(self, rule: Rule, scope_lines: list[int]) -> bool:
        when, card, now = rule.when, self.card, self.now
        if when.card == CARD_REQUIRED and card is None:
            return False
        if when.card == CARD_NONE and card is not None:
            return False
        if when.card_types is not None and (card is None or card.type not in when.card_types):
            return False
        if when.stores is not None and self.store not in when.stores:
            return False
        if when.weekdays_mask and not when.weekdays_mask >> (now.isoweekday() - 1) & 1:
            return False
        if when.time_from_min >= 0:
            minute = now.hour * 60 + now.minute
            if when.time_from_min < when.time_to_min:
                inside = when.time_from_min <= minute < when.time_to_min
            else:  # the window wraps midnight
                inside = minute >= when.time_from_min or minute < when.time_to_min
            if not inside:
                return False
        if when.date_from >= 0 and not when.date_from <= now.toordinal() <= when.date_to:
            return False
        if sum(self.lines[i].amount for i in scope_lines) < when.receipt_min:
            return False
        return sum(self.lines[i].qty_milli for i in scope_lines) >= when.qty_min_milli

    def applying(self, kind: str) -> list[Rule]:
        """Rules of a kind that hold for this receipt, in file order."""
        return [
            self.program.rules[i] for i in sorted(self.scope_lines)
            if self.holds[i] and self.program.rules[i].kind == kind
        ]

    # ---------------------------------------------------------------- discounts (§4)

    def rule_discount(self, rule: Rule, base: list[int]) -> list[int]:
        """This rule's discount on every line, computed on `base`."""
        discount = [0] * len(self.lines)
        if not self.holds.get(rule.index):
            return discount
        targets = [i for i in self.scope_lines[rule.index] if not self.lines[i].no_discount]
        if rule.value == "amount":
            bases = [base[i] for i in targets]
            parts = split_largest_remainder(min(rule.amount, sum(bases)), bases)
            for i, part in zip(targets, parts, strict=True):
                discount[i] = part
            return discount
        bp = rule.bp
        if rule.value == "tiers":
            bp = self._tier_bp(rule)
        for i in targets:
            if rule.value == "price":
                fixed = price_times_qty(rule.amount, self.lines[i].qty_milli)
                discount[i] = max(0, base[i] - fixed)
            else:
                discount[i] = percent_of(base[i], bp)
        return discount

    def _tier_bp(self, rule: Rule) -> int:
        if rule.tier_basis == "cumulative":
            if self.card is None:
                return 0
            value = self.card.cumulative
        else:
            value = sum(self.lines[i].amount for i in self.scope_lines[rule.index])
        bp = 0
        for threshold, tier_bp in rule.tiers:
            if threshold <= value:
                bp = tier_bp
        return bp

    def group_discount(self, group: Group, base: list[int]) -> tuple[list[int], list[list[str]]]:
        """A group's discount per line and the ids of the rules that gave it."""
        n = len(self.lines)
        result = [0] * n
        given_by: list[list[str]] = [[] for _ in range(n)]
        remaining = list(base)  # what `multiply` members still apply to
        for is_group, index in group.members:
            member_base = remaining if group.combine == "multiply" else base
            if is_group:
                discount, who = self.group_discount(self.program.groups[index], member_base)
            else:
                discount = self.rule_discount(self.program.rules[index], member_base)
                who = [[self.program.rules[index].id]] * n
            for i in range(n):
                d = discount[i]
                if d == 0:
                    continue
                combine = group.combine
                if ((combine == "priority" and result[i] == 0)
                        or (combine == "max" and d > result[i])
                        or (combine == "min" and (result[i] == 0 or d < result[i]))):
                    result[i], given_by[i] = d, list(who[i])
                elif combine in ("sum", "multiply"):
                    result[i] += d
                    given_by[i] = given_by[i] + who[i]
                    if combine == "multiply":
                        remaining[i] -= d
        for i in range(n):
            limit = base[i]
            if group.cap_bp >= 0:
                limit = min(limit, percent_of(base[i], group.cap_bp))
            result[i] = min(result[i], limit)
        return result, given_by

    def discounts(self) -> tuple[list[int], list[list[str]]]:
        """Final discount per line: the root group, then the program's and the line's limits."""
        root = self.program.groups[self.program.discount_root]
        discount, given_by = self.group_discount(root, [line.amount for line in self.lines])
        for i, line in enumerate(self.lines):
            if line.no_discount:
                discount[i] = 0
            ceiling = percent_of(line.amount, self.program.max_discount_bp)
            floor_amount = price_times_qty(line.min_price, line.qty_milli)
            discount[i] = min(discount[i], ceiling, max(0, line.amount - floor_amount))
            if discount[i] == 0:
                given_by[i] = []
        return discount, given_by

    # ---------------------------------------------------------------- redemption (§5)

    def in_redeem_scope(self, line: Line) -> bool:
        redeem = self.program.redeem
        if redeem is None or line.no_bonus:
            return False
        if not redeem.categories:
            return True
        return any(category_matches(c, p) for c in line.categories for p in redeem.categories)

    def redemption(self, after_discount: list[int], asked: int) -> tuple[int, int, list[int]]:
        """(points redeemed, max_points, redeemed money per line)."""
        program, card = self.program, self.card
        eligible = [i for i, line in enumerate(self.lines) if self.in_redeem_scope(line)]
        eligible_total = sum(after_discount[i] for i in eligible)
        max_points = 0
        redeem = program.redeem
        if (redeem is not None and card is not None and eligible_total >= redeem.min_receipt
                and card.available >= redeem.min_points):
            by_percent = eligible_total * redeem.max_bp // (BP_PER_UNIT * program.point_value)
            max_points = min(card.available, by_percent)
        points = max_points if asked == REDEEM_ALL else min(asked, max_points)
        per_line = [0] * len(self.lines)
        parts = split_largest_remainder(
            points * program.point_value, [after_discount[i] for i in eligible])
        for i, part in zip(eligible, parts, strict=True):
            per_line[i] = part
        return points, max_points, per_line

    # ---------------------------------------------------------------- accrual (§6)

    def rule_points(self, rule: Rule, paid: list[int]) -> int:
        if not self.holds.get(rule.index) or self.card is None:
            return 0
        targets = [i for i in self.scope_lines[rule.index] if not self.lines[i].no_bonus]
        if not targets:
            return 0
        base = sum(paid[i] for i in targets)
        if rule.value == "percent":
            points = base * rule.bp // (BP_PER_UNIT * self.program.point_value)
        elif rule.value == "per":
            points = rule.per_points * (base // rule.amount)
        else:
            points = rule.amount
        points = min(points, POINTS_MAX)  # a receipt never earns more than the points limit
        return points if rule.max_points < 0 else min(points, rule.max_points)

    def group_points(self, group: Group, paid: list[int]) -> tuple[int, list[Rule]]:
        """A group's points for the receipt and the rules that gave them, in evaluation order."""
        total = 0
        given_by: list[Rule] = []
        for is_group, index in group.members:
            if is_group:
                points, who = self.group_points(self.program.groups[index], paid)
            else:
                rule = self.program.rules[index]
                points, who = self.rule_points(rule, paid), [rule]
            if points == 0:
                continue
            if ((group.combine == "priority" and total == 0)
                    or (group.combine == "max" and points > total)
                    or (group.combine == "min" and (total == 0 or points < total))):
                total, given_by = points, who
            elif group.combine == "sum":
                total, given_by = min(total + points, POINTS_MAX), given_by + who
        return total, given_by

    def accrual_lines(self) -> set[int]:
        """Lines that can earn points: in the scope of an applying accrual rule, not no_bonus.
        A return claws back points in proportion to these lines' paid money only."""
        if self.card is None:
            return set()
        return {i for rule in self.applying("accrual") for i in self.scope_lines[rule.index]
                if not self.lines[i].no_bonus}

    def lot_dates(self, given_by: list[Rule]) -> tuple[str, str | None]:
        """The new lot's window: the program's days unless a contributing rule overrides them
        (the first one in evaluation order that does)."""
        activation, expiry = self.program.activation_days, self.program.expiry_days
        for rule in given_by:
            if rule.activation_days >= 0 or rule.expiry_days >= 0:
                if rule.activation_days >= 0:
                    activation = rule.activation_days
                if rule.expiry_days >= 0:
                    expiry = rule.expiry_days
                break
        return lot_dates(self.now, activation, expiry)

    # ---------------------------------------------------------------- referral (§7)

    def referral(self, to_pay: int) -> list[dict[str, Any]]:
        card = self.card
        rules = sorted(self.applying("referral"), key=lambda r: (r.priority, r.index))
        if card is None or not rules:
            return []
        rule, out = rules[0], []
        for level, (referrer, bp) in enumerate(zip(card.referrers, rule.levels_bp, strict=False), 1):
            money = to_pay * bp // BP_PER_UNIT
            points = money // self.program.point_value if rule.credit == "points" else 0
            cumulative = money if rule.credit == "cumulative" else 0
            out.append({"card": referrer, "level": level, "points": points, "cumulative": cumulative})
        return out


class Engine:
    """Prices carts under one compiled Program. Stateless between calls; safe to share."""

    implementation = IMPLEMENTATION

    def __init__(self, program: Program) -> None:
        self.program = program

    def quote(self, cart: Any, card: Any = None, now: Any = None, redeem: Any = None) -> dict[str, Any]:
        moment = read_moment(now, "now")
        store, lines = read_cart(cart)
        q = _Quote(self.program, store, lines, read_card(card, moment), moment)
        asked = read_redeem(redeem)

        discount, given_by = q.discounts()
        after_discount = [line.amount - d for line, d in zip(lines, discount, strict=True)]
        points_redeemed, max_points, redeem_money = q.redemption(after_discount, asked)
        paid = [a - r for a, r in zip(after_discount, redeem_money, strict=True)]
        subtotal = sum(line.amount for line in lines)
        total = subtotal - sum(discount)
        to_pay = total - sum(redeem_money)

        accrual: dict[str, Any] = {"points": 0, "available_from": None, "expires_at": None}
        if q.card is not None:
            root = self.program.groups[self.program.accrual_root]
            points, contributors = q.group_points(root, paid)
            if points:
                start, end = q.lot_dates(contributors)
                accrual = {"points": points, "available_from": start, "expires_at": end}

        earning = q.accrual_lines()
        messages = q.applying("message")
        card_type_after = None
        if q.card is not None:
            upgrades = [r.upgrade_to for r in messages if r.upgrade_to]
            if upgrades and upgrades[0] != q.card.type:
                card_type_after = upgrades[0]
        return {
            "subtotal": subtotal,
            "discount": subtotal - total,
            "total": total,
            "redeem": {"points": points_redeemed, "amount": sum(redeem_money), "max_points": max_points},
            "to_pay": to_pay,
            "accrual": accrual,
            "lines": [
                {"sku": line.sku, "qty_milli": line.qty_milli, "price": line.price,
                 "amount": line.amount, "discount": discount[i], "redeem_amount": redeem_money[i],
                 "paid": paid[i], "accrual_base": paid[i] if i in earning else 0,
                 "rules": given_by[i]}
                for i, line in enumerate(lines)
            ],
            "messages": [{"rule": r.id, "text": r.text} for r in messages],
            "gifts": [{"rule": r.id, "sku": r.gift_sku, "name": r.gift_name, "qty": r.gift_qty}
                      for r in q.applying("gift")],
            "referral": q.referral(to_pay),
            "card_type_after": card_type_after,
            "cumulative_after": None if q.card is None else q.card.cumulative + total,
        }

    def refund(self, quote: Any, ret: Any) -> dict[str, Any]:
        return compute_refund(quote, ret)
