import copy

import pytest

from terminal.ledger import (
    LedgerBalanceError,
    LedgerConflictError,
    LedgerInputError,
    LedgerNotFoundError,
    codec,
    keys,
    sales,
)

from .conftest import NOW, add_card, assert_ok, lots_of, sell, tenders


def test_sale_consumes_soonest_expiring_first_and_adds_the_accrual_lot(ledger, engine):
    add_card(ledger, "C1")
    ledger.adjust("a1", "C1", 300, "promo", "tech", NOW, "2027-06-01T00:00:00+03:00")
    ledger.adjust("a2", "C1", 200, "promo", "tech", NOW, "2027-01-01T00:00:00+03:00")
    ledger.adjust("a3", "C1", 100, "promo", "tech", NOW)  # never expires
    quote, result = sell(ledger, engine, "s1", "C1", [100000], redeem=250)
    assert quote["redeem"]["points"] == 250
    by_expiry = {lot["expires_at"]: lot["points"] for lot in lots_of(ledger, "C1")}
    assert "2027-01-01T00:00:00+03:00" not in by_expiry  # 200 taken first
    assert by_expiry["2027-06-01T00:00:00+03:00"] == 250  # then 50 of the next
    assert by_expiry[None] == 100
    assert by_expiry[quote["accrual"]["expires_at"]] == quote["accrual"]["points"]
    assert result["balance"] == 600 - 250 + quote["accrual"]["points"]
    assert_ok(ledger)


def test_sale_updates_cumulative_type_and_writes_receipt_and_event(ledger, engine):
    add_card(ledger, "C1")
    quote, result = sell(ledger, engine, "s1", "C1", [1200000])
    card = ledger.card("C1", NOW)
    assert card["cumulative"] == quote["total"] == 1140000
    assert card["type"] == "silver"
    receipt = ledger.receipt("s1")
    assert receipt["quote"] == quote and receipt["type_before"] == "standard"
    event = ledger.outbox_pending()[-1]
    assert event["type"] == "sale" and event["seq"] == result["seq"]
    assert event["receipt"] == "s1" and event["deltas"] == {"C1": 228}


def test_retry_returns_the_original_result_and_changes_nothing(ledger, engine):
    add_card(ledger, "C1", 1000)
    quote, first = sell(ledger, engine, "s1", "C1", [10000], redeem="max")
    before = (ledger.meta(), ledger.card("C1", NOW))
    again = ledger.commit_sale("s1", quote, "C1", tenders(quote), "2026-11-24T10:00:00+03:00")
    assert again == first
    assert (ledger.meta(), ledger.card("C1", NOW)) == before


def test_same_id_with_different_content_is_refused(ledger, engine):
    add_card(ledger, "C1", 1000)
    quote, _ = sell(ledger, engine, "s1", "C1", [10000])
    other = copy.deepcopy(quote)
    other["lines"][0]["rules"] = ["x"]
    with pytest.raises(LedgerConflictError, match=r"s1.*exists_with_different_fields"):
        ledger.commit_sale("s1", other, "C1", tenders(other), NOW)
    with pytest.raises(LedgerConflictError, match="different sale"):
        ledger.adjust("s1", "C1", 5, "x", "t", NOW)


def test_redeeming_more_than_available_is_refused_and_changes_nothing(ledger, engine):
    add_card(ledger, "C1", 1000)
    quote = engine.quote(
        {"store": "S01", "lines": [{"sku": "A", "price": 100000, "qty": 1}]},
        ledger.card_for_quote("C1", NOW),
        NOW,
        "max",
    )
    ledger.adjust("take", "C1", -900, "fix", "tech", NOW)
    before = ledger.meta()
    with pytest.raises(LedgerBalanceError, match="card C1: 100 points available"):
        ledger.commit_sale("s1", quote, "C1", tenders(quote), NOW)
    assert ledger.meta() == before and ledger.receipt("s1") is None
    assert_ok(ledger)


