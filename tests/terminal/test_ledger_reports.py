from .conftest import NOW, add_card, sell

NEXT_DAY = "2026-11-24T10:00:00+03:00"


def test_points_per_period(ledger, engine):
    add_card(ledger, "C1", 1000)
    q1, _ = sell(ledger, engine, "s1", "C1", [100000], redeem=300)
    q2, _ = sell(ledger, engine, "s2", "C1", [50000], now=NEXT_DAY)
    ledger.commit_return("r1", "s1", [{"line": 0, "qty": 1}], NEXT_DAY)
    ledger.adjust("a1", "C1", -10, "x", "t", NEXT_DAY)
    day1 = ledger.report_points(NOW, NEXT_DAY)
    assert (day1["accrued"], day1["redeemed"], day1["clawed"]) == (q1["accrual"]["points"], 300, 0)
    day2 = ledger.report_points(NEXT_DAY, None)
    assert day2["accrued"] == q2["accrual"]["points"] and day2["redeemed"] == 0
    assert day2["restored"] == 300 and day2["clawed"] == q1["accrual"]["points"]
    assert day2["adjusted_down"] == 10


def test_sales_by_card_type(ledger, engine):
    add_card(ledger, "S", card_type="standard")
    add_card(ledger, "G", card_type="gold")
    qs, _ = sell(ledger, engine, "s1", "S", [10000])
    qg, _ = sell(ledger, engine, "s2", "G", [20000])
    qn, _ = sell(ledger, engine, "s3", None, [30000])
    ledger.commit_return("r1", "s2", [{"line": 0, "qty": 1}], NOW)
    report = ledger.report_sales()
    assert list(report) == ["(no card)", "gold", "standard"]
    assert report["standard"]["total"] == qs["total"] and report["standard"]["discount"] == 500
    assert report["gold"]["returns"] == 1 and report["gold"]["returned_money"] == qg["to_pay"]
    assert report["(no card)"]["to_pay"] == qn["to_pay"]


def test_shift_x_and_z(ledger, engine):
    assert ledger.report_shift()["opened_at"] is None  # nothing happened yet
    add_card(ledger, "C1", 100)
    quote, _ = sell(ledger, engine, "s1", "C1", [10000])
    x = ledger.report_shift()
    assert (
        x["shift"] == 1 and x["totals"]["sales"] == 1 and x["tenders"] == {"cash": quote["to_pay"]}
    )
    # the first shift was never opened by a close: it opened with its first event
    assert x["opened_at"] == ledger.outbox_pending()[0]["at"]
    z = ledger.close_shift("z-1", x["totals"], NOW)
    assert z["closed_shift"] == 1
    assert ledger.report_shift()["totals"]["sales"] == 0 and ledger.meta()["shift"] == 2
    assert ledger.report_shift()["opened_at"] == ledger.meta()["shift_opened_at"] is not None
    sell(ledger, engine, "s2", "C1", [500])
    assert ledger.report_shift()["totals"]["sales"] == 1


def test_balances_report(ledger, engine):
    add_card(ledger, "C1", 100)
    ledger.hold("h", "C1", "K", 30, NOW, "2026-11-23T10:05:00+03:00")
    (row,) = ledger.report_balances(NOW)
    assert (row["balance"], row["available"], row["held"], row["debt"]) == (100, 70, 30, 0)


def test_balances_report_stops_at_its_limit(ledger):
    for number in ("A", "B", "C"):
        add_card(ledger, number, 1)
    assert [r["number"] for r in ledger.report_balances(NOW, rows_max=2)] == ["A", "B"]
