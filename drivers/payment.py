"""Payment terminals (card readers with a PIN pad): the driver interface the daemon pays through,
and a simulated terminal for the demo and the tests.

Every operation carries the caller's operation id (`op_id`, ≤ 40 of A-Z a-z 0-9 _ -): the daemon
records it *before* it asks for money, so after a crash it can ask the terminal what became of
that operation (`status`) instead of charging again. `cancel` reverses an authorization (a void
before settlement); `refund` gives money back against an earlier authorization. A terminal that
does not answer is a `PaymentResult` with status `timeout` or `error` — never an exception the
daemon must guess about — and the daemon then reverses the operation to be safe.

`SimulatedPaymentTerminal` keeps its operations in `operations.json` in its directory (so a
daemon restart finds what the "bank" saw) and takes the outcome of each authorize/refund from
the first line of `script` in that directory (consumed): `approve` (default when the file is
missing or empty), `decline`, `timeout`, `cancel` (the customer pressed cancel on the PIN pad),
`lost` (the connection drops after the bank approved: the money is taken, the answer lost).
A file `offline` makes every call fail as a lost connection. A file `by_reference` makes it
refund by reference (RRN) — payments other terminals of the same merchant took: it lists their
simulated directories, one a line (the "acquirer" sees their operations).
Limits: `op_id` pattern, `amount_minor_max`, `operations_max`, `script_lines_max`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from drivers.errors import DeviceError

Status = Literal["approved", "declined", "cancelled", "timeout", "error", "reversed", "refunded", "unknown"]
OP_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
amount_minor_max = 10**13
operations_max = 100_000
script_lines_max = 1000
REFERENCE_CHARS_MAX = 128
OUTCOMES = ("approve", "decline", "timeout", "cancel", "lost")


class PaymentError(DeviceError):
    """A payment call was malformed (bad operation id or amount); nothing was sent."""


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """What the terminal says about one operation. `reference` is the bank's reference (RRN or
    authorization code) to print and to refund against; `card` is the masked card number."""

    op_id: str
    status: Status
    amount: int = 0
    reference: str = ""
    card: str = ""
    detail: str = ""

    @property
    def approved(self) -> bool:
        return self.status in ("approved", "refunded")


class PaymentTerminal(Protocol):
    name: str

    def authorize(self, op_id: str, amount: int) -> PaymentResult: ...

    def cancel(self, op_id: str) -> PaymentResult: ...

    def refund(self, op_id: str, amount: int, original_op_id: str) -> PaymentResult: ...

    def status(self, op_id: str) -> PaymentResult: ...

    @property
    def refunds_by_reference(self) -> bool:
        """Whether `refund_by_reference` works: a refund of a payment another terminal took,
        found by the bank's reference (RRN) at the acquirer."""

    def refund_by_reference(self, op_id: str, amount: int, reference: str) -> PaymentResult: ...


def check_call(op_id: str, amount: int | None = None) -> None:
    if not isinstance(op_id, str) or not OP_ID.match(op_id):
        raise PaymentError(f"payment operation id {op_id!r} must be 1..40 of A-Z a-z 0-9 _ -")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)
                               or not 0 < amount <= amount_minor_max):
        raise PaymentError(f"payment {op_id}: amount must be 1..{amount_minor_max} minor units, got {amount!r}")


