"""Card refunds that survive a crash: the card part of a return, from intent to commit.

A return that gives money back to a card (terminal/tenders.py `refund_split`) moves money before
the ledger records the return, so a crash in between must not leave a refund without a return
record, nor refund twice. Order of events (chosen):
  1. the return is planned and its *intent* (return id, receipt, lines, the tender split, the
     fiscal document) is written durably (`RefundIntents`, a spool: fsynced, whole or absent) —
     in the same step under the desk's lock, so two returns of one receipt cannot both refund;
  2. each card part is first looked up on the payment terminal by its operation id
     (`<return>-r<tender>`: a crash may have sent it already), then refunded; answers are not
     recorded — the terminal is asked again, which never refunds twice;
  3. all refunded → the return commits (one ledger transaction, idempotent by return id), the
     intent is removed, the fiscal document and the paper are queued.
A refusal (declined, or a payment the terminal does not know) reverses the parts already
refunded (`cancel`) and drops the intent: nothing is refunded, nothing recorded. A terminal that
does not answer keeps the intent: the same return id retried later asks again and settles it.
Restart (`recover`): every card part refunded → the return commits once; any not → the refunded
ones are reversed and the intent dropped (an `recovered` event says which); a terminal that does
not answer leaves the intent for the next `POST /v1/returns` with the same id.
Limits: `INTENTS_MAX` pending intents, the spool's byte limits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.fiscal import FiscalDocument
from drivers.payment import PaymentResult
from drivers.spool import Job, Spool
from terminal import failpoints

if TYPE_CHECKING:
    from terminal.payments import PaymentDesk

INTENTS_MAX = 16
UNANSWERED = frozenset({"error", "timeout"})


def refund_op(return_id: str, part: dict[str, Any]) -> str:
    return f"{return_id}-r{part['tender'] + 1}"


def card_parts(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in plan["split"] if "original" in p]


class RefundIntents:
    """Pending card refunds on disk, one job per return (`state_dir/refund-intents`)."""

    def __init__(self, directory: str | Path) -> None:
        self.spool = Spool(directory, jobs_max=INTENTS_MAX)

    def put(self, plan: dict[str, Any]) -> None:
        document = plan.get("document")
        data = {"return_id": plan["return_id"], "receipt": plan["receipt"], "lines": plan["lines"],
                "split": plan["split"], "attendant": plan.get("attendant"),
                "by_reference": plan.get("by_reference", {}),
                "document": None if document is None else document.to_json().decode()}
        self.spool.put(plan["return_id"], json.dumps(data, sort_keys=True).encode())

    def pending(self) -> list[tuple[Job, dict[str, Any]]]:
        out = []
        for job in self.spool.jobs():
            raw = json.loads(self.spool.read(job)[0])
            document = raw["document"]
            raw["document"] = None if document is None else FiscalDocument.from_json(document.encode())
            out.append((job, raw))
        return out

    def find(self, return_id: str) -> tuple[Job, dict[str, Any]] | None:
        return next((found for found in self.pending() if found[1]["return_id"] == return_id), None)

    def of_receipt(self, receipt_id: str) -> str | None:
        """The return id of a pending card refund of `receipt_id`, if any."""
        return next((p["return_id"] for _, p in self.pending() if p["receipt"] == receipt_id), None)

    def remove(self, return_id: str) -> None:
        found = self.find(return_id)
        if found is not None:
            self.spool.remove(found[0])


class CardRefunds:
    """The card part of returns for the paying desk (terminal/payments.py)."""

    def __init__(self, desk: PaymentDesk, directory: str | Path) -> None:
        self.desk = desk
        self.intents = RefundIntents(directory)

    async def run(self, plan: dict[str, Any]) -> dict[str, Any]:
        """Refund every card part of a planned return (its intent already on disk), then commit."""
        from terminal.payments import PaymentRefused

        desk = self.desk
        assert desk.terminal is not None
        for part in card_parts(plan):
            op = refund_op(plan["return_id"], part)
            result = await desk._call(desk.terminal.status, op)
            if result.status == "unknown":  # never reached the terminal: refund now
                reference = plan.get("by_reference", {}).get(str(part["tender"]))
                if reference:  # another terminal's payment: by the bank's reference, at the acquirer
                    result = await desk._call(desk.terminal.refund_by_reference, op, part["amount"], reference)
                else:
                    result = await desk._call(desk.terminal.refund, op, part["amount"], part["original"])
                failpoints.hit("after_refund")
            if result.status in UNANSWERED:
                message = (f"card refund {op}: {result.detail or result.status}; the payment terminal does not "
                           f"answer — return {plan['return_id']} is settled when it does: retry it with the same "
                           "id (nothing is refunded twice)")
                desk.daemon.publish("error", {"message": message, "device": desk._name()})
                raise PaymentRefused(message)
            if not result.approved:
                await self._undo(plan, result)
            part["reference"] = result.reference or op
        return await self._commit(plan)

    async def _undo(self, plan: dict[str, Any], result: PaymentResult) -> None:
        """A refused refund: reverse the parts already refunded, drop the intent, refuse."""
        from terminal.payments import DeviceNotReady, PaymentRefused

        if not await self._reverse(plan):
            raise DeviceNotReady(f"card refund {result.op_id} {result.status}; an earlier part of return "
                                 f"{plan['return_id']} was refunded and cannot be reversed yet — retry the "
                                 "return with the same id")
        self.intents.remove(plan["return_id"])
        self.desk.daemon.publish("payment", {"op": result.op_id, "state": result.status, "detail": result.detail})
        raise PaymentRefused(f"card refund {result.op_id} {result.status}: {result.detail or 'no detail'}; the "
                             "return is not recorded and nothing is refunded — retry it, or refund in cash")

    async def _reverse(self, plan: dict[str, Any]) -> bool:
        """Cancel every card part the terminal refunded; True when nothing stays refunded."""
        desk = self.desk
        assert desk.terminal is not None
        ok = True
        for part in card_parts(plan):
            op = refund_op(plan["return_id"], part)
            seen = await desk._call(desk.terminal.status, op)
            if seen.status == "refunded":
                seen = await desk._call(desk.terminal.cancel, op)
            ok = ok and seen.status not in UNANSWERED and seen.status != "refunded"
        return ok

    async def _commit(self, plan: dict[str, Any]) -> dict[str, Any]:
        d = self.desk.daemon
        ret = await d.act(self._commit_once, plan)
        self.intents.remove(plan["return_id"])
        self.desk.queue_fiscal(plan["document"])  # the registrar knows a document it registered before
        return ret

    def _commit_once(self, plan: dict[str, Any]) -> dict[str, Any]:
        d = self.desk.daemon
        receipt = d.ledger.receipt(plan["receipt"])
        if receipt is not None and plan["return_id"] in receipt["returns"]:  # committed before a crash
            return {"return": plan["return_id"], "receipt": plan["receipt"], "tenders": plan["split"]}
        return dict(d.commit_return(plan["receipt"], plan["lines"], plan["return_id"], plan["split"],
                                    plan.get("attendant")))

    async def recover(self) -> None:
        """After a restart: each pending card refund committed once, or reversed, or left for later."""
        desk, d = self.desk, self.desk.daemon
        for _, plan in self.intents.pending():
            rid = plan["return_id"]
            if desk.terminal is None:
                d.publish("error", {"message": f"return {rid} waits for a card refund but no payment terminal "
                                               "is configured"})
                continue
            answers = [await desk._call(desk.terminal.status, refund_op(rid, p)) for p in card_parts(plan)]
            if any(a.status in UNANSWERED for a in answers):
                d.publish("error", {"message": f"return {rid}: the payment terminal does not answer; its card "
                                               "refund is settled when it does (retry the return with the same id)"})
                continue
            if all(a.approved for a in answers):
                for part, answer in zip(card_parts(plan), answers, strict=True):
                    part["reference"] = answer.reference or answer.op_id
                await self._commit(plan)
                d.publish("recovered", {"id": rid, "outcome": "card refund committed"})
            elif await self._reverse(plan):
                self.intents.remove(rid)
                d.publish("recovered", {"id": rid, "outcome": "card refund reversed; the return is not recorded"})
            else:
                d.publish("error", {"message": f"return {rid}: a card refund could not be reversed yet; retry "
                                               "the return with the same id"})
