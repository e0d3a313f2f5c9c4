"""`posterm demo` — the README's main command — runs its scripted checkouts and the Z report, exits 0."""

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
    assert out.count("printer  printed:") == 8 and "RETURN" in out and "Paid with 5700 points" in out
    # step 6: the tenders — change, card through the payment terminal, refund to the card, VAT lines
    assert "Change                               10.10" in out and "Refunded to card RRN" in out
    assert "incl. VAT 10% of 89.90                8.17" in out and "Cashier Olga" in out
    assert "Z REPORT - SHIFT 1" in out and "SHIFT CLOSED" in out
    assert "daemon    stopped (exit code 0)" in out
