"""Turn a pytest-benchmark JSON file into the README's table: median per benchmark and, inside
each group, how many times faster than the slowest member of that group (same run).

    python -m tests.bench.report .benchmarks/latest.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def _time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def render(report: dict) -> str:
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in report["benchmarks"]:
        groups[bench["group"] or bench["name"]].append(bench)
    rows = ["| group | benchmark | median | ops/s | × slowest in group | figures |",
            "|---|---|---|---|---|---|"]
    for group, benches in groups.items():
        slowest = max(b["stats"]["median"] for b in benches)
        for b in sorted(benches, key=lambda b: b["stats"]["median"]):
            median = b["stats"]["median"]
            figures = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in b.get("extra_info", {}).items())
            rows.append(f"| {group} | {b['name']} | {_time(median)} | {1 / median:,.0f} | "
                        f"{slowest / median:.1f} | {figures} |")
    machine = report.get("machine_info", {})
    rows.append("")
    rows.append(f"Measured {report.get('datetime', '?')[:19]} on {machine.get('cpu', {}).get('brand_raw', '?')}, "
                f"Python {machine.get('python_version', '?')}.")
    return "\n".join(rows)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        print(render(json.load(handle)))
