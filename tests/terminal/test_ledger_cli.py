"""`posterm ledger …` through a real subprocess, as a technician runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-23T10:00:00+03:00"


def posterm(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POSTERM_PURE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "ledger", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}: {done.stderr}")
    return done


@pytest.fixture
def ledger_dir(tmp_path):
    path = tmp_path / "ledger"
    assert (
        "ready"
        in posterm(
            "init", "--path", str(path), "--terminal-id", "T01", "--map-size-mb", "16"
        ).stdout
    )
    cards = tmp_path / "cards.csv"
    cards.write_text(
        "number,type,holder,cumulative,balance,expires_at,referrers,blocked,birth_date,issued_on,tags\n"
        "C1,standard,Ann,100,500,2027-01-01T00:00:00+03:00,,,,,\n"
        "C2,gold,Bob,0,40,,C1,,,,\n"
    )
    posterm("import-cards", str(cards), "--ledger", str(path), "--now", NOW)
    return path


def test_card_adjust_report_verify_stats(ledger_dir):
    common = ["--ledger", str(ledger_dir), "--now", NOW]
    out = posterm("card", "C1", *common).stdout
    assert "balance 500" in out and "until 2027-01-01T00:00:00+03:00" in out
    out = posterm(
        "adjust",
        "C2",
        "+15",
        "--reason",
        "goodwill",
        "--technician",
        "ivan",
        "--id",
        "adj-1",
        *common,
    ).stdout
    assert "balance 55" in out
    again = posterm(
        "adjust",
        "C2",
        "+15",
        "--reason",
        "goodwill",
        "--technician",
        "ivan",
        "--id",
        "adj-1",
        *common,
    ).stdout
    assert "balance 55" in again  # retried by id: nothing added twice
    balances = json.loads(posterm("report", "balances", "--json", *common).stdout)
    assert [(r["number"], r["balance"]) for r in balances] == [("C1", 500), ("C2", 55)]
    points = json.loads(posterm("report", "points", "--json", "--ledger", str(ledger_dir)).stdout)
    assert points["adjusted_up"] == 15
    expired = posterm(
        "expire", "--ledger", str(ledger_dir), "--now", "2027-01-02T00:00:00+03:00"
    ).stdout
    assert "expired 500 point(s) on 1 card(s)" in expired
    z = posterm("report", "shift", "--close", *common).stdout
    assert z.startswith("Z report, shift 1")
    assert "OK — 2 cards" in posterm("verify", "--ledger", str(ledger_dir)).stdout
    stats = json.loads(posterm("stats", "--json", "--ledger", str(ledger_dir)).stdout)
    assert stats["shift"] == 2 and stats["backlog"] == stats["next_seq"] - 1


def test_export_balances_to_a_file(ledger_dir, tmp_path):
    out = tmp_path / "balances.csv"
    posterm("export-balances", "--out", str(out), "--ledger", str(ledger_dir), "--now", NOW)
    assert out.read_text().splitlines()[1].startswith("C1,standard,Ann,100,500,500,")


def test_refusals_exit_2_with_one_line(ledger_dir, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "number,type,holder,cumulative,balance,expires_at,referrers,blocked,birth_date,issued_on,tags\n"
        "C9,s,X,abc,1,,,,,,\n"
    )
    done = posterm("import-cards", str(bad), "--ledger", str(ledger_dir), check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "row 2 field 'cumulative'" in done.stderr and "nothing imported" in done.stderr
    done = posterm(
        "adjust",
        "C1",
        "-9999",
        "--reason",
        "x",
        "--technician",
        "t",
        "--ledger",
        str(ledger_dir),
        "--now",
        NOW,
        check=False,
    )
    assert done.returncode == 2 and "card C1: has 500 unexpired points" in done.stderr
    done = posterm("card", "NOPE", "--ledger", str(ledger_dir), check=False)
    assert done.returncode == 2 and done.stderr == "posterm: card NOPE: not in the ledger\n"
    done = posterm("verify", "--ledger", str(tmp_path / "nowhere"), check=False)
    assert done.returncode == 2 and "no ledger here" in done.stderr
    done = posterm("stats", check=False)
    assert done.returncode == 2 and "--ledger DIR is required" in done.stderr
