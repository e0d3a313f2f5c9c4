"""Central refuses what a terminal would: catalog items by the same limits as the ledger's
`check_product`, rules compiled as the terminal compiles them, adjustments in the ledger's range."""

from __future__ import annotations

from typing import Any

import pytest

from central import checks
from protocol import schemas
from terminal.ledger.catalog import check_product
from terminal.ledger.errors import LedgerInputError

GOOD = {"sku": "A", "barcodes": ["111"], "name": "Apple", "price": 10, "categories": ["fruit"],
        "no_discount": False, "no_bonus": False, "min_price": 0}
PRODUCTS: list[dict[str, Any]] = [
    GOOD,
    {"sku": "A", "deleted": True},
    {**GOOD, "sku": "x" * 64},
    {**GOOD, "sku": "x" * 65},
    {**GOOD, "sku": "é" * 33},  # 66 UTF-8 bytes
    {**GOOD, "sku": ""},
    {**GOOD, "sku": "a\x00b"},
    {**GOOD, "price": 10**11},
    {**GOOD, "price": 10**11 + 1},
    {**GOOD, "price": -1},
    {**GOOD, "price": True},
    {**GOOD, "min_price": 11},
    {**GOOD, "name": ""},
    {**GOOD, "name": "n" * 257},
    {**GOOD, "barcodes": [str(i) for i in range(17)]},
    {**GOOD, "categories": ["c" * 129]},
    {**GOOD, "no_bonus": 1},
    {**GOOD, "colour": "red"},
]


@pytest.mark.parametrize("product", PRODUCTS)
def test_central_and_the_ledger_refuse_the_same_products(product: dict[str, Any]) -> None:
    try:
        check_product(product, "p")
        ledger_ok = True
    except LedgerInputError:
        ledger_ok = False
    try:
        schemas.check_product(product)
        central_ok = True
    except schemas.Invalid:
        central_ok = False
    assert central_ok == ledger_ok


def test_duplicate_skus_and_barcodes_are_refused() -> None:
    b = {**GOOD, "sku": "B"}
    with pytest.raises(checks.CheckError, match="barcode 111 already belongs to sku A"):
        checks.products([("row 2", GOOD), ("row 3", b)], {})
    with pytest.raises(checks.CheckError, match="barcode 111 already belongs to sku Z"):
        checks.products([("row 2", GOOD)], {"Z": ["111"]})
    with pytest.raises(checks.CheckError, match="listed twice"):
        checks.products([("row 2", GOOD), ("row 3", GOOD)], {})
    checks.products([("row 2", GOOD)], {"A": ["111"], "Z": ["222"]})  # a product republished keeps its codes


def test_rules_are_compiled_as_a_terminal_compiles_them() -> None:
    checks.rules('[[rule]]\nid = "d"\nkind = "discount"\npercent = 5\n', "ok.toml")
    for text in ('[[rule]]\nid = "d"\nkind = "discount"\npercent = 500\n', "not = toml = at all"):
        with pytest.raises(checks.CheckError):
            checks.rules(text, "bad.toml")
    with pytest.raises(checks.CheckError, match="version"):
        checks.version("v" * 65, "rules")


@pytest.mark.parametrize("points", [0, 10**9 + 1, -(10**9) - 1, 2**62])
def test_adjustments_beyond_a_terminals_limit_are_refused(points: int) -> None:
    with pytest.raises(checks.CheckError, match="card adjust"):
        checks.adjustment("C1", points)
    with pytest.raises(checks.CheckError, match="beyond"):
        checks.balance("C1", 10**15 + 1)
