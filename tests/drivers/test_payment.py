"""The simulated payment terminal: each scripted outcome, idempotent operation ids, reversal,
refund limits, a lost connection — and the `payment` device role in the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.config import parse_devices
from drivers.errors import ConfigError
from drivers.payment import PaymentError, SimulatedPaymentTerminal


def terminal(tmp_path: Path, *script: str) -> SimulatedPaymentTerminal:
    if script:
        (tmp_path / "script").write_text("\n".join(script) + "\n")
    return SimulatedPaymentTerminal("payment", tmp_path)


def test_approve_is_charged_once_even_when_asked_twice(tmp_path: Path) -> None:
    pos = terminal(tmp_path)
    first = pos.authorize("T01-x-p1", 5000)
    assert first.approved and first.reference.startswith("RRN") and first.card.endswith("4242")
    again = pos.authorize("T01-x-p1", 5000)
    assert again == first and pos.charged() == 5000
    assert pos.status("T01-x-p1") == first
    assert pos.status("T01-x-p2").status == "unknown"


@pytest.mark.parametrize(("outcome", "status"), [
    ("decline", "declined"), ("timeout", "timeout"), ("cancel", "cancelled"), ("nonsense", "declined")])
def test_refusals_charge_nothing(tmp_path: Path, outcome: str, status: str) -> None:
    pos = terminal(tmp_path, outcome)
    result = pos.authorize("op1", 700)
    assert result.status == status and not result.approved and result.detail
    assert pos.charged() == 0
    assert pos.authorize("op2", 700).approved  # the script line was used up: approve again


def test_lost_connection_after_approval_is_found_by_status_and_reversed(tmp_path: Path) -> None:
    pos = terminal(tmp_path, "lost")
    answer = pos.authorize("op1", 1200)
    assert answer.status == "error" and "connection lost" in answer.detail
    assert pos.charged() == 1200  # the bank took it; the answer never came
    assert pos.status("op1").status == "approved"
    assert pos.cancel("op1").status == "reversed" and pos.charged() == 0
    assert pos.cancel("op1").status == "reversed"  # a repeated reversal changes nothing


def test_cancel_of_an_operation_never_sent_forbids_it(tmp_path: Path) -> None:
    pos = terminal(tmp_path)
    assert pos.cancel("op9").status == "cancelled"
    assert not pos.authorize("op9", 100).approved and pos.charged() == 0


def test_refunds_against_the_payment_and_no_more(tmp_path: Path) -> None:
    pos = terminal(tmp_path)
    pos.authorize("sale1", 1000)
    assert pos.refund("ret1", 600, "sale1").status == "refunded"
    assert pos.refund("ret1", 600, "sale1").status == "refunded" and pos.charged() == 400  # idempotent
    too_much = pos.refund("ret2", 500, "sale1")
    assert too_much.status == "declined" and "larger" in too_much.detail
    assert pos.refund("ret3", 400, "sale1").approved and pos.charged() == 0
    assert pos.refund("ret4", 1, "nope").status == "declined"


def test_offline_and_bad_calls(tmp_path: Path) -> None:
    pos = terminal(tmp_path)
    (tmp_path / "offline").touch()
    assert pos.authorize("op1", 100).status == "error" and pos.status("op1").status == "error"
    (tmp_path / "offline").unlink()
    assert pos.status("op1").status == "unknown"  # nothing reached the bank
    with pytest.raises(PaymentError, match="operation id"):
        pos.authorize("bad id!", 100)
    with pytest.raises(PaymentError, match="amount"):
        pos.authorize("op1", 0)


def test_payment_and_fiscal_roles_in_the_config(tmp_path: Path) -> None:
    cfg = parse_devices([
        {"role": "payment", "driver": "simulated", "dir": str(tmp_path)},
        {"role": "fiscal", "driver": "atol", "url": "http://127.0.0.1:16732/", "taxation": "usnIncome"},
    ])
    (pay,), (fiscal,) = cfg.payment, cfg.fiscal
    assert (pay.name, pay.driver, pay.source) == ("payment 0", "simulated", str(tmp_path))
    assert (fiscal.source, fiscal.taxation, fiscal.timeout_s) == ("http://127.0.0.1:16732", "usnIncome", 30)
    with pytest.raises(ConfigError, match=r"device 0 \(fiscal\): url must start with http"):
        parse_devices([{"role": "fiscal", "driver": "atol", "url": "127.0.0.1"}])
    with pytest.raises(ConfigError, match="taxation must be one of"):
        parse_devices([{"role": "fiscal", "driver": "atol", "url": "http://x", "taxation": "vat"}])
    with pytest.raises(ConfigError, match="driver must be one of simulated"):
        parse_devices([{"role": "payment", "driver": "atol", "url": "http://x"}])
