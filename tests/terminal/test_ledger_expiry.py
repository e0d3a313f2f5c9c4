from .conftest import NOW, add_card, assert_ok, lots_of

JAN = "2027-01-01T00:00:00+03:00"
AFTER_JAN = "2027-01-02T00:00:00+03:00"


def test_sweep_annuls_expired_lots_with_one_event_per_card(ledger):
    add_card(ledger, "C1")
    add_card(ledger, "C2")
    ledger.adjust("a", "C1", 200, "x", "t", NOW, JAN)
    ledger.adjust("b", "C1", 50, "x", "t", NOW)
    ledger.adjust("c", "C2", 70, "x", "t", NOW, JAN)
    assert ledger.expire("e0", NOW)["points"] == 0
    result = ledger.expire("e1", AFTER_JAN)
    assert result == {"cards": 2, "points": 270, "holds_dropped": 0, "more": False}
    assert [lot["points"] for lot in lots_of(ledger, "C1")] == [50]
    events = [e for e in ledger.outbox_pending() if e["type"] == "expiry"]
    assert [(e["card"], e["points"], e["deltas"]) for e in events] == [
        ("C1", 200, {"C1": -200}),
        ("C2", 70, {"C2": -70}),
    ]
    assert ledger.report_points()["expired"] == 270
    assert_ok(ledger)


def test_sweep_is_idempotent_by_id(ledger):
    add_card(ledger, "C1")
    ledger.adjust("a", "C1", 200, "x", "t", NOW, JAN)
    first = ledger.expire("e1", AFTER_JAN)
    seq = ledger.meta()["next_seq"]
    assert ledger.expire("e1", AFTER_JAN) == first
    assert ledger.meta()["next_seq"] == seq


def test_expired_points_are_not_offered_to_the_pricing_core(ledger):
    add_card(ledger, "C1")
    ledger.adjust("a", "C1", 200, "x", "t", NOW, JAN)
    assert ledger.card_for_quote("C1", AFTER_JAN)["lots"] == []
    assert ledger.card("C1", AFTER_JAN)["available"] == 0


def test_a_big_sweep_is_cut_into_bounded_steps(ledger, monkeypatch):
    from terminal.ledger import expiry

    monkeypatch.setattr(expiry, "SWEEP_EXPIRED_MAX", 2)
    add_card(ledger, "C1")
    for i in range(5):
        ledger.adjust(f"a{i}", "C1", 10, "x", "t", NOW, JAN)
    results = [ledger.expire(f"e{i}", AFTER_JAN) for i in range(3)]
    assert [(r["points"], r["more"]) for r in results] == [(20, True), (20, True), (10, False)]
    assert ledger.card("C1", AFTER_JAN)["balance"] == 0
    assert_ok(ledger)