def test_blocked_or_unknown_card_is_refused(ledger, engine):
    ledger.apply_updates("b", {"cards": [{"number": "C9", "version": 1}]}, NOW)
    quote = engine.quote(
        {"store": "S01", "lines": [{"sku": "A", "price": 100, "qty": 1}]},
        ledger.card_for_quote("C9", NOW),
        NOW,
    )
    ledger.apply_updates("b2", {"cards": [{"number": "C9", "version": 2, "blocked": True}]}, NOW)
    with pytest.raises(LedgerBalanceError, match="C9: blocked; price the cart without it"):
        ledger.card_for_quote("C9", NOW)
    with pytest.raises(LedgerBalanceError, match="C9: blocked"):
        ledger.commit_sale("s1", quote, "C9", tenders(quote), NOW)
    with pytest.raises(LedgerNotFoundError, match="card C8"):
        ledger.commit_sale("s2", quote, "C8", tenders(quote), NOW)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda q, p: q.update(to_pay=q["to_pay"] + 1), "tenders add up|does not add up"),
        (lambda q, p: p["tenders"][0].update(amount=1), "tenders add up to 1"),
        (lambda q, p: q["lines"][0].update(paid=-1), "line 0 field 'paid'"),
        (lambda q, p: q.update(lines="x"), "field 'lines'"),
        (lambda q, p: p.update(extra=1), "unknown field"),
    ],
)
def test_malformed_quotes_and_payments_are_refused(ledger, engine, mutate, message):
    add_card(ledger, "C1")
    quote = engine.quote(
        {"store": "S01", "lines": [{"sku": "A", "price": 100, "qty": 1}]},
        ledger.card_for_quote("C1", NOW),
        NOW,
    )
    payment = tenders(quote)
    mutate(quote, payment)
    with pytest.raises(LedgerInputError, match=message):
        ledger.commit_sale("s1", quote, "C1", payment, NOW)


def test_sale_without_card_and_referral_credit(ledger, engine):
    add_card(ledger, "REF1")
    add_card(ledger, "C1", referrers=["REF1", "REF-ELSEWHERE"])
    quote, _ = sell(ledger, engine, "s1", "C1", [100000])
    assert [r["points"] for r in quote["referral"]] == [28, 9]
    assert ledger.card("REF1", NOW)["balance"] == 28
    assert ledger.receipt("s1")["referral"][1]["local"] is False
    _, result = sell(ledger, engine, "s2", None, [500])
    assert result["balance"] is None
    assert_ok(ledger)


JUNK = [None, True, False, -1, 0, 1, 10**15, 10**15 + 1, 2**64, 1.5, "", "x", "x" * 33, "x" * 129]
JUNK += [[], [1], {}, {"a": 1}]


def _paths(value, prefix=()):
    """Every (container, key) place inside a quote or payment, to put junk into."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*prefix, i)
            yield from _paths(item, (*prefix, i))


def _careful_accepts(check, *args):
    try:
        check(*args)
    except LedgerInputError:
        return False
    return True


def _variants(value):
    """`value` with each place in turn replaced by each junk value, deleted, or given a new
    key (`reference`, `referral`, `card_type_after`, `x`) holding junk; and junk for the whole."""
    for junk in JUNK:
        yield junk
        for name in ("reference", "referral", "card_type_after", "x"):
            yield _with(value, (), name, junk)
    for path in list(_paths(value)):
        for change in ["delete", "add", *range(len(JUNK))]:
            copied = copy.deepcopy(value)
            parent = copied
            for step in path[:-1]:
                parent = parent[step]
            if change == "delete":
                if not isinstance(parent, dict):
                    continue
                del parent[path[-1]]
            elif change == "add":
                target = parent[path[-1]]
                if not isinstance(target, dict):
                    continue
                for name in ("reference", "referral", "card_type_after", "x"):
                    for junk in JUNK:
                        yield _with(copied, path, name, junk)
                continue
            else:
                parent[path[-1]] = copy.deepcopy(JUNK[change])
            yield copied


def _with(value, path, name, junk):
    copied = copy.deepcopy(value)
    target = copied
    for step in path:
        target = target[step]
    target[name] = copy.deepcopy(junk)
    return copied


def test_the_quick_checks_accept_nothing_the_careful_checks_refuse(engine):
    """check_quote/check_payment decide the common case with a few C-level passes and fall back
    to the field-by-field checks; the quick road must never let through what the careful one
    refuses, whatever field is replaced by junk, removed or added (every place, every junk)."""
    quote = engine.quote(
        {"store": "S01", "lines": [{"sku": f"P{i}", "price": 100 + i, "qty": 1} for i in range(2)]},
        {"number": "C1", "type": "standard", "cumulative": 0, "lots": [], "referrers": []},
        NOW,
        None,
    )
    quote["card_type_after"] = "silver"
    checked = 0
    for variant in _variants(quote):
        if sales._plain_quote(variant):
            assert _careful_accepts(sales._checked_quote, variant, "sale x"), variant
        checked += 1
    for variant in _variants({"tenders": [{"method": "card", "amount": 5, "reference": "r"}]}):
        if sales._plain_tenders(variant):
            assert _careful_accepts(sales._checked_tenders, variant, "sale x"), variant
        checked += 1
    assert checked > 1000


def test_the_quick_checks_take_the_common_case(engine):
    quote = engine.quote(
        {"store": "S01", "lines": [{"sku": "A", "price": 100, "qty": 1}]},
        {"number": "C1", "type": "standard", "cumulative": 0, "lots": [], "referrers": []},
        NOW,
        None,
    )
    assert sales._plain_quote(quote) and sales._plain_tenders(tenders(quote))
    assert sales._plain_tenders({"tenders": [{"method": "card", "amount": 5, "reference": "r-1"}]})


def _reordered(value):
    """The same content with every dict's keys in reverse order."""
    if isinstance(value, dict):
        return {key: _reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(item) for item in value]
    return value


