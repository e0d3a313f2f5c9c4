"""The rules compiler: every refusal is a RuleError naming the source, the rule or group and the
field; a valid file compiles whole; nested groups take their place in the parent's member order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from core import RuleError, compile_rules, load_rules
from core.rules import FILE_BYTES_MAX
from tests.core.pricing_helpers import rule, rules

SOURCE = "test.toml"


def refused(tree: Any) -> str:
    with pytest.raises(RuleError) as info:
        compile_rules(tree, SOURCE)
    return str(info.value)


def disc(**fields: Any) -> dict[str, Any]:
    """A discount rule `r` with a valid value unless `fields` give one."""
    values = {"percent", "amount", "price", "tiers"}
    base = {} if values & fields.keys() else {"percent": 5}
    return rule("r", "discount", **base, **fields)


def chain(depth: int) -> list[dict[str, Any]]:
    return [{"id": f"g{i}", **({"parent": f"g{i - 1}"} if i else {})} for i in range(depth)]


# (tree, the place named, the field named)
REFUSALS = {
    "unknown section": ({"rules": []}, "unknown section", "'rules'"),
    "unknown rule field": (rules(disc(colour="red")), "rule 'r'", "'colour'"),
    "unknown when key": (rules(disc(when={"weekday": [1]})), "rule 'r'", "'weekday'"),
    "unknown scope key": (rules(disc(scope={"category": ["a"]})), "rule 'r'", "'category'"),
    "when not a table": (rules(disc(when=["card"])), "rule 'r'", "'when'"),
    "percent is a bool": (rules(disc(percent=True)), "rule 'r'", "'percent'"),
    "percent is a list": (rules(disc(percent=[5])), "rule 'r'", "'percent'"),
    "amount is a float": (rules(disc(amount=1.5)), "rule 'r'", "'amount'"),
    "priority is a float": (rules(disc(priority=1.5)), "rule 'r'", "'priority'"),
    "card is a string": (rules(disc(when={"card": "yes"})), "rule 'r'", "'when.card'"),
    "stores not a list": (rules(disc(when={"stores": "S01"})), "rule 'r'", "'when.stores'"),
    "receipt_min negative": (rules(disc(when={"receipt_min": -1})), "rule 'r'",
                             "'when.receipt_min'"),
    "qty_min 4 decimals": (rules(disc(when={"qty_min": "1.0001"})), "rule 'r'", "'when.qty_min'"),
    "weekday 0": (rules(disc(when={"weekdays": [0]})), "rule 'r'", "'when.weekdays'"),
    "weekday 8": (rules(disc(when={"weekdays": [8]})), "rule 'r'", "'when.weekdays'"),
    "percent 3 decimals": (rules(disc(percent=5.125)), "rule 'r'", "'percent'"),
    "percent over 100": (rules(disc(percent=100.01)), "rule 'r'", "'percent'"),
    "percent negative": (rules(disc(percent=-1)), "rule 'r'", "'percent'"),
    "percent nan": (rules(disc(percent=float("nan"))), "rule 'r'", "'percent'"),
    "no value field": (rules(rule("r", "discount")), "rule 'r'", "percent/amount/price/tiers"),
    "two value fields": (rules(disc(percent=5, amount=100)), "rule 'r'",
                         "percent/amount/price/tiers"),
    "accrual two values": (rules(rule("r", "accrual", percent=1, points=5)), "rule 'r'",
                           "percent/per/points"),
    "per without amount": (rules(rule("r", "accrual", per={"points": 1})), "rule 'r'", "'per'"),
    "tiers equal thresholds": (rules(disc(tiers=[[0, 5], [0, 7]], basis="receipt")), "rule 'r'",
                               "'tiers'"),
    "tiers decreasing": (rules(disc(tiers=[[100, 5], [50, 7]], basis="receipt")), "rule 'r'",
                         "'tiers'"),
    "tier percent over 100": (rules(disc(tiers=[[0, 101]], basis="receipt")), "rule 'r'",
                              "'tiers'"),
    "tiers without basis": (rules(disc(tiers=[[0, 5]])), "rule 'r'", "'basis'"),
    "basis unknown": (rules(disc(tiers=[[0, 5]], basis="monthly")), "rule 'r'", "'basis'"),
    "basis on percent": (rules(disc(percent=5, basis="receipt")), "rule 'r'", "'basis'"),
    "unknown kind": (rules(rule("r", "voucher")), "rule 'r'", "'kind'"),
    "missing id": (rules({"kind": "discount", "percent": 5}), "rule #1", "'id'"),
    "duplicate rule id": (rules(disc(), disc()), "rule 'r'", "'id'"),
    "unknown group": (rules(disc(group="promo")), "rule 'r'", "'group'"),
    "message in a group": (rules(rule("r", "message", text="hi", group="g"), group=[{"id": "g"}]),
                           "rule 'r'", "'group'"),
    "duplicate group id": (rules(group=[{"id": "g"}, {"id": "g"}]), "group 'g'", "'id'"),
    "unknown parent": (rules(group=[{"id": "g", "parent": "nope"}]), "group 'g'", "'parent'"),
    "group cycle a-b-a": (rules(group=[{"id": "a", "parent": "b"}, {"id": "b", "parent": "a"}]),
                          "group 'a'", "'parent'"),
    "group is its own parent": (rules(group=[{"id": "a", "parent": "a"}]), "group 'a'",
                                "'parent'"),
    "nesting deeper than 16": (rules(group=chain(17)), "group 'g16'", "'parent'"),
    "bad combine": (rules(group=[{"id": "g", "combine": "avg"}]), "group 'g'", "'combine'"),
    "cap over 100": (rules(group=[{"id": "g", "cap_percent": 150}]), "group 'g'", "'cap_percent'"),
    "mixed kinds in a tree": (
        rules(disc(group="g"), rule("acc", "accrual", percent=1, group="g"), group=[{"id": "g"}]),
        "group 'g'", "'kind'"),
    "mixed kinds through nesting": (
        rules(group=[{"id": "a", "kind": "discount"},
                     {"id": "b", "parent": "a", "kind": "accrual"}]),
        "group 'b'", "'kind'"),
    "accrual rule in discount group": (
        rules(rule("acc", "accrual", percent=1, group="g"),
              group=[{"id": "g", "kind": "discount"}]),
        "group 'g'", "'kind'"),
    "multiply in accrual group": (
        rules(rule("acc", "accrual", percent=1, group="g"),
              group=[{"id": "g", "combine": "multiply"}]),
        "group 'g'", "'combine'"),
    "multiply at the accrual root": (rules(program={"accrual_combine": "multiply"}), "[program]",
                                     "'accrual_combine'"),
    "cap on accrual group": (
        rules(group=[{"id": "g", "kind": "accrual", "combine": "sum", "cap_percent": 10}]),
        "group 'g'", "'cap_percent'"),
    "time H:MM": (rules(disc(when={"time": ["9:00", "12:00"]})), "rule 'r'", "'when.time'"),
    "time 25:00": (rules(disc(when={"time": ["09:00", "25:00"]})), "rule 'r'", "'when.time'"),
    "time 09:60": (rules(disc(when={"time": ["09:60", "10:00"]})), "rule 'r'", "'when.time'"),
    "time one value": (rules(disc(when={"time": ["09:00"]})), "rule 'r'", "'when.time'"),
    "time letters": (rules(disc(when={"time": ["ab:cd", "10:00"]})), "rule 'r'", "'when.time'"),
    "empty time window": (rules(disc(when={"time": ["10:00", "10:00"]})), "rule 'r'",
                          "'when.time'"),
    "date 13th month": (rules(disc(when={"dates": ["2026-13-01", "2026-12-31"]})), "rule 'r'",
                        "'when.dates'"),
    "date not a date": (rules(disc(when={"dates": ["tomorrow", "2026-12-31"]})), "rule 'r'",
                        "'when.dates'"),
    "dates reversed": (rules(disc(when={"dates": ["2026-12-31", "2026-12-01"]})), "rule 'r'",
                       "'when.dates'"),
    "card_types with card false": (rules(disc(when={"card": False, "card_types": ["gold"]})),
                                   "rule 'r'", "'when.card_types'"),
    "scope entry twice": (rules(disc(scope={"skus": ["x", "x"]})), "rule 'r'", "'scope.skus'"),
    "point_value 0": (rules(program={"point_value": 0}), "[program]", "'point_value'"),
    "unknown program key": (rules(program={"points": 1}), "[program]", "'points'"),
    "discount_combine unknown": (rules(program={"discount_combine": "avg"}), "[program]",
                                 "'discount_combine'"),
    "redeem max over 100": (rules(redeem={"max_percent": 101}), "[redeem]", "'max_percent'"),
    "unknown redeem key": (rules(redeem={"percent": 50}), "[redeem]", "'percent'"),
    "referral no levels": (rules(rule("r", "referral", levels=[], credit="points")), "rule 'r'",
                           "'levels'"),
    "referral credit cash": (rules(rule("r", "referral", levels=[3], credit="cash")), "rule 'r'",
                             "'credit'"),
    "message without text": (rules(rule("r", "message")), "rule 'r'", "'text'"),
    "gift qty 0": (rules(rule("r", "gift", sku="g", qty=0)), "rule 'r'", "'qty'"),
    "max_points on a discount": (rules(disc(max_points=3)), "rule 'r'", "'max_points'"),
}


@pytest.mark.parametrize(("tree", "where", "field"), REFUSALS.values(), ids=REFUSALS.keys())
def test_refusal_names_source_place_and_field(tree: dict, where: str, field: str) -> None:
    message = refused(tree)
    assert message.startswith(f"{SOURCE}: ")
    assert where in message
    assert field in message


@pytest.mark.parametrize("root", ["(discount root)", "(accrual root)"])
def test_parent_naming_an_implicit_root_is_refused(root: str) -> None:
    assert "'parent'" in refused(rules(group=[{"id": "g", "parent": root}]))


def test_unknown_group_key_names_the_group_id() -> None:
    assert "group 'promo'" in refused(rules(group=[{"id": "promo", "colour": "red"}]))


LENIENT = {
    "percent as a string": rules(disc(percent="5")),
    "time with a space": rules(disc(when={"time": [" 9:00", "12:00"]})),
    "time with a sign": rules(disc(when={"time": ["+9:00", "12:00"]})),
    "date without dashes": rules(disc(when={"dates": ["20261201", "2026-12-31"]})),
}


@pytest.mark.parametrize("tree", LENIENT.values(), ids=LENIENT.keys())
def test_values_outside_the_documented_forms_are_refused(tree: dict) -> None:
    refused(tree)


def test_rules_tree_must_be_a_table() -> None:
    assert refused([1, 2]) == f"{SOURCE}: the rules must be a table at the top level"


def test_rule_list_must_be_an_array_of_tables() -> None:
    assert refused({"rule": {"id": "r"}}) == f"{SOURCE}: [[rule]] must be an array of tables"


# ----------------------------------------------------------------------------- files

VALID_FILE = """\
[program]
version = "2026-12"
point_value = 100
max_discount_percent = 50
discount_combine = "max"
accrual_combine = "sum"
activation_days = 1
expiry_days = 365

