"""Awards at central (spec §16), on SQLite and PostgreSQL: a grant opens a dated lot and is
recorded; the same key never grants twice (and is refused for another card or award);
`per_card_max` holds across retries and concurrent collectors; refusals change nothing; the
kiosk's `card_registered` event grants `registration` once whatever batches are re-sent; the
CLI; the awarded lot reaches the feed with its dates."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from central import awards
from central.awards import AwardError, grant
from central.balances import CardState
from central.cli import main
from central.feed import build_updates
from central.store import Store, open_store
from protocol import wire
from tests.central.events import complete, iso
from tests.central.test_store_lots import AT_MS, MACS, Terminal, sale

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "awards.toml"
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
THRICE = """
[program]
point_value = 100
[[award]]
id = "visit"
points = 7
activation_days = 2
per_card_max = 3
[[award]]
id = "registration"
points = 50
expiry_days = 30
"""
COLLECTORS = 8


def publish(dsn: str, text: str | None = None, tmp: Path | None = None) -> None:
    path = EXAMPLE
    if text is not None:
        assert tmp is not None
        path = tmp / "rules.toml"
        path.write_text(text)
    assert main(["--db", dsn, "publish", "rules", str(path)]) == 0


def cards(store: Store, *numbers: str, blocked: bool = False) -> None:
    store.put_cards([CardState(n, type="bronze", blocked=blocked) for n in numbers])


def lots_of(store: Store, number: str) -> list[tuple[int, str | None, str | None, str]]:
    return [(x["points"], x["available_from"], x["expires_at"], x["source"]) for x in store.card_lots(number)]


def balance(store: Store, number: str) -> int:
    found = store.card(number)
    assert found is not None
    return found[0].balance


def test_a_grant_opens_a_dated_lot_and_a_key_never_grants_twice(dsn: str, store: Store) -> None:
    publish(dsn)
    cards(store, "C1", "C2")
    done = grant(store, "C1", "registration", "crm-1", "alice", NOW)
    start = NOW.astimezone(dt.UTC)
    assert done.as_dict() == {
        "key": "crm-1", "card": "C1", "award": "registration", "points": 100,
        "available_from": start.isoformat(), "expires_at": (start + dt.timedelta(days=90)).isoformat(),
        "actor": "alice", "at": start.isoformat(), "replayed": False,
    }
    assert lots_of(store, "C1") == [(100, done.available_from, done.expires_at, "award")]
    assert balance(store, "C1") == 100
    # A retry (lost answer, a second collector): the first grant, no second lot.
    again = grant(store, "C1", "registration", "crm-1", "bob", NOW + dt.timedelta(days=1))
    assert again.replayed and {**again.as_dict(), "replayed": False} == done.as_dict()
    assert balance(store, "C1") == 100 and len(store.card_lots("C1")) == 1
    # The key names this grant: for another card or award it is refused.
    for card, award in (("C2", "registration"), ("C1", "review")):
        with pytest.raises(AwardError, match="key 'crm-1' was used for award registration on card C1"):
            grant(store, card, award, "crm-1", "alice", NOW)
    # per_card_max = 1: a new key for the same award is refused, nothing moves.
    with pytest.raises(AwardError, match=r"has it 1 time\(s\) already, the program allows 1"):
        grant(store, "C1", "registration", "crm-2", "alice", NOW)
    # per_card_max = 0: no limit, a lot per grant (same dates: one lot of their sum).
    for key in ("rev-1", "rev-2"):
        assert grant(store, "C1", "review", key, "alice", NOW).points == 20
    assert balance(store, "C1") == 140 and balance(store, "C2") == 0
    assert [(g.key, g.award, g.actor) for g in awards.grants(store, "C1")] == [
        ("crm-1", "registration", "alice"), ("rev-1", "review", "alice"), ("rev-2", "review", "alice")]
    assert store.verify()["ok"]


def test_activation_and_never_expiring_awards(dsn: str, store: Store, tmp_path: Path) -> None:
    publish(dsn, THRICE, tmp_path)
    cards(store, "C1")
    done = grant(store, "C1", "visit", "v1", "cli", NOW)
    start = NOW.astimezone(dt.UTC) + dt.timedelta(days=2)
    assert (done.available_from, done.expires_at) == (start.isoformat(), None)
    assert lots_of(store, "C1") == [(7, start.isoformat(), None, "award")]


@pytest.mark.parametrize(
    ("card", "award", "key", "actor", "message", "status"),
    [
        ("C9", "registration", "k", "a", "card C9 is unknown to the central server", 404),
        ("C1", "birthday", "k", "a", "award 'birthday': not in the published program 'examples/awards' "
                                     r"\(its awards: registration, review\)", 404),
        ("B1", "registration", "k", "a", "card B1 is blocked", 409),
        ("C1", "registration", "", "a", "the idempotency key must be 1..128 printable", 400),
        ("C1", "registration", "k" * 129, "a", "the idempotency key must be 1..128 printable", 400),
        ("C1", "registration", "k", "a\n", "the actor must be", 400),
        ("C" * 65, "registration", "k", "a", "is not 1..64 printable characters", 400),
    ],
)
def test_refusals_say_why_and_change_nothing(
    dsn: str, store: Store, card: str, award: str, key: str, actor: str, message: str, status: int
) -> None:
    publish(dsn)
    cards(store, "C1")
    cards(store, "B1", blocked=True)
    with pytest.raises(AwardError, match=message) as refused:
        grant(store, card, award, key, actor, NOW)
    assert refused.value.status == status
    assert [balance(store, n) for n in ("C1", "B1")] == [0, 0] and awards.grants(store) == []
    assert store.card("C9") is None  # an unknown card is not created by the attempt


def test_no_published_rules_no_award(store: Store) -> None:
    cards(store, "C1")
    with pytest.raises(AwardError, match="central has no published rules; publish the program first"):
        grant(store, "C1", "registration", "k", "a", NOW)


def _race(dsn: str, calls: list[tuple[str, str, str]]) -> list[Any]:
    """Each call in its own thread with its own store (connection): concurrent collectors."""
    results: list[Any] = [None] * len(calls)
    gate = threading.Barrier(len(calls))

    def run(i: int, card: str, award: str, key: str) -> None:
        mine = open_store(dsn)
        try:
            gate.wait(10)
            results[i] = grant(mine, card, award, key, f"collector {i}", NOW)
        except AwardError as exc:
            results[i] = exc
        finally:
            mine.close()

    threads = [threading.Thread(target=run, args=(i, *c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return results


def test_per_card_max_holds_across_concurrent_collectors(dsn: str, store: Store, tmp_path: Path) -> None:
    publish(dsn, THRICE, tmp_path)
    cards(store, "C1", "C2")
    results = _race(dsn, [("C1", "visit", f"visit-{i}") for i in range(COLLECTORS)]
                    + [("C2", "visit", f"c2-{i}") for i in range(2)])
    granted = [r for r in results[:COLLECTORS] if not isinstance(r, Exception)]
    refused = [r for r in results[:COLLECTORS] if isinstance(r, AwardError)]
    assert len(granted) == 3 and len(refused) == COLLECTORS - 3
    assert all("per_card_max" in str(r) for r in refused)
    assert balance(store, "C1") == 21 and balance(store, "C2") == 14
    assert len(awards.grants(store, "C1")) == 3 and store.verify()["ok"]


def test_one_key_retried_by_concurrent_collectors_grants_once(dsn: str, store: Store, tmp_path: Path) -> None:
    publish(dsn, THRICE, tmp_path)
    cards(store, "C1", "C2")
    # The same key on the same grant everywhere; one collector also tries it for another card.
    calls = [("C1", "visit", "once")] * (COLLECTORS - 1) + [("C2", "visit", "once")]
    results = _race(dsn, calls)
    [first] = [r for r in results if isinstance(r, awards.Grant) and not r.replayed]
    loser = "C2" if first.card == "C1" else "C1"
    for (card, _, _), result in zip(calls, results, strict=True):
        if card == first.card:  # a retry anywhere answers the first grant
            assert isinstance(result, awards.Grant) and {**result.as_dict(), "replayed": False} == first.as_dict()
        else:
            assert isinstance(result, AwardError) and f"was used for award visit on card {first.card}" in str(result)
    assert balance(store, first.card) == 7 and balance(store, loser) == 0
    assert [g.key for g in awards.grants(store)] == ["once"]


def registered(card: str, at_ms: int = AT_MS, card_type: str = "bronze") -> dict[str, Any]:
    return {"type": "card_registered", "card": card, "card_type": card_type, "at_ms": at_ms, "at": iso(at_ms),
            "phone": "79123456789", "phone_masked": "+7 ••• ••• 67 89"}


def test_a_kiosk_enrolment_grants_registration_once(dsn: str, store: Store) -> None:
    publish(dsn)
    events = [complete({"id": f"{seq:032x}", "epoch": 1, "seq": seq, **body})
              for seq, body in enumerate([registered("N1"), sale("N1", 5)], 1)]
    data = wire.encode_batch("K1", 1, b"", events)
    store.ingest(wire.decode_batch(data), MACS[0])
    found = store.card("N1")
    assert found is not None and found[0].type == "bronze" and found[0].balance == 105
    start = dt.datetime.fromtimestamp(AT_MS / 1000, dt.UTC)
    assert (100, start.isoformat(), (start + dt.timedelta(days=90)).isoformat(), "award") in lots_of(store, "N1")
    [done] = awards.grants(store, "N1")
    assert (done.key, done.award, done.actor) == ("card_registered:N1", "registration", "terminal K1")
    # The batch re-sent (its ack was lost): stored as duplicates, nothing granted again.
    again = store.ingest(wire.decode_batch(data), MACS[0])
    assert (again.stored, again.duplicates) == (0, 2)
    # The same card enrolled again elsewhere: still one registration award.
    Terminal(store, "K2").send(registered("N1"))
    assert balance(store, "N1") == 105 and len(awards.grants(store)) == 1
    assert store.verify()["ok"]


def test_an_enrolment_without_a_registration_award_only_makes_the_card(dsn: str, store: Store,
                                                                         tmp_path: Path) -> None:
    publish(dsn, THRICE.replace('id = "registration"', 'id = "welcome"'), tmp_path)
    Terminal(store, "K1").send(registered("N2"))
    found = store.card("N2")
    assert found is not None and (found[0].type, found[0].balance) == ("bronze", 0)
    assert awards.grants(store) == []


def test_a_blocked_card_enrolled_gets_no_award_but_the_event_is_stored(dsn: str, store: Store) -> None:
    publish(dsn)
    cards(store, "B1", blocked=True)
    Terminal(store, "K1").send(registered("B1"))
    assert balance(store, "B1") == 0 and awards.grants(store) == []
    assert [e[3] for e in store.events()] and len(list(store.events())) == 1


def test_the_awarded_lot_goes_out_in_the_feed_with_its_dates(dsn: str, store: Store) -> None:
    publish(dsn)
    cards(store, "C1")
    done = grant(store, "C1", "registration", "k", "a", NOW)
    page = build_updates(store, "T01", 0)
    [entry] = [c for c in page["cards"] if c["number"] == "C1"]
    assert entry["balance"] == 100
    assert entry["lots"] == [{"points": 100, "available_from": done.available_from, "expires_at": done.expires_at}]


def test_cli_award_and_awards(dsn: str, store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    publish(dsn)
    cards(store, "C1")
    capsys.readouterr()
    argv = ["--db", dsn, "award", "C1", "review", "--key", "ticket-7", "--actor", "support"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["points"], first["actor"], first["replayed"]) == (20, "support", False)
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {**first, "replayed": True}
    assert main(["--db", dsn, "award", "C1", "nope", "--key", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("posterm-central: award 'nope': not in the published program") and err.count("\n") == 1
    assert main(["--db", dsn, "awards", "--card", "C1"]) == 0
    assert [json.loads(x)["key"] for x in capsys.readouterr().out.splitlines()] == ["ticket-7"]
    assert balance(store, "C1") == 20
