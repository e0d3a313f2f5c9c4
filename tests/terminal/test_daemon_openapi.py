"""docs/openapi.yaml documents exactly the routes the daemon serves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from terminal.api import ApiServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


class _Stub:
    """ApiServer needs a daemon only to answer requests; listing routes needs none."""


def served() -> set[tuple[str, str]]:
    server = ApiServer(_Stub())  # type: ignore[arg-type]
    return {(r.method.lower(), re.sub(r"\{(\w+)\}", r"{\1}", r.path)) for r in server.routes()}


def documented() -> tuple[dict[str, Any], set[tuple[str, str]]]:
    doc = yaml.safe_load(DOC.read_text())
    ops = {(method, path) for path, item in doc["paths"].items() for method in item
           if method in ("get", "post", "put", "delete", "patch")}
    return doc, ops


def test_every_route_is_documented_and_vice_versa() -> None:
    _, ops = documented()
    assert served() == ops


def test_document_is_well_formed_openapi() -> None:
    doc, _ = documented()
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] and doc["info"]["version"]
    op_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(op_ids) == len(set(op_ids))
    for path, item in doc["paths"].items():
        for name in re.findall(r"\{(\w+)\}", path):
            for op in item.values():
                assert any(p["name"] == name and p["in"] == "path" for p in op.get("parameters", [])), (path, name)
        for op in item.values():
            assert "200" in op["responses"], path
    text = DOC.read_text()
    for ref in set(re.findall(r'\$ref: "#/components/(\w+)/(\w+)"', text)):
        assert ref[1] in doc["components"][ref[0]], ref
