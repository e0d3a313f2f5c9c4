"""The layering of ARCHITECTURE.md, checked on the source: imports point down only.

`core` imports nothing of the project, `drivers` nothing of `terminal`/`central`, `protocol` neither
side, and `terminal` never `central` (a kiosk install carries no server code).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = {"core", "drivers", "protocol", "terminal", "central"}
FORBIDDEN = {
    "core": PROJECT - {"core"},
    "protocol": PROJECT - {"protocol"},
    "drivers": {"terminal", "central", "protocol"},
    "terminal": {"central"},
    "central": {"terminal", "drivers"},
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package: str) -> None:
    sources = sorted((ROOT / package).rglob("*.py"))
    assert sources, package
    bad = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & FORBIDDEN[package])
        for path in sources
    }
    assert {path: names for path, names in bad.items() if names} == {}
