"""Fuzz corpus for the files a technician hands the CLI: rules (TOML), carts, cards, quotes and
returns (JSON), cards/catalog CSVs, `--now` values and `ledger init` arguments.

Property, for every seed and every bounded mutation of one: the command answers with a
documented exit code (0 accepted, 2 refused), a refusal is ONE line on stderr naming the
problem, nothing escapes as an exception (no traceback), and the ledger is byte-for-byte
unchanged by a refused command. Seeds are the reproduced failures of issue 12; the mutation
budget is bounded (`MUTATIONS`, hypothesis `max_examples`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terminal.cli import main
from terminal.demo_run import DATA
from terminal.ledger import Ledger

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RULES = EXAMPLES / "points-per-100.toml"
NOW = "2026-11-23T10:00:00+03:00"
MUTATIONS = settings(max_examples=40, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])

RULES_SEEDS = [
    "x = " + "[" * 500 + "]" * 500,
    "x = " + "{a = " * 300 + "1" + "}" * 300,
    "[program]\npoint_value = 1e999999\n",
    "[program\n",
    "\ud800 = 1",
    '[program]\nversion = "\\ud800"\n',
    "[[rule]]\n" * 20000,
]
CART_SEEDS = [
    '{"store":"S01","lines":[{"sku":"A","price":100,"qty":1e999999}]}',
    '{"store":"S01","lines":[{"sku":"A\\ud800","price":100,"qty":1}]}',
    '{"store":"S01","lines":[{"sku":"A","price":100,"qty":"0"}]}',
    '{"store":"S01","lines":[{"sku":"A","price":1e400,"qty":1}]}',
    '{"store":"S01","lines":[{"sku":"A","price":' + "9" * 5000 + ',"qty":1}]}',
    "[" * 30000 + "]" * 30000,
    '{"store":"S01","lines":' + "[" * 100 + "]" * 100 + "}",
    '{"store":"S01","lines":[{"sku":"A","price":NaN,"qty":1}]}',
    "\xff\xfe",
    "null",
]
CARD_SEEDS = [
    '{"number":"C1","type":"standard","lots":[{"points":1e999999}]}',
    '{"number":"\\udc00","type":"standard"}',
    '{"number":"C1","lots":' + "[" * 40 + "]" * 40 + "}",
]
NOW_SEEDS = ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00", "2026-13-45T99:00:00+03:00",
             "2026-11-23T10:00:00", "x" * 100000, "\ud800"]
CSV_SEEDS = [
    "number,type,holder,cumulative,balance,expires_at,referrer\nC1,standard,Ann," + "9" * 5000 + ",1,,\n",
    "number,type,holder,cumulative,balance,expires_at,referrer\n\"C1" + "x" * 200000 + "\n",
    "number,type,holder,cumulative,balance,expires_at,referrer\nC1,standard,Ann,0,1,+99999-12-31T23:59:59+00:00,\n",
    "number,type,holder,cumulative,balance,expires_at,referrer\nC1\x00,standard,Ann,0,1,,\n",
    "sku\n",
    "",
]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse and usage refusals
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def refused_in_one_line(code: int, err: str) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("posterm"), err
    assert "Traceback" not in err


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


def ledger_digest(path: Path) -> str:
    return hashlib.sha256((path / "data.mdb").read_bytes()).hexdigest()


def _mutate(seed: str, data: st.DataObject) -> str:
    """One bounded mutation: cut, repeat a slice, or insert bracket/quote/escape noise."""
    cut = data.draw(st.integers(0, len(seed)))
    noise = data.draw(st.sampled_from(["[", "]", "{", "\"", "\\", "\\u", "#", "\n", "'''", "1e9999", "\x00", "=", ","]))
    choice = data.draw(st.integers(0, 2))
    if choice == 0:
        return seed[:cut]
    if choice == 1:
        return seed[:cut] + noise * data.draw(st.integers(1, 200)) + seed[cut:]
    return seed[:cut] + seed[cut:][: data.draw(st.integers(0, 50))] * data.draw(st.integers(1, 50))


@pytest.mark.parametrize("text", RULES_SEEDS)
def test_rules_seeds_are_refused_in_one_line(tmp_path, text):
    path = write(tmp_path / "rules.toml", text)
    for argv in (("rules", "check", str(path)),
                 ("quote", "--rules", str(path), "--cart", str(EXAMPLES / "cart-points.json"), "--now", NOW)):
        code, _, err = run(*argv)
        refused_in_one_line(code, err)
        assert code == 2


@pytest.mark.parametrize("text", CART_SEEDS)
def test_cart_seeds_are_refused_in_one_line_and_print_nothing(tmp_path, text):
    path = write(tmp_path / "cart.json", text)
    code, out, err = run("quote", "--rules", str(RULES), "--cart", str(path), "--now", NOW)
    refused_in_one_line(code, err)
    assert code == 2 and out == ""  # never half a quote


@pytest.mark.parametrize("text", CARD_SEEDS)
def test_card_seeds_are_refused_in_one_line(tmp_path, text):
    path = write(tmp_path / "card.json", text)
    code, out, err = run("quote", "--rules", str(RULES), "--cart", str(EXAMPLES / "cart-points.json"),
                         "--card", str(path), "--now", NOW)
    refused_in_one_line(code, err)
    assert code == 2 and out == ""


@pytest.mark.parametrize("now", NOW_SEEDS)
def test_now_seeds_are_refused_in_one_line(now):
    code, out, err = run("quote", "--rules", str(RULES), "--cart", str(EXAMPLES / "cart-points.json"),
                         "--card", str(EXAMPLES / "card-points.json"), "--now", now)
    refused_in_one_line(code, err)
    assert out == "" if code == 2 else json.loads(out)  # year 1 is a time core can price


@pytest.mark.parametrize("text", ['{"lines":[{"line":0,"qty":1e999999}]}', "[" * 5000, '{"lines":"\\ud800"}'])
def test_return_seeds_are_refused_in_one_line(tmp_path, text):
    quote = tmp_path / "quote.json"
    code, out, _ = run("quote", "--rules", str(RULES), "--cart", str(EXAMPLES / "cart-points.json"), "--now", NOW)
    quote.write_text(out)
    path = write(tmp_path / "return.json", text)
    code, out, err = run("refund", "--rules", str(RULES), "--quote", str(quote), "--return", str(path))
    refused_in_one_line(code, err)
    assert code == 2 and out == ""


@pytest.fixture(scope="module")
def ledger_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "ledger"
    with Ledger.init(path, "T01", map_size_bytes=16 * 1024 * 1024) as led:
        led.import_cards(DATA / "cards.csv", NOW)
    return path


@pytest.mark.parametrize("text", CSV_SEEDS)
def test_csv_seeds_are_refused_and_change_nothing(tmp_path, ledger_dir, text):
    path = write(tmp_path / "cards.csv", text)
    before = ledger_digest(ledger_dir)
    code, _, err = run("ledger", "import-cards", str(path), "--ledger", str(ledger_dir), "--now", NOW,
                       "--map-size-mb", "16")
    refused_in_one_line(code, err)
    assert code == 2 and ledger_digest(ledger_dir) == before


@pytest.mark.parametrize("now", NOW_SEEDS)
def test_ledger_commands_take_any_now_without_a_traceback(ledger_dir, now):
    before = ledger_digest(ledger_dir)
    for argv in (("card", "2000000000015"), ("report", "points"), ("adjust", "NOPE", "5", "--reason", "r",
                                                                   "--technician", "t")):
        code, _, err = run("ledger", *argv, "--ledger", str(ledger_dir), "--now", now, "--map-size-mb", "16")
        refused_in_one_line(code, err)
    if now != NOW_SEEDS[0]:
        assert ledger_digest(ledger_dir) == before


@pytest.mark.parametrize("argv", [
    ("--path", "/proc/posterm-nope/ledger"), ("--path", "{tmp}/new", "--map-size-mb", "0"),
    ("--path", "{tmp}/new", "--map-size-mb", "99999999999"), ("--path", "{tmp}/new", "--terminal-id", "x" * 100),
])
def test_ledger_init_refusals_leave_nothing_behind(tmp_path, argv):
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--terminal-id" not in args:
        args += ["--terminal-id", "T01"]
    code, _, err = run("ledger", "init", *args)
    refused_in_one_line(code, err)
    assert code == 2 and not (tmp_path / "new").exists()


@MUTATIONS
@given(data=st.data())
def test_mutated_rules_files_never_crash(tmp_path_factory, data):
    seed = data.draw(st.sampled_from([*RULES_SEEDS, RULES.read_text()]))
    path = write(tmp_path_factory.mktemp("r") / "rules.toml", _mutate(seed, data))
    refused_in_one_line(*run("rules", "check", str(path))[::2])


@MUTATIONS
@given(data=st.data())
def test_mutated_carts_never_crash(tmp_path_factory, data):
    seed = data.draw(st.sampled_from([*CART_SEEDS, (EXAMPLES / "cart-points.json").read_text()]))
    path = write(tmp_path_factory.mktemp("c") / "cart.json", _mutate(seed, data))
    code, out, err = run("quote", "--rules", str(RULES), "--cart", str(path), "--now", NOW)
    refused_in_one_line(code, err)
    if code == 0:
        json.loads(out)  # an accepted cart prints one whole quote


@MUTATIONS
@given(data=st.data())
def test_mutated_csv_files_never_crash_or_change_the_ledger(tmp_path_factory, ledger_dir, data):
    seed = data.draw(st.sampled_from([*CSV_SEEDS[:3], (DATA / "cards.csv").read_text()]))
    path = write(tmp_path_factory.mktemp("v") / "cards.csv", _mutate(seed, data))
    before = ledger_digest(ledger_dir)
    code, _, err = run("ledger", "import-cards", str(path), "--ledger", str(ledger_dir), "--now", NOW,
                       "--map-size-mb", "16")
    refused_in_one_line(code, err)
    if code == 2:
        assert ledger_digest(ledger_dir) == before
