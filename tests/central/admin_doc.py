"""docs/admin-openapi.yaml as the tests read it: the documented operations, and a check of a real
reply (status, content type, headers, body) against the operation's documented response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "admin-openapi.yaml"
DOC: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text())
METHODS = ("get", "post", "put", "delete", "patch")
CHECKED: set[tuple[str, str, str]] = set()  # (method, path, status) seen in real replies


def operations() -> set[tuple[str, str]]:
    return {(method, path) for path, item in DOC["paths"].items() for method in item if method in METHODS}


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        section, kind, name = node["$ref"].removeprefix("#/").split("/")
        node = DOC[section][kind][name]
    return node


def _schema(node: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema of `node` whose `#/components/...` references resolve (the doc's own)."""
    return {"allOf": [node], "components": DOC["components"]}


def check_reply(method: str, path: str, status: int, headers: Any, body: Any) -> None:
    """The reply of `method path` (the documented path template) is one the document lists."""
    op = DOC["paths"][path][method.lower()]
    responses = op["responses"]
    assert str(status) in responses, f"{method} {path}: status {status} is not documented"
    response = _resolve(responses[str(status)])
    content = response.get("content", {})
    assert "application/json" in content, f"{method} {path} {status}: no JSON documented"
    assert headers.get("Content-Type", "").startswith("application/json"), headers.get("Content-Type")
    jsonschema_rs.validate(_schema(content["application/json"]["schema"]), body)
    for name, spec in response.get("headers", {}).items():
        value = headers.get(name)
        if value is not None:
            jsonschema_rs.validate(_schema(_resolve(spec)["schema"]), value)
    CHECKED.add((method.lower(), path, str(status)))


def request_schema(method: str, path: str) -> dict[str, Any]:
    op = DOC["paths"][path][method.lower()]
    return _schema(op["requestBody"]["content"]["application/json"]["schema"])
