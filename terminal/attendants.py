"""Attendants, their roles and their short-lived sessions: what unlocks the privileged API routes.

Provisioned with `posterm attendant add NAME --role ROLE` into a JSON file of PIN hashes
(`hashlib.scrypt`, a random salt each; mode 0600, and refused when group or others may read
it). A correct name + PIN opens a session: a random token, valid `SESSION_IDLE_S` after its
last use and at most `SESSION_MAX_S` in all, that the kiosk sends as the `X-Posterm-Attendant`
header. Each role unlocks a fixed set of permissions (`ROLE_PERMISSIONS`).

An attendant may also have a card (`attendant add --card`): its number, as the reader or scanner
reads it, hashed with scrypt like the PIN but under the file's one card salt, so a swipe costs
one hash however many attendants there are. It works only at the attendant prompt (`Desk.prompt`,
opened by the screen): the session a card opens there is handed to the prompt's nonce, once.

Wrong PINs are rate-limited per name (`FAILURES_FREE` tries, then a lock doubling from
`LOCK_S` up to `LOCK_MAX_S`) and for the whole terminal (`GLOBAL_FAILURES_MAX` within
`GLOBAL_WINDOW_S`, so cycling names does not help). Clock and randomness come in from the
caller (`now_s`), so tests drive time. PINs are never logged or kept in memory after the check.
The counters are kept in the ledger (`Desk(path, tries=ledger)`), so a restart does not reset them.
Limits: `ATTENDANTS_MAX`, `SESSIONS_MAX`, `PIN_DIGITS`, `NAME`, `FILE_BYTES_MAX`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from terminal.errors import TerminalError
from terminal.files import read_bounded

PERMISSIONS = ("age", "void", "cancel", "return", "reprint", "adjust", "shift")
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "attendant": frozenset({"age", "void", "cancel"}),
    "supervisor": frozenset({"age", "void", "cancel", "return", "reprint", "adjust"}),
    "manager": frozenset(PERMISSIONS),
}
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
PIN_DIGITS = (4, 12)
CARD_CHARS = (4, 64)
CARD_KEY = "#card"  # the wrong-PIN counters' name for attendant-card tries (no name has a #)
PROMPT_S = 60.0  # how long the attendant prompt waits for a card
ATTENDANTS_MAX = 256
SESSIONS_MAX = 8
SESSION_IDLE_S = 120.0
SESSION_MAX_S = 900.0
FAILURES_FREE = 3
LOCK_S = 30.0
LOCK_MAX_S = 900.0
GLOBAL_FAILURES_MAX = 20
GLOBAL_WINDOW_S = 300.0
FAILURES_KEPT_MAX = ATTENDANTS_MAX * 4  # names with wrong-PIN counters kept
FILE_BYTES_MAX = 256 * 1024
# scrypt at N=2^14, r=8: 16 MiB and ~50 ms a check on a Raspberry Pi 4 — slow for a guesser
# holding the file, quick enough for an attendant.
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
HASH_BYTES = 32


class AttendantError(TerminalError):
    """A refused attendant action; `status` is the HTTP status the API answers with."""

    status = 403


class LoginRefused(AttendantError):
    status = 401


class TooManyTries(AttendantError):
    status = 429


def check_pin(pin: Any) -> str:
    low, high = PIN_DIGITS
    if not isinstance(pin, str) or not pin.isdigit() or not pin.isascii() or not low <= len(pin) <= high:
        raise AttendantError(f"a PIN is {low}..{high} digits")
    return pin


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise AttendantError("an attendant name is 1..32 of A-Z a-z 0-9 _ . -")
    return name


def hash_pin(pin: str, salt: bytes, params: dict[str, int]) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, dklen=HASH_BYTES, maxmem=64 * 1024 * 1024, **params)


def check_card(code: Any) -> str:
    """An attendant card as the drivers read it (a stripe's number or a barcode's code)."""
    low, high = CARD_CHARS
    if not isinstance(code, str) or not code.isascii() or not code.isprintable() or not low <= len(code) <= high:
        raise AttendantError(f"an attendant card is {low}..{high} printable ASCII characters")
    return code


def new_entry(name: str, role: str, pin: str, card: str | None = None,
              card_salt: str | None = None) -> dict[str, Any]:
    """An attendants-file entry. With `card`, its hash too: scrypt like the PIN, but under the
    file's one card salt (`card_salt`, hex; new when None), so a swipe costs one hash to find its
    attendant, not one per attendant."""
    if role not in ROLE_PERMISSIONS:
        raise AttendantError(f"role {role!r}: expected one of {', '.join(ROLE_PERMISSIONS)}")
    salt = secrets.token_bytes(16)
    entry = {"name": check_name(name), "role": role, "salt": salt.hex(),
             "hash": hash_pin(check_pin(pin), salt, SCRYPT).hex(), **SCRYPT}
    if card is not None:
        card_salt = card_salt or secrets.token_hex(16)
        entry.update(card_salt=card_salt, card_hash=hash_pin(check_card(card), bytes.fromhex(card_salt), SCRYPT).hex())
    return entry


def card_salt_of(entries: dict[str, dict[str, Any]]) -> str | None:
    """The file's card salt (the one its card entries share), None before the first card."""
    return next((e["card_salt"] for e in entries.values() if e.get("card_salt")), None)