[redeem]
max_percent = 50
min_receipt = 10000
min_points = 10
categories = ["food"]

[[group]]
id = "promo"
combine = "sum"
cap_percent = 30

[[group]]
id = "inner"
parent = "promo"
combine = "multiply"

[[group]]
id = "bonus"
kind = "accrual"
combine = "max"

[[rule]]
id = "std-5"
kind = "discount"
group = "promo"
priority = 10
when = { card_types = ["standard"], stores = ["S01"], weekdays = [1, 2, 3, 4, 5], \
time = ["09:00", "12:00"], dates = [2026-12-01, "2026-12-31"], receipt_min = 1000000, qty_min = 2 }
scope = { categories = ["appliances"], skus = [], exclude_categories = ["appliances/sale"], \
exclude_skus = ["X1"] }
percent = 7.5

[[rule]]
id = "tv-fixed"
kind = "discount"
group = "inner"
scope = { skus = ["TV1"] }
price = 4999000

[[rule]]
id = "cum"
kind = "discount"
tiers = [[0, 5], [3000000, 7], [10000000, 10]]
basis = "cumulative"

[[rule]]
id = "acc-2"
kind = "accrual"
group = "bonus"
percent = 2
max_points = 500
activation_days = 14
expiry_days = 0

[[rule]]
id = "acc-per"
kind = "accrual"
group = "bonus"
per = { points = 1, amount = 10000 }

