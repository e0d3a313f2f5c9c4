"""The pure-Python pricing engine: the readable twin of `_cengine.pyx`, with the identical API.

`Engine(program).quote(cart, card, now, redeem)` prices a cart as spec/loyalty.md §4–§8 and
§11–§17 say;
`Engine(program).refund(quote, ret)` computes a return (§9). It is the reference the compiled
engine is tested against: when the two disagree, this file states the intended behaviour.

Order of work for one quote: read inputs → find each rule's scope lines (through the program's
scope index) → decide which rules hold → discounts through the group tree → redemption →
accrual through the accrual groups → messages, gifts, referral, coupons issued, card upgrade and
level → which presented coupons were used.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.arith import BP_PER_UNIT, MILLI, percent_of, price_times_qty, split_largest_remainder
from core.inputs import (
    POINTS_MAX,
    REDEEM_ALL,
    Card,
    Coupon,
    Line,
    birthday_offsets,
    read_card,
    read_cart,
    read_cart_coupons,
    read_moment,
    read_redeem,
)
from core.refund import compute_refund
from core.rules import CARD_NONE, CARD_REQUIRED, Group, Program, Rule
from core.vat import vat_in, vat_summary

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
                 now: dt.datetime, coupons: tuple[Coupon, ...]) -> None:
        self.program = program
        self.store = store
        self.lines = lines
        self.card = card
        self.now = now
        self.today = now.toordinal()
        self.birthday = (() if card is None or not card.birth_month
                         else birthday_offsets(card.birth_month, card.birth_day, self.today))
        self.presented = {program.series_ids[c.series] for c in coupons if c.series in program.series_ids}
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
        if sum(self.lines[i].qty_milli for i in scope_lines) < when.qty_min_milli:
            return False
        return self._customer_holds(rule)

    def _customer_holds(self, rule: Rule) -> bool:
        """§12–§13: birthday, card age, tags, coupon (the v2 conditions each imply a card)."""
        when, card = rule.when, self.card
        if when.birthday_before >= 0 and not any(
                -when.birthday_before <= d <= when.birthday_after for d in self.birthday):
            return False
        if when.card_age_min >= 0 and (
                card is None or card.issued_on < 0
                or not when.card_age_min <= self.today - card.issued_on <= when.card_age_max):
            return False
        if when.tags is not None and (card is None or when.tags.isdisjoint(card.tags)):
            return False
        if when.exclude_tags is not None and (card is None or not when.exclude_tags.isdisjoint(card.tags)):
            return False
        return when.coupon < 0 or when.coupon in self.presented

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
        if rule.value == "buy":
            return self._buy_discount(rule, targets, base)
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

    def _buy_discount(self, rule: Rule, targets: list[int], base: list[int]) -> list[int]:
        """§14: pool the whole units of the target lines; the k cheapest get the percent off
        (ties: the earlier line), k = floor(U / (qty + free)) × free. Clamped to the line's base."""
        discount = [0] * len(self.lines)
        pool = [(self.lines[i].price, i, self.lines[i].qty_milli // MILLI)
                for i in targets if self.lines[i].qty_milli % MILLI == 0]
        free = sum(units for _, _, units in pool) // (rule.buy_qty + rule.buy_free) * rule.buy_free
        for price, i, units in sorted(pool):
            if free == 0:
                break
            chosen = min(units, free)
            free -= chosen
            discount[i] = min(base[i], percent_of(price * chosen, rule.bp))
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
        if 0 <= group.cap_amount < sum(result):  # §15: the receipt's cap, split by the lines' share
            result = split_largest_remainder(group.cap_amount, result)
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
            if redeem.max_points >= 0:
                max_points = min(max_points, redeem.max_points)
            if max_points < redeem.min_redeem_points:
                max_points = 0
        points = max_points if asked == REDEEM_ALL else min(asked, max_points)
        if redeem is not None and points < redeem.min_redeem_points:
            points = 0
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
        if rule.value in ("percent", "tiers"):
            bp = self._tier_bp(rule) if rule.value == "tiers" else rule.bp
            points = base * bp // (BP_PER_UNIT * self.program.point_value)
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
        start = self.now + dt.timedelta(days=activation)
        end = start + dt.timedelta(days=expiry) if expiry else None
        return start.isoformat(), None if end is None else end.isoformat()

    # ---------------------------------------------------------------- referral (§7)

    def referral(self, to_pay: int) -> tuple[list[dict[str, Any]], Rule | None]:
        """The upline credits and the rule that gave them (None when nothing is credited)."""
        card = self.card
        rules = sorted(self.applying("referral"), key=lambda r: (r.priority, r.index))
        if card is None or not rules:
            return [], None
        rule, out = rules[0], []
        for level, (referrer, bp) in enumerate(zip(card.referrers, rule.levels_bp, strict=False), 1):
            money = to_pay * bp // BP_PER_UNIT
            points = money // self.program.point_value if rule.credit == "points" else 0
            cumulative = money if rule.credit == "cumulative" else 0
            out.append({"card": referrer, "level": level, "points": points, "cumulative": cumulative})
        return out, rule if out else None



# -------------------------------------------------------------------- levels (§11), coupons (§13)
# Both engines build these parts of the quote with the functions below (they are not hot).


def type_and_level(program: Program, card_type: str, upgrade: str | None,
                   cumulative_after: int) -> tuple[str | None, dict[str, Any] | None]:
    """(card_type_after, level) of a card. A sale never lowers a level card: its level after the
    sale is at least the one it has (lowering is what `level_downgrade` does on returns)."""
    rank = program.level_rank(card_type)
    if rank < 0:
        return (upgrade if upgrade and upgrade != card_type else None), None
    after = max(rank, program.level_for(cumulative_after))
    if upgrade and program.level_rank(upgrade) > after:
        after = program.level_rank(upgrade)
    result = program.levels[after].type
    nxt = program.levels[after + 1] if after + 1 < len(program.levels) else None
    level = {"type": result, "next": None if nxt is None else nxt.type,
             "to_next": None if nxt is None else nxt.cumulative_min - cumulative_after}
    return (result if result != card_type else None), level


def coupons_out(program: Program, coupons: tuple[Coupon, ...], used_series: set[int]) -> list[dict[str, Any]]:
    """§13: per presented coupon, in cart order, whether the sale uses it: only the first code of a
    series needed by a contributing rule."""
    out, seen = [], set()
    for coupon in coupons:
        series = program.series_ids.get(coupon.series, -1)
        out.append({"code": coupon.code, "series": coupon.series,
                    "used": series in used_series and series not in seen})
        seen.add(series)
    return out


class Engine:
    """Prices carts under one compiled Program. Stateless between calls; safe to share."""

    implementation = IMPLEMENTATION

    def __init__(self, program: Program) -> None:
        self.program = program

    def quote(self, cart: Any, card: Any = None, now: Any = None, redeem: Any = None) -> dict[str, Any]:
        moment = read_moment(now, "now")
        store, lines = read_cart(cart)
        coupons = read_cart_coupons(cart)
        q = _Quote(self.program, store, lines, read_card(card, moment), moment, coupons)
        asked = read_redeem(redeem)

        discount, given_by = q.discounts()
        after_discount = [line.amount - d for line, d in zip(lines, discount, strict=True)]
        points_redeemed, max_points, redeem_money = q.redemption(after_discount, asked)
        paid = [a - r for a, r in zip(after_discount, redeem_money, strict=True)]
        subtotal = sum(line.amount for line in lines)
        total = subtotal - sum(discount)
        to_pay = total - sum(redeem_money)

        accrual: dict[str, Any] = {"points": 0, "available_from": None, "expires_at": None}
        contributors: list[Rule] = []
        if q.card is not None:
            root = self.program.groups[self.program.accrual_root]
            points, contributors = q.group_points(root, paid)
            if self.program.accrual_max_points >= 0:
                points = min(points, self.program.accrual_max_points)
            if points:
                start, end = q.lot_dates(contributors)
                accrual = {"points": points, "available_from": start, "expires_at": end}
            else:
                contributors = []

        earning = q.accrual_lines()
        vat = [vat_in(p, line.vat_bp) for p, line in zip(paid, lines, strict=True)]
        messages = q.applying("message")
        gifts = q.applying("gift")
        issuing = q.applying("coupon")
        referral, referral_rule = q.referral(to_pay)
        upgrades = [r.upgrade_to for r in messages if r.upgrade_to]
        cumulative_after = None if q.card is None else q.card.cumulative + total
        card_type_after, level = None, None
        if q.card is not None:
            card_type_after, level = type_and_level(self.program, q.card.type,
                                                    upgrades[0] if upgrades else None, q.card.cumulative + total)
        listed = {rid for rules in given_by for rid in rules}
        used_series = {r.when.coupon for r in q.applying("discount") if r.id in listed}
        used_series.update(r.when.coupon for r in (*contributors, *messages, *gifts, *issuing))
        if referral_rule is not None:
            used_series.add(referral_rule.when.coupon)
        used_series.discard(-1)  # rules that need no coupon
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
                 "rules": given_by[i], "vat_rate": None if line.vat_bp < 0 else line.vat_bp,
                 "vat_amount": vat[i]}
                for i, line in enumerate(lines)
            ],
            "vat": vat_summary((line.vat_bp, paid[i], vat[i]) for i, line in enumerate(lines)),
            "messages": [{"rule": r.id, "text": r.text} for r in messages],
            "gifts": [{"rule": r.id, "sku": r.gift_sku, "name": r.gift_name, "qty": r.gift_qty}
                      for r in gifts],
            "referral": referral,
            "card_type_after": card_type_after,
            "cumulative_after": cumulative_after,
            "level": level,
            "coupons": coupons_out(self.program, coupons, used_series),
            "issued_coupons": [
                {"rule": r.id, "series": self.program.coupon_series[r.series].id, "valid_days": r.valid_days}
                for r in issuing],
        }

    def refund(self, quote: Any, ret: Any) -> dict[str, Any]:
        return compute_refund(quote, ret)
