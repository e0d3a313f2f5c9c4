"""Kiosk facts that are not sales: an attendant's privileged action, and a card registered at the
kiosk by its customer (with the phone index that finds it again).

`attendant_action` event: {attendant, role, action, detail}, written in the same transaction as
the action's own first write (`attributed`); `card_registered` event:
{card, card_type, phone, phone_masked, consent: {terms_version, terms_sha256, at}, store}.
The phone goes to the central server (it is the registration) and into no log; the ledger's
index keeps only a digest of it. Limits: `DETAIL_FIELDS_MAX`, `PHONE_DIGITS`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import lmdb

from protocol import schemas
from terminal.ledger import cards, codec, fields, keys, moments
from terminal.ledger.errors import LedgerConflictError, LedgerError, LedgerInputError, LedgerNotFoundError
from terminal.ledger.store import Store
from terminal.ledger.tx import RIDERS, Tx, write

DETAIL_FIELDS_MAX = schemas.DETAIL_FIELDS_MAX
PHONE_DIGITS = (10, 15)
ACTIONS = frozenset(schemas.ATTENDANT_ACTIONS)  # the event's schema names them


def phone_digits(phone: Any) -> str:
    """'+7 (912) 345-67-89' → '79123456789'; refused unless 10..15 digits remain."""
    if not isinstance(phone, str) or len(phone) > 32:
        raise LedgerInputError("a phone number is text of at most 32 characters")
    digits = "".join(ch for ch in phone if ch.isdigit() and ch.isascii())
    if not PHONE_DIGITS[0] <= len(digits) <= PHONE_DIGITS[1] or set(phone) - set("0123456789+-() "):
        raise LedgerInputError(f"a phone number has {PHONE_DIGITS[0]}..{PHONE_DIGITS[1]} digits "
                               "(and only + - ( ) and spaces besides)")
    return digits


def mask_phone(digits: str) -> str:
    """'79123456789' → '+7 *** ***-**-89': enough for the customer to recognise it."""
    return f"+{digits[:-10] or ''}{' ' if len(digits) > 10 else ''}*** ***-**-{digits[-2:]}"


def phone_key(digits: str) -> bytes:
    return hashlib.sha256(b"posterm-phone\0" + digits.encode()).digest()


def card_by_phone(txn: lmdb.Transaction, dbs: dict[str, Any], phone: str) -> str:
    index = phone_key(phone_digits(phone))
    raw = txn.get(index, db=dbs["phones"])
    if raw is None:
        raise LedgerNotFoundError("no card is registered to this phone number here")
    return keys.read_text(codec.opened(index, raw, "phone index"))


def _action_request(op_id: str, attendant: str, role: str, action: str, detail: dict[str, Any]) -> dict[str, Any]:
    fields.text(attendant, f"attendant action {op_id} attendant", 64)
    if action not in ACTIONS:
        raise LedgerInputError(f"attendant action {op_id}: unknown action {action!r}")
    if len(detail) > DETAIL_FIELDS_MAX:
        raise LedgerInputError(f"attendant action {op_id}: more than {DETAIL_FIELDS_MAX} detail fields")
    return {"attendant": attendant, "role": role, "action": action, "detail": detail}


def attendant_action(store: Store, op_id: str, attendant: str, role: str, action: str,
                     detail: dict[str, Any], now: Any) -> dict[str, Any]:
    """The event alone: for an action that writes nothing else (a reprint, an age check)."""
    at = moments.moment(now, "now")
    request = _action_request(op_id, attendant, role, action, detail)

    def body(tx: Tx) -> dict[str, Any]:
        seq = tx.event("attendant_action", at, request)
        return {"seq": seq, "action": action, "attendant": attendant}

    return write(store, op_id, "attendant_action", request, body)


@contextlib.contextmanager
def attributed(store: Store, op_id: str, attendant: str, role: str, action: str,
               detail: dict[str, Any], now: Any) -> Iterator[None]:
    """Run the action inside: its first ledger write carries the `attendant_action` event in
    the same transaction (`tx.RIDERS`); an action that wrote nothing gets the event alone
    after it succeeded; one that raised records nothing."""
    at = moments.moment(now, "now")
    request = _action_request(op_id, attendant, role, action, detail)

    def ride(tx: Tx) -> None:
        tx.event("attendant_action", at, request)

    if RIDERS.pending is not None:
        raise LedgerInputError(f"attendant action {op_id}: another attributed action is running")
    RIDERS.pending = ride
    try:
        yield
        rode = RIDERS.pending is not ride
    finally:
        RIDERS.pending = None
    if not rode:
        attendant_action(store, op_id, attendant, role, action, detail, now)


# ---------------------------------------------------------------------- wrong-PIN counters

TRIES_KEY = b"pin-tries"
TRIES_BYTES_MAX = 128 * 1024  # the attendants module bounds the names and times it keeps


def read_tries(store: Store) -> dict[str, Any]:
    """The wrong-PIN counters kept across restarts (terminal.attendants); {} when none yet."""
    with store.env.begin() as txn:
        raw = txn.get(TRIES_KEY, db=store.dbs["desk"])
        if raw is None:
            return {}
        try:
            value = codec.load(TRIES_KEY, raw, "wrong-PIN counters")
        except LedgerError:
            return {}  # damaged: `ledger verify` reports it; counters only ever restrict
    return value if isinstance(value, dict) else {}


def write_tries(store: Store, state: dict[str, Any]) -> None:
    """Not a business fact (no event, no op record): one small record, replaced."""
    data = codec.dump(TRIES_KEY, state, "wrong-PIN counters")
    if len(data) > TRIES_BYTES_MAX:
        raise LedgerInputError(f"wrong-PIN counters: more than {TRIES_BYTES_MAX} bytes")
    try:
        with store.env.begin(write=True) as txn:
            txn.put(TRIES_KEY, data, db=store.dbs["desk"])
    except lmdb.MapFullError:
        raise store.map_full() from None


def register_card(store: Store, op_id: str, number: str, card_type: str, phone: str,
                  consent: dict[str, Any], store_id: str, now: Any) -> dict[str, Any]:
    """A new card with no points, findable by its phone, and its `card_registered` event."""
    at = moments.moment(now, "now")
    digits = phone_digits(phone)
    record = cards.new_record(number, card_type, "", [], 0)
    request = {"card": number, "card_type": card_type, "phone": digits, "consent": consent}

    def body(tx: Tx) -> dict[str, Any]:
        index = phone_key(digits)
        if tx.txn.get(index, db=tx.dbs["phones"]) is not None:
            raise LedgerConflictError("this phone number already has a card; find it by the phone")
        if tx.card_exists(number):
            raise LedgerConflictError(f"card {number}: already in the ledger")
        tx.new_card(record)
        tx.txn.put(index, codec.seal(index, keys.text(number, "card number")), db=tx.dbs["phones"])
        seq = tx.event("card_registered", at, {
            "card": number, "card_type": card_type, "phone": digits, "phone_masked": mask_phone(digits),
            "consent": {**consent, "at": at.iso}, "store": store_id})
        return {"card": number, "card_type": card_type, "phone": mask_phone(digits), "seq": seq}

    return write(store, op_id, "card_registered", request, body)
