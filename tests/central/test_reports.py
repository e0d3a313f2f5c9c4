"""Reports on both stores from real signed batches: the numbers, the CSV, the SVG plots, the
limits and the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from central import plots, reports
from central.cli import main
from central.reports import ReportError
from central.store import Store
from tests.central import chain_data as chain
from tests.central.helpers import fresh_store

JAN1, MAR31, DEC31 = dt.date(2027, 1, 1), dt.date(2027, 3, 31), dt.date(2027, 12, 31)
AFTER_SALES_MS = chain.ms("2027-01-12")


@pytest.fixture
def loaded(store: Store) -> Store:
    chain.load(store)
    return store


def test_points_per_day(loaded: Store) -> None:
    chain.sweep(loaded)
    report = reports.points_daily(loaded, JAN1, MAR31)
    assert len(report.rows) == (MAR31 - JAN1).days + 1  # every day, zeros included
    by_day = {row[0]: row[1:] for row in report.rows}
    for day, expected in chain.EXPECTED["points_daily"].items():
        assert by_day.pop(day) == expected, day
    assert all(values == (0,) * 6 for values in by_day.values())


def test_sales_per_day_per_store(loaded: Store) -> None:
    report = reports.sales_daily(loaded, JAN1, MAR31)
    assert {(r[0], r[1]): r[2:] for r in report.rows} == chain.EXPECTED["sales_daily"]
    assert [r[:2] for r in report.rows] == sorted(chain.EXPECTED["sales_daily"])
    only_day2 = reports.sales_daily(loaded, dt.date(2027, 1, 11), dt.date(2027, 1, 11))
    assert [r[:2] for r in only_day2.rows] == [(chain.DAY2, "T01")]


def test_sales_by_level_and_top_products(loaded: Store) -> None:
    assert reports.sales_by_level(loaded, JAN1, MAR31).rows == chain.EXPECTED["sales_by_level"]
    top = reports.top_products(loaded, JAN1, MAR31)
    assert top.rows == chain.EXPECTED["top_products"]
    assert reports.top_products(loaded, JAN1, MAR31, top=1).rows == chain.EXPECTED["top_products"][:1]


def test_liability_by_month_before_and_after_the_sweep(loaded: Store) -> None:
    before = reports.liability(loaded, JAN1, DEC31, now_ms=AFTER_SALES_MS)
    points = {r[0]: r[1] for r in before.rows}
    assert {k: v for k, v in points.items() if v} == chain.EXPECTED["liability"]
    assert {r[0]: r[2] for r in before.rows if r[2]} == {"2027-03": 1, "2027-06": 1, "never": 2}  # C2 and C9
    assert [r[0] for r in before.rows][:3] == ["expired", "before 2027-01-01", "2027-01"]
    assert sum(points.values()) == sum(c.balance for c in loaded.all_cards())  # every point is somewhere
    chain.sweep(loaded)
    after = {r[0]: r[1] for r in reports.liability(loaded, JAN1, DEC31, now_ms=chain.ms(chain.SWEEP_DAY)).rows}
    assert after["2027-03"] == 0 and after["2027-06"] == 50
    narrow = {r[0]: r[1] for r in reports.liability(loaded, JAN1, dt.date(2027, 4, 30), AFTER_SALES_MS).rows}
    assert narrow["after 2027-04-30"] == 50 and "2027-06" not in narrow


def test_csv_has_a_header_and_every_row(loaded: Store) -> None:
    for name in reports.REPORTS:
        report = reports.run(loaded, name, JAN1, MAR31, now_ms=AFTER_SALES_MS)
        rows = list(csv.reader(io.StringIO(reports.to_csv(report))))
        assert rows[0] == [c.name for c in report.columns]
        assert rows[1:] == [[str(v) for v in row] for row in report.rows]


def test_csv_neutralises_formula_cells(loaded: Store) -> None:
    loaded.publish("product", [("A", {"sku": "A", "name": "=HYPERLINK(1)", "price": 1, "barcodes": []})])
    report = reports.top_products(loaded, JAN1, MAR31)
    rows = list(csv.DictReader(io.StringIO(reports.to_csv(report))))
    assert rows[0]["name"] == "'=HYPERLINK(1)" and rows[0]["paid"] == "1650"


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # well-formed XML or this raises
    assert root.tag.endswith("svg")
    return [t.strip() for t in root.itertext() if t.strip()]


def test_every_report_plots_as_svg_with_its_series(loaded: Store) -> None:
    chain.sweep(loaded)
    series = {
        "points_daily": ["earned", "redeemed", "expired"],
        "sales_daily": ["T01 sales", "T01 discount", "T02 sales", "T02 discount"],
        "sales_by_level": ["total", "discount", "gold", "silver", "(no card)"],
        "top_products": ["paid", "A Apple", "B Bread"],
        "liability": ["outstanding points", "2027-03", "never"],
    }
    for name, wanted in series.items():
        svg = plots.render(reports.run(loaded, name, JAN1, MAR31, now_ms=AFTER_SALES_MS))
        texts = _texts(svg)
        for text in wanted:
            assert text in texts, (name, text)
        assert "<script" not in svg and "http://kozea" not in svg and "//kozea" not in svg
    top = _texts(plots.render(reports.top_products(loaded, JAN1, MAR31)))
    assert "1650" in top  # the value is in the plot, not just the axis


def test_plots_leave_no_finder_without_find_spec() -> None:
    # pygal's map-plugin finder would turn every later missed import into an ImportWarning.
    assert all(hasattr(finder, "find_spec") for finder in sys.meta_path)


def test_an_empty_range_still_plots(store: Store) -> None:
    for name in reports.REPORTS:
        report = reports.run(store, name, JAN1, JAN1)
        _texts(plots.render(report))


def test_limits_are_refused_with_one_line(store: Store) -> None:
    with pytest.raises(ReportError, match="at most 366"):
        reports.points_daily(store, JAN1, JAN1 + dt.timedelta(days=366))
    with pytest.raises(ReportError, match="before it starts"):
        reports.sales_daily(store, MAR31, JAN1)
    with pytest.raises(ReportError, match=r"1\.\.100"):
        reports.top_products(store, JAN1, MAR31, top=101)
    with pytest.raises(ReportError, match="no report"):
        reports.run(store, "nope", JAN1, MAR31)
    with pytest.raises(ReportError, match="YYYY-MM-DD"):
        reports.parse_range("2027-1-1", "2027-01-02")


def test_reports_read_events_page_by_page(loaded: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = reports.sales_daily(loaded, JAN1, MAR31).rows
    monkeypatch.setattr(reports, "PAGE_ROWS", 1)
    assert reports.sales_daily(loaded, JAN1, MAR31).rows == whole
    monkeypatch.setattr(reports, "EVENTS_SCANNED_MAX", 2)
    with pytest.raises(ReportError, match="shorter range"):
        reports.sales_daily(loaded, JAN1, MAR31)


def test_cli_prints_json_csv_and_writes_the_plot(
    dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fresh_store(dsn)
    chain.load(store)
    store.close()
    assert main(["--db", dsn, "report", "sales_by_level", "--from", "2027-01-01", "--to", "2027-03-31"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [tuple(r) for r in out["rows"]] == chain.EXPECTED["sales_by_level"]
    assert out["columns"][0] == {"name": "level", "kind": "text"}
    svg = tmp_path / "top.svg"
    argv = ["--db", dsn, "report", "top_products", "--from", "2027-01-01", "--to", "2027-03-31", "--csv",
            "--top", "2", "--svg", str(svg)]
    assert main(argv) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert [r[0] for r in rows] == ["sku", "A", "C"]
    assert "A Apple" in _texts(svg.read_text())
    assert main(["--db", dsn, "report", "liability", "--from", "2027-01-01", "--to", "2028-01-02"]) == 2
    assert "at most 366" in capsys.readouterr().err