# ---------------------------------------------------------------------- the file


def read_file(path: Path) -> dict[str, dict[str, Any]]:
    """name → entry; a missing file is no attendants. Refused when others may read it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise AttendantError(f"{path}: cannot read the attendants file: {exc.strerror}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise AttendantError(f"{path}: the attendants file must be readable by its owner only (chmod 600)")
    try:
        doc = json.loads(read_bounded(path, FILE_BYTES_MAX, "attendants", AttendantError))
        entries = {e["name"]: e for e in doc["attendants"]}
        for entry in entries.values():
            check_name(entry["name"])
            for key in ("salt", "hash", "card_salt", "card_hash"):
                if key in entry or key in ("salt", "hash"):
                    bytes.fromhex(entry[key])
            if ("card_salt" in entry) != ("card_hash" in entry):
                raise ValueError(f"attendant {entry['name']}: a card needs both card_salt and card_hash")
            if entry["role"] not in ROLE_PERMISSIONS or not all(isinstance(entry[k], int) for k in SCRYPT):
                raise ValueError(f"attendant {entry['name']}: bad role or hash parameters")
    except (ValueError, KeyError, TypeError) as exc:
        raise AttendantError(f"{path}: not an attendants file ({exc})") from None
    if len(entries) > ATTENDANTS_MAX:
        raise AttendantError(f"{path}: more than {ATTENDANTS_MAX} attendants")
    return entries


def write_file(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    if len(entries) > ATTENDANTS_MAX:
        raise AttendantError(f"{path}: at most {ATTENDANTS_MAX} attendants")
    data = json.dumps({"attendants": sorted(entries.values(), key=lambda e: e["name"])}, indent=1).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# ---------------------------------------------------------------------- sessions


@dataclass
class Session:
    token: str
    name: str
    role: str
    opened_s: float
    used_s: float

    def allows(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "permissions": sorted(ROLE_PERMISSIONS[self.role]),
                "idle_s": SESSION_IDLE_S, "max_s": SESSION_MAX_S}


@dataclass
class _Failures:
    count: int = 0
    locked_until_s: float = 0.0


class TriesStore(Protocol):
    """Where the wrong-PIN counters outlive the process (the ledger's `desk` table)."""

    def read_pin_tries(self) -> dict[str, Any]: ...

    def write_pin_tries(self, state: dict[str, Any]) -> None: ...


class Desk:
    """The attendants file (re-read when it changes, so `attendant add` needs no restart),
    the open sessions and the wrong-PIN counters. With a `tries` store the counters survive a
    restart (a daemon killed and restarted does not hand a guesser fresh tries); their times
    are then wall-clock seconds, and every wait is capped (`LOCK_MAX_S`, `GLOBAL_WINDOW_S`) so a
    clock set back cannot lock the terminal for longer."""

    def __init__(self, path: Path, tries: TriesStore | None = None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.stamp: tuple[int, int] | None = None
        self.sessions: dict[str, Session] = {}
        self.failures: dict[str, _Failures] = {}
        self.recent_failures: list[float] = []
        self.prompt: dict[str, Any] | None = None
        self.tries = tries
        if tries is not None:
            self._restore(tries.read_pin_tries())

    def _restore(self, state: dict[str, Any]) -> None:
        """Counters as stored; anything malformed is dropped (they only ever restrict)."""
        names, recent = state.get("names"), state.get("recent")
        if isinstance(names, dict):
            for name, value in list(names.items())[:FAILURES_KEPT_MAX]:
                if (isinstance(name, str) and isinstance(value, list) and len(value) == 2
                        and isinstance(value[0], int) and isinstance(value[1], int | float)):
                    self.failures[name] = _Failures(value[0], float(value[1]))
        if isinstance(recent, list):
            self.recent_failures = [float(t) for t in recent[-GLOBAL_FAILURES_MAX:] if isinstance(t, int | float)]

    def _persist(self) -> None:
        if self.tries is not None:
            self.recent_failures = self.recent_failures[-GLOBAL_FAILURES_MAX:]
            self.tries.write_pin_tries({
                "names": {n: [f.count, f.locked_until_s] for n, f in self.failures.items()},
                "recent": self.recent_failures})

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self.stamp:
            self.entries, self.stamp = read_file(self.path), stamp

    def locked_for(self, name: str, now_s: float) -> float:
        self.recent_failures = [t for t in self.recent_failures if now_s - t < GLOBAL_WINDOW_S]
        if len(self.recent_failures) >= GLOBAL_FAILURES_MAX:
            return min(GLOBAL_WINDOW_S, self.recent_failures[-GLOBAL_FAILURES_MAX] + GLOBAL_WINDOW_S - now_s)
        return min(LOCK_MAX_S, max(0.0, self.failures.get(name, _Failures()).locked_until_s - now_s))

    def check(self, name: str, pin: str, now_s: float) -> dict[str, Any]:
        """The entry when name + PIN are right; raises LoginRefused / TooManyTries. Slow (scrypt):
        the daemon runs it in a thread. Unknown names cost a hash too, so timing tells nothing."""
        wait = self.locked_for(name, now_s)
        if wait > 0:
            raise TooManyTries(f"too many wrong PINs; try again in {wait:.0f} s")
        self._reload()
        entry = self.entries.get(name)
        params = {k: entry[k] for k in SCRYPT} if entry else SCRYPT
        salt = bytes.fromhex(entry["salt"]) if entry else b"\0" * 16
        digest = hash_pin(pin, salt, params)
        if entry is not None and hmac.compare_digest(digest, bytes.fromhex(entry["hash"])):
            if self.failures.pop(name, None) is not None:
                self._persist()
            return entry
        self._failed(name, now_s)
        raise LoginRefused("wrong attendant name or PIN")

    def _failed(self, name: str, now_s: float) -> None:
        if len(self.failures) >= FAILURES_KEPT_MAX:
            self.failures.clear()  # bounded; the global window still limits guessing meanwhile
        record = self.failures.setdefault(name, _Failures())
        record.count += 1
        self.recent_failures.append(now_s)
        if record.count >= FAILURES_FREE:
            record.locked_until_s = now_s + min(LOCK_MAX_S, LOCK_S * 2 ** min(32, record.count - FAILURES_FREE))
        self._persist()

    def check_card(self, card: str, now_s: float) -> dict[str, Any]:
        """The entry whose card this is; raises LoginRefused / TooManyTries. One scrypt per
        card salt in the file (one, as `attendant add` writes it); tries count like PINs."""
        wait = self.locked_for(CARD_KEY, now_s)
        if wait > 0:
            raise TooManyTries(f"too many unknown cards; try again in {wait:.0f} s")
        self._reload()
        digests: dict[tuple[str, int, int, int], bytes] = {}
        found = None
        for entry in self.entries.values():
            if "card_hash" not in entry:
                continue
            params = {k: entry[k] for k in SCRYPT}
            key = (entry["card_salt"], params["n"], params["r"], params["p"])
            if key not in digests:
                digests[key] = hash_pin(card, bytes.fromhex(entry["card_salt"]), params)
            if hmac.compare_digest(digests[key], bytes.fromhex(entry["card_hash"])):
                found = entry
        if not digests:
            hash_pin(card, b"\0" * 16, SCRYPT)  # no cards provisioned: the same cost all the same
        if found is not None:
            return found
        self._failed(CARD_KEY, now_s)
        raise LoginRefused("this is not an attendant's card")

    # The attendant prompt: the screen opens it (POST /v1/attendant/prompt) and holds its nonce;
    # while it is open a swipe or scan is tried as an attendant card, and the session it opens
    # waits here until the nonce's holder collects its token (the event stream never carries it).

    def open_prompt(self, now_s: float) -> str:
        self.prompt = {"nonce": secrets.token_urlsafe(24), "until_s": now_s + PROMPT_S, "token": None}
        return str(self.prompt["nonce"])

    def prompt_open(self, now_s: float) -> bool:
        prompt = self.prompt
        return prompt is not None and prompt["token"] is None and now_s <= prompt["until_s"]

    def close_prompt(self) -> None:
        self.prompt = None

    def card_session(self, entry: dict[str, Any], now_s: float) -> Session:
        """A session opened by a card at the open prompt, kept for the prompt's nonce."""
        session = self.open(entry, now_s)
        if self.prompt is not None:
            self.prompt["token"] = session.token
        return session

    def collect(self, nonce: Any, now_s: float) -> Session:
        """The session a card opened at the prompt whose nonce this is; once."""
        prompt = self.prompt
        if (prompt is None or not isinstance(nonce, str) or prompt["token"] is None
                or not hmac.compare_digest(nonce.encode(), str(prompt["nonce"]).encode())):
            raise LoginRefused("no attendant card was accepted at this prompt")
        self.prompt = None
        self._expire(now_s)
        session = self.sessions.get(prompt["token"])
        if session is None:
            raise LoginRefused("the card's session has ended; swipe the card again")
        return session

    def open(self, entry: dict[str, Any], now_s: float) -> Session:
        self._expire(now_s)
        if len(self.sessions) >= SESSIONS_MAX:
            oldest = min(self.sessions.values(), key=lambda s: s.used_s)
            del self.sessions[oldest.token]
        session = Session(secrets.token_urlsafe(32), entry["name"], entry["role"], now_s, now_s)
        self.sessions[session.token] = session
        return session

    def _expire(self, now_s: float) -> None:
        for token, s in list(self.sessions.items()):
            if now_s - s.used_s > SESSION_IDLE_S or now_s - s.opened_s > SESSION_MAX_S:
                del self.sessions[token]

    def session(self, token: str | None, permission: str, now_s: float) -> Session:
        """The open session behind `token`, if its role has `permission`; it is touched."""
        self._expire(now_s)
        found = self.sessions.get(token or "") if token else None
        if found is None:
            raise AttendantError("this needs an attendant: call the attendant (no valid attendant session)")
        if found.name not in self._current_names():
            del self.sessions[found.token]  # removed from the file since: the session ends
            raise AttendantError(f"attendant {found.name} is no longer provisioned")
        if not found.allows(permission):
            raise AttendantError(f"attendant {found.name} ({found.role}) may not {permission}; "
                                 "ask a supervisor or manager")
        found.used_s = now_s
        return found

    def _current_names(self) -> set[str]:
        self._reload()
        return set(self.entries)

    def close(self, token: str | None) -> bool:
        return self.sessions.pop(token or "", None) is not None
