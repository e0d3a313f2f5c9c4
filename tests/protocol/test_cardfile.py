"""The chain's card file (protocol/cardfile.py): what it accepts, what it refuses, and that the
terminal (`posterm ledger import-cards`) and central (`posterm-central publish cards`) refuse the
same files with the same message, running the real CLIs (central on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

import core.inputs
from protocol import cardfile
from terminal.ledger import cards as ledger_cards
from tests.central.conftest import dsn  # noqa: F401 — the sqlite/pg parametrized fixture
from tests.central.helpers import REPO

HEADER = ",".join(cardfile.COLUMNS) + "\n"
NOW_MS = int(dt.datetime(2026, 11, 23, 7, tzinfo=dt.UTC).timestamp() * 1000)
EXPIRY_MS = int(dt.datetime.fromisoformat("2027-12-31T23:59:59+03:00").timestamp() * 1000)


def rows(text: str) -> tuple[list[tuple[int, cardfile.CardRow]], list[cardfile.Problem]]:
    return cardfile.read((HEADER + text).encode(), NOW_MS, "cards.csv")


def test_a_good_file_gives_every_column() -> None:
    good, problems = rows(
        '2000001,gold,"Lee, Ann",6650000,1200,2027-12-31T23:59:59+03:00,2000009|2000008,yes,'
        "--02-29,2020-05-01,staff|b2b\n"
        "\n"  # blank lines are skipped, row numbers stay the spreadsheet's
        "2000002,,,,,,,,,,\n"
    )
    assert problems == []
    (first_no, first), (second_no, second) = good
    assert (first_no, second_no) == (2, 4)
    assert (first.holder, first.cumulative, first.balance, first.blocked) == ("Lee, Ann", 6650000, 1200, True)
    assert first.referrers == ("2000009", "2000008") and first.expires_ms == EXPIRY_MS
    assert first.facts() == {"birth_date": "--02-29", "issued_on": "2020-05-01", "tags": ["staff", "b2b"]}
    assert (second.balance, second.expires_at, second.facts(), second.blocked) == (0, None, {}, False)


def test_columns_in_any_order_but_all_of_them() -> None:
    order = list(reversed(cardfile.COLUMNS))
    data = (",".join(order) + "\n" + "t1,2021-01-01,,,,,5,0,Ann,s,C1\n").encode()
    good, problems = cardfile.read(data, NOW_MS)
    assert problems == [] and good[0][1].number == "C1" and good[0][1].balance == 5
    with pytest.raises(cardfile.CardFileError, match=r"missing expires_at.*unknown referrer"):
        cardfile.read(HEADER.replace("expires_at", "referrer").encode(), NOW_MS)


BAD_ROWS = [
    ("C1,s,A,0,-5,,,,,,", "balance", "expected a whole number 0..1000000000000, got '-5'"),
    ("C1,s,A,0,1000000000001,,,,,,", "balance", "1000000000001 is above the limit 1000000000000"),
    ("C1,s,A,-1,0,,,,,,", "cumulative", "expected a whole number"),
    ("C1,s,A,1000000000000001,0,,,,,,", "cumulative", "above the limit"),
    ("C1,s,A,0,5,2026-01-01T00:00:00+03:00,,,,,", "expires_at", "already past"),
    ("C1,s,A,0,5,2027-01-01T00:00:00,,,,,", "expires_at", "with an offset"),
    ("C1,s,A,0,5,,C1,,,,", "referrers", "refers to itself"),
    ("C1,s,A,0,5,,R|R,,,,", "referrers", "twice in the chain"),
    ("C1,s,A,0,5,,R1|R2|R3|R4|R5|R6|R7|R8|R9,,,,", "referrers", "more than 8"),
    ("C1,s,A,0,5,,,maybe,,,", "blocked", "expected 1/0"),
    ("C1,s,A,0,5,,,,1985-02-30,,", "birth_date", "expected a date"),
    ("C1,s,A,0,5,,,,--13-01,,", "birth_date", "not a day of the year"),
    ("C1,s,A,0,5,,,,,14.03.2020,", "issued_on", "expected a date"),
    ("C1,s,A,0,5,,,,,,a b", "tags", "is not 1..64"),
    ("C1,s,A,0,5,,,,,," + "|".join(f"t{i}" for i in range(17)), "tags", "more than 16"),
    ("C1,s,A,0,5,,,,,,x|x", "tags", "twice"),
    ("C1,s," + "h" * 129 + ",0,5,,,,,,", "holder", "at most 128"),
    ("C1,s,A,0,5", "*", "expected 11 fields, got 5"),
]


@pytest.mark.parametrize(("line", "field", "text"), BAD_ROWS)
def test_each_bad_row_is_named_by_row_and_field(line: str, field: str, text: str) -> None:
    good, problems = rows("C0,s,A,0,1,,,,,,\n" + line + "\n")
    assert [n for n, _ in good] == [2]
    assert len(problems) == 1 and problems[0][:2] == (3, field) and text in problems[0][2]


def test_a_card_twice_is_refused_on_its_second_row() -> None:
    _, problems = rows("C1,s,A,0,1,,,,,,\nC2,s,B,0,1,,,,,,\nC1,s,C,0,1,,,,,,\n")
    assert problems == [(4, "number", "card C1 appears twice in the file")]


def test_limits_are_the_pricing_cores_and_the_ledgers() -> None:
    assert cardfile.REFERRERS_MAX == core.inputs.REFERRERS_MAX == ledger_cards.REFERRERS_MAX
    assert cardfile.CUMULATIVE_MAX == core.inputs.AMOUNT_MAX
    assert cardfile.NUMBER_BYTES_MAX == core.inputs.SKU_CHARS_MAX
    assert cardfile.TYPE_CHARS_MAX == core.inputs.SKU_CHARS_MAX
    assert cardfile.HOLDER_CHARS_MAX <= core.inputs.TEXT_CHARS_MAX


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_terminal_and_central_refuse_the_same_files_with_the_same_message(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    ledger = tmp_path / "ledger"
    assert _run(["-m", "terminal.cli", "ledger", "init", "--path", str(ledger), "--terminal-id", "T01",
                 "--map-size-mb", "16"]).returncode == 0
    files = [HEADER + "C0,s,A,0,1,,,,,,\n" + line + "\n" for line, _, _ in BAD_ROWS[::3]]
    files.append(HEADER + "C1,s,A,0,1,,,,,,\nC1,s,B,0,1,,,,,,\n")
    files.append("number,type,holder,balance\nC1,s,A,1\n")  # the old central header
    for i, text in enumerate(files):
        path = tmp_path / f"bad{i}.csv"
        path.write_text(text)
        terminal = _run(["-m", "terminal.cli", "ledger", "import-cards", str(path), "--ledger", str(ledger)])
        central = _run(["-m", "central.cli", "--db", dsn, "publish", "cards", str(path)])
        assert terminal.returncode == central.returncode == 2, (terminal.stderr, central.stderr)
        said = terminal.stderr.removeprefix("posterm: ")
        assert said == central.stderr.removeprefix("posterm-central: ") and said.count("\n") == 1
        assert str(path) in said
    assert "C0" not in _run(["-m", "central.cli", "--db", dsn, "card", "list"]).stdout  # nothing published