class SimulatedPaymentTerminal:
    """A terminal that is a directory: `operations.json` (what the bank saw), `script`, `offline`."""

    def __init__(self, name: str, directory: str | Path) -> None:
        self.name = name
        self.directory = Path(directory)

    # ------------------------------------------------------------------ files

    def _ops(self) -> dict[str, dict[str, object]]:
        path = self.directory / "operations.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise DeviceError(f"simulated payment terminal {self.directory}: operations.json: {exc}") from None
        if not isinstance(data, dict):
            raise DeviceError(f"simulated payment terminal {self.directory}: operations.json is not an object")
        return data

    def _save(self, ops: dict[str, dict[str, object]]) -> None:
        if len(ops) > operations_max:
            raise DeviceError(f"simulated payment terminal {self.directory}: more than {operations_max} operations")
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / ".operations.json.tmp"
        tmp.write_text(json.dumps(ops, indent=1, sort_keys=True), encoding="utf-8")
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())  # the "bank" must not forget a charge on a power cut
        os.replace(tmp, self.directory / "operations.json")

    def _next_outcome(self) -> str:
        path = self.directory / "script"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()[:script_lines_max]
        except FileNotFoundError:
            return "approve"
        lines = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if not lines:
            return "approve"
        path.write_text("".join(f"{ln}\n" for ln in lines[1:]), encoding="utf-8")
        return lines[0] if lines[0] in OUTCOMES else "decline"

    def _offline(self, op_id: str) -> PaymentResult | None:
        if (self.directory / "offline").exists():
            return PaymentResult(op_id, "error", detail="no connection to the payment terminal")
        return None

    # ------------------------------------------------------------------ operations

    def authorize(self, op_id: str, amount: int) -> PaymentResult:
        check_call(op_id, amount)
        if (down := self._offline(op_id)) is not None:
            return down
        ops = self._ops()
        if op_id in ops:  # a repeated id is answered, never charged again
            return self._result(op_id, ops[op_id])
        outcome = self._next_outcome()
        reference = f"RRN{len(ops) + 1:09d}"
        if outcome in ("approve", "lost"):
            ops[op_id] = {"kind": "sale", "status": "approved", "amount": amount, "reference": reference}
            self._save(ops)
            if outcome == "lost":
                return PaymentResult(op_id, "error", amount, detail="connection lost waiting for the answer")
            return self._result(op_id, ops[op_id])
        status = {"decline": "declined", "timeout": "timeout", "cancel": "cancelled"}[outcome]
        ops[op_id] = {"kind": "sale", "status": status, "amount": amount, "reference": ""}
        self._save(ops)
        detail = {"declined": "declined by the bank", "timeout": "no answer from the bank in time",
                  "cancelled": "cancelled by the customer on the PIN pad"}[status]
        return PaymentResult(op_id, status, amount, detail=detail)  # type: ignore[arg-type]

    def cancel(self, op_id: str) -> PaymentResult:
        check_call(op_id)
        if (down := self._offline(op_id)) is not None:
            return down
        ops = self._ops()
        op = ops.get(op_id)
        if op is None:  # nothing was charged: record that it never may be
            ops[op_id] = {"kind": "sale", "status": "cancelled", "amount": 0, "reference": ""}
            self._save(ops)
            return PaymentResult(op_id, "cancelled", detail="no such operation; nothing charged")
        if op["status"] in ("approved", "refunded"):  # a void: of a payment, or of a refund
            op["status"] = "reversed"
            self._save(ops)
        return self._result(op_id, op)

    def refund(self, op_id: str, amount: int, original_op_id: str) -> PaymentResult:
        check_call(op_id, amount)
        check_call(original_op_id)
        if (down := self._offline(op_id)) is not None:
            return down
        ops = self._ops()
        if op_id in ops:
            return self._result(op_id, ops[op_id])
        original = ops.get(original_op_id)
        if original is None or original["status"] != "approved":
            return PaymentResult(op_id, "declined", amount, detail=f"no approved payment {original_op_id} to refund")
        given = sum(int(o["amount"]) for o in ops.values()  # type: ignore[call-overload]
                    if o.get("original") == original_op_id and o["status"] == "refunded")
        if given + amount > int(original["amount"]):  # type: ignore[call-overload]
            return PaymentResult(op_id, "declined", amount, detail="refund larger than what is left of the payment")
        outcome = self._next_outcome()
        status = "refunded" if outcome in ("approve", "lost") else "declined"
        ops[op_id] = {"kind": "refund", "status": status, "amount": amount, "original": original_op_id,
                      "reference": f"RRN{len(ops) + 1:09d}" if status == "refunded" else ""}
        self._save(ops)
        return self._result(op_id, ops[op_id])

    @property
    def refunds_by_reference(self) -> bool:
        return (self.directory / "by_reference").exists()

    def refund_by_reference(self, op_id: str, amount: int, reference: str) -> PaymentResult:
        check_call(op_id, amount)
        if not isinstance(reference, str) or not 0 < len(reference) <= REFERENCE_CHARS_MAX:
            raise PaymentError(f"payment {op_id}: reference must be 1..{REFERENCE_CHARS_MAX} characters")
        if (down := self._offline(op_id)) is not None:
            return down
        if not self.refunds_by_reference:
            return PaymentResult(op_id, "declined", amount, detail="this terminal does not refund by reference")
        ops = self._ops()
        if op_id in ops:
            return self._result(op_id, ops[op_id])
        original = next((o for o in self._acquirer_ops() if o.get("kind") == "sale" and o["status"] == "approved"
                         and o.get("reference") == reference), None)
        if original is None:
            return PaymentResult(op_id, "declined", amount, detail=f"the acquirer has no approved payment {reference}")
        given = sum(int(o["amount"]) for o in ops.values()  # type: ignore[call-overload]
                    if o.get("reference_of") == reference and o["status"] == "refunded")
        if given + amount > int(original["amount"]):  # type: ignore[call-overload]
            return PaymentResult(op_id, "declined", amount, detail="refund larger than what is left of the payment")
        status = "refunded" if self._next_outcome() in ("approve", "lost") else "declined"
        ops[op_id] = {"kind": "refund", "status": status, "amount": amount, "reference_of": reference,
                      "reference": f"RRN{len(ops) + 1:09d}" if status == "refunded" else ""}
        self._save(ops)
        return self._result(op_id, ops[op_id])

    def _acquirer_ops(self) -> list[dict[str, object]]:
        """Operations of this terminal and of those `by_reference` lists (the merchant's acquirer)."""
        found = list(self._ops().values())
        listed = (self.directory / "by_reference").read_text(encoding="utf-8").splitlines()[:script_lines_max]
        for line in listed:
            if line.strip():
                found += SimulatedPaymentTerminal(self.name, line.strip())._ops().values()
        return found

    def status(self, op_id: str) -> PaymentResult:
        check_call(op_id)
        if (down := self._offline(op_id)) is not None:
            return down
        op = self._ops().get(op_id)
        if op is None:
            return PaymentResult(op_id, "unknown", detail="the terminal has no such operation")
        return self._result(op_id, op)

    @staticmethod
    def _result(op_id: str, op: dict[str, object]) -> PaymentResult:
        return PaymentResult(op_id, op["status"], int(op["amount"]),  # type: ignore[arg-type,call-overload]
                             str(op.get("reference", "")), "************4242" if op["status"] != "cancelled" else "")

    # ------------------------------------------------------------------ for tests and the demo

    def charged(self) -> int:
        """Money the bank holds from this terminal: approved sales minus refunds."""
        ops = self._ops()
        taken = sum(int(o["amount"]) for o in ops.values() if o["kind"] == "sale" and o["status"] == "approved")  # type: ignore[call-overload]
        back = sum(int(o["amount"]) for o in ops.values() if o["kind"] == "refund" and o["status"] == "refunded")  # type: ignore[call-overload]
        return taken - back


def make_payment_terminal(name: str, driver: str, directory: str) -> PaymentTerminal:
    if driver == "simulated":
        return SimulatedPaymentTerminal(name, directory)
    raise DeviceError(f"payment terminal {name}: unknown driver {driver!r}")
