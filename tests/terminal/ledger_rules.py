"""The rules and moment the ledger tests price with (no pytest import: the crash test's child
process loads this and should start fast)."""

NOW = "2026-11-23T10:00:00+03:00"
RULES = {
    "program": {"point_value": 100, "expiry_days": 365},
    "redeem": {"max_percent": 50},
    "rule": [
        {"id": "std-5", "kind": "discount", "percent": 5, "when": {"card_types": ["standard"]}},
        {"id": "earn-2", "kind": "accrual", "percent": 2},
        {
            "id": "silver",
            "kind": "message",
            "text": "Issue a Silver card",
            "upgrade_to": "silver",
            "when": {"receipt_min": 1000000, "card_types": ["standard"]},
        },
        {"id": "ref", "kind": "referral", "levels": [3, 1], "credit": "points"},
    ],
}
