"""`posterm demo` — the README's main command — runs its scripted checkouts across a local central
server and two terminals, and the Z report, and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_all_checks_hold(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "terminal.cli", "demo", "--dir", str(tmp_path / "demo")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "All checks hold." in out and "MISMATCH" not in out
    # T01: three sales, the Z report and step 7's three papers; T02: the sale spending T01's points
    # and the fridge's return
    assert out.count("printer  printed:") == 9 and "RETURN" in out and "Paid with 5700 points" in out
    assert "T02 daemon pid" in out and "central   serving on http://127.0.0.1:" in out
    assert "check points T02 lets the card spend: 14 (ok)" in out and "→ receipt_scanned" in out
    assert "card show 7700000000033" in out and "Anna" not in out.split("== 4.")[1].split("== 5.")[0]
    # step 7: the tenders — change, card through the payment terminal, refund to the card, VAT lines
    assert "Change                               10.10" in out and "Refunded to card RRN" in out
    assert "incl. VAT 10% of 89.90                8.17" in out and "Cashier Olga" in out
    assert "Z REPORT - SHIFT 1" in out and "SHIFT CLOSED" in out
    assert "daemons   stopped (exit codes 0, 0); central stopped (0)" in out
