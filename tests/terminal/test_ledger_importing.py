import io

import pytest

import core
from terminal.ledger import ImportRowsError, LedgerError

from .conftest import NOW, RULES, assert_ok

CARDS_HEADER = "number,type,holder,cumulative,balance,expires_at,referrers,blocked,birth_date,issued_on,tags\n"
CATALOG_HEADER = "sku,barcode,name,price,categories,no_discount,no_bonus,min_price\n"


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_cards_import_with_opening_balances(ledger, tmp_path):
    path = _write(
        tmp_path,
        "cards.csv",
        CARDS_HEADER + "2000001,standard,Ann Lee,6650000,1200,2027-12-31T23:59:59+03:00,,,,,\n"
        '2000002,gold,"Bob, Jr",0,0,,2000001,,--02-29,2020-05-01,staff|b2b\n',
    )
    result = ledger.import_cards(path, NOW)
    assert result["imported"] == 2 and result["problems"] == []
    card = ledger.card("2000001", NOW)
    assert (card["cumulative"], card["balance"], card["server_balance"], card["local_delta"]) == (
        6650000,
        1200,
        1200,
        0,
    )
    assert card["lots"][0]["expires_at"] == "2027-12-31T23:59:59+03:00"
    assert ledger.card("2000002", NOW)["holder"] == "Bob, Jr"
    assert ledger.card("2000002", NOW)["referrers"] == ["2000001"]
    bob = ledger.card("2000002", NOW)  # the §12 facts are kept on the card
    assert (bob["birth_date"], bob["issued_on"], bob["tags"]) == ("--02-29", "2020-05-01", ["staff", "b2b"])
    quoted = ledger.card_for_quote("2000002", NOW)  # the pricing core's §12 conditions see them
    assert (quoted["birth_date"], quoted["issued_on"], quoted["tags"]) == ("--02-29", "2020-05-01", ["staff", "b2b"])
    core.Engine(core.compile_rules(RULES)).quote({"store": "S01", "lines": [{"sku": "P", "price": 100, "qty": 1}]},
                                                quoted, NOW)
    assert ledger.import_cards(path, NOW) == result  # the same file again changes nothing
    assert_ok(ledger)


def test_bad_rows_are_reported_by_row_and_field_and_nothing_is_imported(ledger, tmp_path):
    path = _write(
        tmp_path,
        "cards.csv",
        CARDS_HEADER + "C1,standard,A,100,10,,,,,,\n"
        "C2,standard,B,-5,10,,,,,,\n"
        "C3,standard,C,0,ten,,,,,,\n"
        "C4,standard,D,0,1,yesterday,,,,,\n"
        "C1,standard,E,0,1,,,,,,\n"
        "C6,standard\n",
    )
    with pytest.raises(ImportRowsError) as info:
        ledger.import_cards(path, NOW)
    assert info.value.problems == [
        (3, "cumulative", "expected a whole number 0..1000000000000000, got '-5'"),
        (4, "balance", "expected a whole number 0..1000000000000, got 'ten'"),
        (5, "expires_at", "expected an ISO-8601 time with an offset, got 'yesterday'"),
        (6, "number", "card C1 appears twice in the file"),
        (7, "*", "expected 11 fields, got 2"),
    ]
    assert "row 3 field 'cumulative'" in str(info.value)
    assert ledger.report_balances(NOW) == []
    forced = ledger.import_cards(path, NOW, force=True)
    assert forced["imported"] == 1 and len(forced["problems"]) == 5
    assert [r["number"] for r in ledger.report_balances(NOW)] == ["C1"]


def test_cards_already_in_the_ledger_are_bad_rows(ledger, tmp_path):
    ledger.import_cards(_write(tmp_path, "a.csv", CARDS_HEADER + "C1,s,A,0,5,,,,,,\n"), NOW)
    with pytest.raises(ImportRowsError, match="row 2 field 'number': card C1 is already"):
        ledger.import_cards(_write(tmp_path, "b.csv", CARDS_HEADER + "C1,s,A,0,7,,,,,,\n"), NOW)
    assert ledger.card("C1", NOW)["balance"] == 5


def test_file_level_refusals(ledger, tmp_path):
    with pytest.raises(LedgerError, match="row 1 must be the header"):
        ledger.import_cards(_write(tmp_path, "x.csv", "number,type\nC1,s\n"), NOW)
    with pytest.raises(LedgerError, match="cannot read"):
        ledger.import_cards(tmp_path / "missing.csv", NOW)
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(CARDS_HEADER.encode() + "C1,s,J\xf6rg,0,0,,,,,,\n".encode("latin-1"))
    with pytest.raises(LedgerError, match="not UTF-8"):
        ledger.import_cards(bad, NOW)


def test_catalog_import(ledger, tmp_path):
    path = _write(
        tmp_path,
        "catalog.csv",
        CATALOG_HEADER
        + "A1,4006381333931|4006381333948,Kettle,349900,appliances/kitchen|sale,0,yes,"
        "100000\n"
        "A2,,Bread,5900,food,1,0,\n"
        "A3,,Bad,12.50,food,0,0,\n"
        "A4,,Flag,100,food,maybe,0,\n",
    )
    with pytest.raises(ImportRowsError) as info:
        ledger.import_catalog(path, NOW)
    assert [(r, f) for r, f, _ in info.value.problems] == [(4, "price"), (5, "no_discount")]
    ledger.import_catalog(path, NOW, force=True)
    kettle = ledger.product("4006381333948")
    assert (kettle["sku"], kettle["no_bonus"], kettle["min_price"]) == ("A1", True, 100000)
    assert kettle["categories"] == ["appliances/kitchen", "sale"]
    assert ledger.product("A2")["no_discount"] is True
    assert_ok(ledger)


def test_export_balances(ledger, tmp_path):
    ledger.import_cards(
        _write(tmp_path, "a.csv", CARDS_HEADER + "C1,s,A,10,5,,,,,,\nC2,g,B,0,0,,,,,,\n"), NOW
    )
    out = io.StringIO()
    assert ledger.export_balances(out, NOW) == 2
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("number,type,holder,cumulative,balance,available")
    assert lines[1].startswith("C1,s,A,10,5,5,0,0,")


def test_each_card_field_is_named_in_the_report(ledger, tmp_path):
    long = "x" * 200
    path = _write(
        tmp_path,
        "cards.csv",
        CARDS_HEADER + f"{'9' * 70},s,A,0,0,,,,,,\n"
        f"C2,{'t' * 70},A,0,0,,,,,,\n"
        f"C3,s,{long},0,0,,,,,,\n"
        f"C4,s,A,0,0,,{'r' * 70},,,,\n"
        f"C5,s,A,0,0,,{'|'.join(['R'] * 9)},,,,\n",
    )
    with pytest.raises(ImportRowsError) as info:
        ledger.import_cards(path, NOW)
    assert [(r, f) for r, f, _ in info.value.problems] == [
        (2, "number"),
        (3, "type"),
        (4, "holder"),
        (5, "referrers"),
        (6, "referrers"),
    ]