[[rule]]
id = "silver"
kind = "message"
text = "Issue a Silver card"
upgrade_to = "silver"
when = { receipt_min = 1000000, card = true }

[[rule]]
id = "gift"
kind = "gift"
sku = "BAG"
name = "Shopping bag"

[[rule]]
id = "ref"
kind = "referral"
levels = [3, 1]
credit = "points"
"""


def test_a_full_valid_file_compiles(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(VALID_FILE, encoding="utf-8")
    program = load_rules(path)
    assert program.source == str(path)
    assert (program.version, program.point_value, program.max_discount_bp) == ("2026-12", 100, 5000)
    assert (program.activation_days, program.expiry_days) == (1, 365)
    assert program.redeem is not None
    assert (program.redeem.max_bp, program.redeem.min_receipt, program.redeem.min_points,
            program.redeem.categories) == (5000, 10000, 10, ("food",))
    by_id = {r.id: r for r in program.rules}
    assert [r.id for r in program.rules] == ["std-5", "tv-fixed", "cum", "acc-2", "acc-per",
                                             "silver", "gift", "ref"]
    std = by_id["std-5"]
    assert (std.bp, std.priority) == (750, 10)
    assert (std.when.receipt_min, std.when.qty_min_milli) == (1000000, 2000)
    assert std.when.weekdays_mask == 0b11111
    assert (std.when.time_from_min, std.when.time_to_min) == (9 * 60, 12 * 60)
    assert std.when.date_to - std.when.date_from == 30  # 1 … 31 December
    assert std.scope.exclude_skus == frozenset({"X1"})
    assert by_id["tv-fixed"].amount == 4999000
    assert by_id["cum"].tiers == ((0, 500), (3000000, 700), (10000000, 1000))
    acc = by_id["acc-2"]
    assert (acc.bp, acc.max_points, acc.activation_days, acc.expiry_days) == (200, 500, 14, 0)
    assert (by_id["acc-per"].per_points, by_id["acc-per"].amount) == (1, 10000)
    assert by_id["gift"].gift_name == "Shopping bag" and by_id["gift"].gift_qty == 1
    assert by_id["ref"].levels_bp == (300, 100)
    groups = {g.id: g for g in program.groups}
    assert groups["promo"].cap_bp == 3000 and groups["bonus"].kind == "accrual"
    assert groups["inner"].parent == groups["promo"].index
    assert groups["bonus"].parent == program.accrual_root


def test_oversize_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(b"#" * (FILE_BYTES_MAX + 1))
    with pytest.raises(RuleError, match=re.escape(f"{path}: the rules file is larger than")):
        load_rules(path)


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[[rule]]\nid = "скидка"\n'.encode("cp1251"))
    with pytest.raises(RuleError, match=re.escape(f"{path}: the rules file is not UTF-8 text")):
        load_rules(path)


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[[rule]\nid = 'x'\n", encoding="utf-8")
    with pytest.raises(RuleError, match=re.escape(f"{path}: not valid TOML")):
        load_rules(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(RuleError, match=re.escape(f"{path}: cannot read the rules file")):
        load_rules(path)


def test_a_fault_in_a_file_names_the_path_rule_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(VALID_FILE.replace("percent = 7.5", "percent = 7.505"), encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_rules(path)
    assert str(info.value).startswith(f"{path}: rule 'std-5': field 'percent'")


# ----------------------------------------------------------------------------- member order


def members(tree: dict, group_id: str) -> list[str]:
    program = compile_rules(tree, SOURCE)
    group = next(g for g in program.groups if g.id == group_id)
    return [program.groups[i].id if is_group else program.rules[i].id
            for is_group, i in group.members]


def test_members_run_by_priority_then_file_order() -> None:
    tree = rules(disc(priority=5) | {"id": "late"}, disc(priority=1) | {"id": "early"},
                 disc(priority=5) | {"id": "late2"})
    assert members(tree, "(discount root)") == ["early", "late", "late2"]


def test_nested_group_sits_where_its_first_member_would() -> None:
    # root: a (prio 1), b (prio 3); group g holds c (prio 2) and d (prio 9) → g's key is c's (2)
    tree = rules(disc(priority=1) | {"id": "a"}, disc(priority=3) | {"id": "b"},
                 disc(priority=9, group="g") | {"id": "d"},
                 disc(priority=2, group="g") | {"id": "c"},
                 group=[{"id": "g"}])
    assert members(tree, "(discount root)") == ["a", "g", "b"]
    assert members(tree, "g") == ["c", "d"]


def test_nested_group_with_its_own_priority() -> None:
    # g's own priority 5 overrides its first member's priority 0 → g runs after b (prio 3)
    tree = rules(disc(priority=1) | {"id": "a"}, disc(priority=3) | {"id": "b"},
                 disc(priority=0, group="g") | {"id": "c"}, group=[{"id": "g", "priority": 5}])
    assert members(tree, "(discount root)") == ["a", "b", "g"]


def test_deeply_nested_group_takes_its_innermost_first_member() -> None:
    # outer's only member is inner; inner's first member x has priority 0 → outer before a (prio 1)
    tree = rules(disc(priority=1) | {"id": "a"}, disc(priority=0, group="inner") | {"id": "x"},
                 group=[{"id": "outer"}, {"id": "inner", "parent": "outer"}])
    assert members(tree, "(discount root)") == ["outer", "a"]
    assert members(tree, "outer") == ["inner"]


def test_sixteen_levels_of_nesting_are_allowed() -> None:
    program = compile_rules(rules(group=chain(16)), SOURCE)
    assert len(program.groups) == 2 + 16


def test_top_level_groups_join_the_root_of_their_kind() -> None:
    tree = rules(rule("acc", "accrual", percent=1, group="a"), disc(group="d"),
                 group=[{"id": "a"}, {"id": "d"}])
    assert members(tree, "(accrual root)") == ["a"]
    assert members(tree, "(discount root)") == ["d"]
