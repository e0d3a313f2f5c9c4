"""terminal.attendants: the PIN file, sessions by role and their expiry, wrong-PIN limits (time
passed in, so nothing waits), and the `posterm attendant` commands."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from terminal import attendants as att
from terminal.attendants import AttendantError, Desk, LoginRefused, TooManyTries
from terminal.cli import main


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    path = tmp_path / "attendants.json"
    att.write_file(path, {"ivan": att.new_entry("ivan", "supervisor", "4321"),
                          "olga": att.new_entry("olga", "attendant", "9876")})
    return Desk(path)


def test_file_is_owner_only_and_keeps_no_pin(desk: Desk) -> None:
    assert os.stat(desk.path).st_mode & 0o777 == 0o600
    text = desk.path.read_text()
    assert "4321" not in text and "9876" not in text
    os.chmod(desk.path, 0o640)
    with pytest.raises(AttendantError, match="chmod 600"):
        att.read_file(desk.path)


def test_sessions_unlock_by_role_and_expire(desk: Desk) -> None:
    session = desk.open(desk.check("olga", "9876", 0.0), 0.0)
    assert desk.session(session.token, "void", 10.0).name == "olga"
    with pytest.raises(AttendantError, match="may not return"):
        desk.session(session.token, "return", 20.0)
    with pytest.raises(AttendantError, match="no valid attendant session"):
        desk.session(session.token, "void", 20.0 + att.SESSION_IDLE_S + 1)  # idle too long
    ivan = desk.open(desk.check("ivan", "4321", 0.0), 0.0)
    for moment in range(0, int(att.SESSION_MAX_S), 60):  # kept busy, it still ends at SESSION_MAX_S
        desk.session(ivan.token, "return", float(moment))
    with pytest.raises(AttendantError):
        desk.session(ivan.token, "return", att.SESSION_MAX_S + 1)
    with pytest.raises(AttendantError):
        desk.session(None, "void", 0.0)


def test_removed_attendant_loses_the_open_session(desk: Desk) -> None:
    session = desk.open(desk.check("olga", "9876", 0.0), 0.0)
    entries = att.read_file(desk.path)
    del entries["olga"]
    att.write_file(desk.path, entries)
    os.utime(desk.path, ns=(1, 1))  # a different stamp even within one clock tick
    with pytest.raises(AttendantError, match="no longer provisioned"):
        desk.session(session.token, "void", 1.0)


def test_wrong_pins_lock_the_name_then_the_terminal(desk: Desk) -> None:
    for _ in range(att.FAILURES_FREE):
        with pytest.raises(LoginRefused):
            desk.check("olga", "0000", 0.0)
    with pytest.raises(TooManyTries):
        desk.check("olga", "9876", att.LOCK_S - 1)
    assert desk.check("olga", "9876", att.LOCK_S + 1)["role"] == "attendant"  # the lock ran out
    for i in range(att.GLOBAL_FAILURES_MAX - att.FAILURES_FREE):  # cycling names does not help
        with pytest.raises(LoginRefused):
            desk.check(f"guess{i}", "0000", 100.0)
    with pytest.raises(TooManyTries):
        desk.check("ivan", "4321", 101.0)
    assert desk.check("ivan", "4321", 100.0 + att.GLOBAL_WINDOW_S + 1)["name"] == "ivan"


def test_bad_names_pins_and_roles_are_refused() -> None:
    for name, role, pin in (("a b", "manager", "1234"), ("ok", "boss", "1234"), ("ok", "manager", "12"),
                            ("ok", "manager", "12345678901234"), ("ok", "manager", "12ab")):
        with pytest.raises(AttendantError):
            att.new_entry(name, role, pin)


def test_cli_adds_lists_and_removes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.json"
    monkeypatch.setattr("sys.stdin", io.StringIO("2468\n"))
    assert main(["attendant", "add", "anna", "--role", "manager", "--pin-stdin", "--file", str(path)]) == 0
    assert main(["attendant", "list", "--file", str(path)]) == 0
    assert "anna\tmanager" in capsys.readouterr().out
    assert Desk(path).check("anna", "2468", 0.0)["role"] == "manager"
    assert main(["attendant", "remove", "anna", "--file", str(path)]) == 0
    assert main(["attendant", "remove", "anna", "--file", str(path)]) == 2
    assert "no attendant anna" in capsys.readouterr().err


def test_an_attendant_card_is_kept_hashed_and_finds_its_attendant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.json"
    for name, lines in (("olga", "9876\n9900000000017\n"), ("ivan", "4321\nSTAFF-0042\n")):
        monkeypatch.setattr("sys.stdin", io.StringIO(lines))
        assert main(["attendant", "add", name, "--role", "supervisor", "--pin-stdin", "--card-stdin",
                     "--file", str(path)]) == 0
    assert os.stat(path).st_mode & 0o777 == 0o600
    text = path.read_text()
    assert "9900000000017" not in text and "STAFF-0042" not in text
    desk = Desk(path)
    assert desk.check_card("9900000000017", 0.0)["name"] == "olga"
    assert desk.check_card("STAFF-0042", 0.0)["name"] == "ivan"
    monkeypatch.setattr("sys.stdin", io.StringIO("1111\nSTAFF-0042\n"))  # the same card for another: refused
    assert main(["attendant", "add", "petr", "--role", "attendant", "--pin-stdin", "--card-stdin",
                 "--file", str(path)]) == 2
    assert "ivan's already" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("5555\n"))  # a new PIN keeps the card
    assert main(["attendant", "add", "olga", "--role", "attendant", "--pin-stdin", "--file", str(path)]) == 0
    assert Desk(path).check_card("9900000000017", 0.0)["role"] == "attendant"
    for _ in range(att.FAILURES_FREE):  # unknown cards count like wrong PINs
        with pytest.raises(LoginRefused, match="not an attendant's card"):
            desk.check_card("7700000000026", 1.0)
    with pytest.raises(TooManyTries):
        desk.check_card("9900000000017", 2.0)


def test_the_prompt_hands_a_card_session_to_its_nonce_once(desk: Desk) -> None:
    assert not desk.prompt_open(0.0)
    nonce = desk.open_prompt(0.0)
    assert desk.prompt_open(att.PROMPT_S) and not desk.prompt_open(att.PROMPT_S + 1)
    with pytest.raises(LoginRefused):
        desk.collect(nonce, 1.0)  # no card yet
    session = desk.card_session(desk.check("olga", "9876", 0.0), 1.0)
    assert not desk.prompt_open(1.0)  # one card per prompt
    with pytest.raises(LoginRefused):
        desk.collect("forged", 2.0)
    assert desk.collect(nonce, 2.0).token == session.token
    with pytest.raises(LoginRefused):
        desk.collect(nonce, 3.0)  # once
