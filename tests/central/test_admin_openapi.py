"""docs/admin-openapi.yaml documents exactly the admin routes central serves, with the limits the
code enforces (real replies are checked against it in test_admin_api.py; schemathesis drives it
in tests/e2e/test_admin_schemathesis.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from central import admin_api, admin_store, reports
from central.server import make_app
from central.store import open_store
from protocol import cardfile
from tests.central.admin_doc import DOC, DOC_PATH, operations, request_schema


def served(tmp_path: Path) -> set[tuple[str, str]]:
    store = open_store(f"sqlite:///{tmp_path / 'central.db'}")
    try:
        app = make_app(store)
        routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
                  if r.resource is not None and r.resource.canonical.startswith(admin_api.PREFIX)}
        return {(m, p) for m, p in routes if m != "head"}
    finally:
        store.close()


def test_every_admin_route_is_documented_and_vice_versa(tmp_path: Path) -> None:
    assert served(tmp_path) == operations()
    assert {(m.lower(), admin_api.PREFIX + p) for m, p, _ in admin_api.ROUTES} == operations()


def test_document_is_well_formed_openapi() -> None:
    assert DOC["openapi"].startswith("3.1") and DOC["info"]["title"] and DOC["info"]["version"]
    op_ids = [op["operationId"] for item in DOC["paths"].values() for op in item.values()]
    assert len(op_ids) == len(set(op_ids))
    for path, item in DOC["paths"].items():
        for op in item.values():
            params = [DOC["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
                      for p in op.get("parameters", [])]
            for name in re.findall(r"\{(\w+)\}", path):
                assert any(p["name"] == name and p["in"] == "path" for p in params), (path, name)
            assert any(code.startswith("2") for code in op["responses"]), path
            assert "401" in op["responses"], path  # every route needs a token
            if op is item.get("post"):
                assert any(p["name"] == admin_api.IDEMPOTENCY_HEADER for p in params), path
    text = DOC_PATH.read_text()
    for ref in set(re.findall(r'\$ref: "#/components/(\w+)/(\w+)"', text)):
        assert ref[1] in DOC["components"][ref[0]], ref


def _props(name: str) -> dict[str, Any]:
    return dict(DOC["components"]["schemas"][name]["properties"])


def test_documented_limits_are_the_codes() -> None:
    enrol = _props("Enrolment")
    assert set(enrol) == admin_api.ENROL_FIELDS
    assert enrol["balance"]["maximum"] == cardfile.BALANCE_MAX
    assert enrol["type"]["maxLength"] == cardfile.TYPE_CHARS_MAX
    assert enrol["holder"]["maxLength"] == cardfile.HOLDER_CHARS_MAX
    assert enrol["referrers"]["maxItems"] == cardfile.REFERRERS_MAX
    assert _props("Reason")["reason"]["maxLength"] == admin_api.REASON_CHARS_MAX
    assert _props("AwardRequest")["award"]["maxLength"] == admin_api.AWARD_ID_CHARS_MAX
    issue = _props("CouponIssue")
    assert (issue["count"]["maximum"], issue["series"]["maxLength"]) == (
        admin_api.COUPONS_ISSUED_MAX, admin_api.COUPON_SERIES_CHARS_MAX)
    scopes = DOC["components"]["securitySchemes"]["bearer"]["description"]
    assert all(scope in scopes for scope in admin_store.SCOPES)
    key = DOC["components"]["parameters"]["idempotencyKey"]["schema"]["pattern"]
    assert key == f"^{admin_store.IDEMPOTENCY_KEY.pattern}$"
    report = DOC["paths"]["/admin/v1/reports/{name}"]["get"]["parameters"]
    by_name = {p["name"]: p["schema"] for p in report}
    assert by_name["name"]["enum"] == list(reports.REPORTS)
    assert (by_name["top"]["maximum"], by_name["top"]["default"]) == (reports.TOP_MAX, reports.TOP_DEFAULT)
    kinds = DOC["components"]["schemas"]["Column"]["properties"]["kind"]["enum"]
    assert kinds == list(reports.KINDS)
    assert request_schema("post", "/admin/v1/cards")["allOf"][0]["$ref"].endswith("/Enrolment")


def test_every_error_code_the_code_raises_is_documented() -> None:
    source = "\n".join(Path(m.__file__ or "").read_text() for m in (admin_api, admin_store))
    raised = set(re.findall(r'\d{3}, "([a-z_]+)"\)', source)) | {"invalid", "idempotency_mismatch"}
    documented = set(DOC["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    assert raised <= documented, raised - documented
