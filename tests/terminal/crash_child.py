"""Child process of the crash test: commits sales (and some returns and acks) in a loop.

Usage: crash_child.py LEDGER_DIR RUN SEED [RETRY_JSON]
Before each operation it prints `begin <json>`; only after the commit returned it prints
`ack <id>`. The parent SIGKILLs it at random moments. RETRY_JSON is the operation that was in
flight when the previous child died: it is retried first (idempotent: same id, same content).
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import core
from terminal.ledger import Ledger
from tests.terminal.ledger_rules import RULES

NOW = "2026-11-23T10:00:00+03:00"
CARDS = ["C1", "C2", "C3", "C4", "C5"]
OPS_MAX = 100_000


def run_op(ledger: Ledger, op: dict[str, Any]) -> None:
    if op["kind"] == "sale":
        ledger.commit_sale(op["id"], op["quote"], op["card"], op["payment"], NOW)
    elif op["kind"] == "return":
        ledger.commit_return(op["id"], op["receipt"], op["lines"], NOW)


def next_op(
    ledger: Ledger, engine: Any, rng: random.Random, run: int, i: int, sold: list[str]
) -> dict[str, Any]:
    if sold and rng.random() < 0.2:
        return {
            "kind": "return",
            "id": f"{run}-r{i}",
            "receipt": sold.pop(),
            "lines": [{"line": 0, "qty": 1}],
        }
    card = rng.choice([*CARDS, None])
    cart = {
        "store": "S01",
        "lines": [
            {"sku": f"P{j}", "price": rng.randint(100, 500000), "qty": rng.randint(1, 3)}
            for j in range(rng.randint(1, 4))
        ],
    }
    card_dict = ledger.card_for_quote(card, NOW) if card else None
    quote = engine.quote(cart, card_dict, NOW, rng.choice([None, 10, "max"]) if card else None)
    return {
        "kind": "sale",
        "id": f"{run}-{i}",
        "card": card,
        "quote": quote,
        "payment": {"tenders": [{"method": "cash", "amount": quote["to_pay"]}]},
    }


def main() -> int:
    path, run, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    engine = core.Engine(core.compile_rules(RULES))
    ledger = Ledger(path)
    rng = random.Random(seed)
    print("ready", flush=True)
    if len(sys.argv) > 4:
        op = json.loads(sys.argv[4])
        run_op(ledger, op)
        print(f"ack {op['id']}", flush=True)
    sold: list[str] = []
    for i in range(OPS_MAX):
        op = next_op(ledger, engine, rng, run, i, sold)
        print("begin " + json.dumps(op), flush=True)
        run_op(ledger, op)
        print(f"ack {op['id']}", flush=True)
        if op["kind"] == "sale":
            sold.append(op["id"])
        if i % 7 == 6:
            ledger.mark_acked(max(0, ledger.meta()["next_seq"] - 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