def test_a_retry_is_compared_with_the_receipt_whatever_its_key_order(ledger, engine):
    add_card(ledger, "C1", 1000)
    quote, first = sell(ledger, engine, "s1", "C1", [10000, 2500], redeem=100)
    with ledger.store.env.begin() as txn:
        assert txn.get(keys.text("s1"), db=ledger.store.dbs["ops"]) is None  # the receipt is the record
        assert codec.load(keys.text("s1"), txn.get(keys.text("s1"), db=ledger.store.dbs["receipts"]))["result"] == first
    before = (ledger.meta(), ledger.card("C1", NOW))
    again = ledger.commit_sale("s1", _reordered(quote), "C1", _reordered(tenders(quote)), NOW)
    assert again == first and (ledger.meta(), ledger.card("C1", NOW)) == before


@pytest.mark.parametrize(
    "change",
    [
        lambda q, p: q["lines"][0].update(rules=[*q["lines"][0]["rules"], "x"]),
        lambda q, p: q.update(extra=2),
        lambda q, p: q.update(extra=1.0),  # 1 and 1.0 are the same to ==, not to the ledger
        lambda q, p: q.update(extra=True),
        lambda q, p: p["tenders"][0].update(reference="r-2"),
    ],
)
def test_a_retry_with_other_content_is_refused(ledger, engine, change):
    add_card(ledger, "C1", 1000)
    quote = engine.quote(
        {"store": "S01", "lines": [{"sku": "A", "price": 100, "qty": 1}]}, ledger.card_for_quote("C1", NOW), NOW
    )
    first_quote, payment = copy.deepcopy(quote), tenders(quote)
    first_quote["extra"] = 1
    ledger.commit_sale("s1", first_quote, "C1", payment, NOW)
    other_quote, other_payment = copy.deepcopy(first_quote), copy.deepcopy(payment)
    change(other_quote, other_payment)
    with pytest.raises(LedgerConflictError, match="exists_with_different_fields"):
        ledger.commit_sale("s1", other_quote, "C1", other_payment, NOW)


def test_a_retry_naming_another_checkout_is_refused(ledger, engine):
    add_card(ledger, "C1", 1000)
    quote, _ = sell(ledger, engine, "s1", "C1", [10000], checkout="K1")
    with pytest.raises(LedgerConflictError, match="exists_with_different_fields"):
        ledger.commit_sale("s1", quote, "C1", tenders(quote), NOW, checkout="K2")
    assert ledger.commit_sale("s1", quote, "C1", tenders(quote), NOW, checkout="K1")["receipt"] == "s1"


def test_a_sale_recorded_by_an_older_build_is_still_matched_by_its_digest(ledger, engine):
    """Older builds kept the request's digest and the result in an op record, and neither the
    checkout nor the result in the receipt."""
    add_card(ledger, "C1", 1000)
    quote, first = sell(ledger, engine, "s1", "C1", [10000])
    payment = tenders(quote)
    request = {"quote": quote, "card": "C1", "payment": payment, "checkout": None}
    dbs = ledger.store.dbs
    with ledger.store.env.begin(write=True) as txn:
        op = {"kind": "sale", "digest": codec.digest(["sale", request]), "result": first}
        txn.put(keys.text("s1"), codec.dump(keys.text("s1"), op), db=dbs["ops"])
        receipt = codec.load(keys.text("s1"), txn.get(keys.text("s1"), db=dbs["receipts"]))
        del receipt["checkout"], receipt["result"]
        txn.put(keys.text("s1"), codec.dump(keys.text("s1"), receipt), db=dbs["receipts"])
    assert ledger.commit_sale("s1", _reordered(quote), "C1", payment, NOW) == first
    other = copy.deepcopy(quote)
    other["lines"][0]["rules"] = ["x"]
    with pytest.raises(LedgerConflictError, match="exists_with_different_fields"):
        ledger.commit_sale("s1", other, "C1", payment, NOW)
