"""docs/admin-openapi.yaml is as strict as central's admin API: schemathesis generates requests
from the document — valid ones and ones it forbids — against a real `posterm-central serve` on
loopback (SQLite, a small chain's data and the awards example's program, a token with every
scope) and checks every answer: no 5xx, only documented status codes, content types and
headers, bodies matching their schemas, every forbidden request refused (4xx), 405 with `Allow`
for methods a path lacks.

Bounded: `EXAMPLES_PER_OPERATION` examples per operation, one server for the module. Not
checked: `positive_data_acceptance` (a request valid by the document can still be refused by the
data: an unknown card 404, an enrolled one 409, a date range over 366 days 400 — all documented).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from central import admin_store
from tests.central import chain_data as chain
from tests.central.admin_doc import DOC_PATH
from tests.central.helpers import CentralProcess, fresh_store

EXAMPLES_PER_OPERATION = 15
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.unsupported_method,
    openapi_checks.allow_header_conformance,
]

schema = schemathesis.openapi.from_path(DOC_PATH)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    root = tmp_path_factory.mktemp("admin-schemathesis")
    dsn = f"sqlite:///{root / 'central.db'}"
    store = fresh_store(dsn)
    chain.load(store)
    rules = DOC_PATH.parents[1] / "examples" / "awards.toml"  # awards to grant
    store.publish("rules", [("rules", {"version": "awards-1", "text": rules.read_text()})])
    token = admin_store.add_token(store, "schemathesis", list(admin_store.SCOPES))
    store.close()
    process = CentralProcess(dsn, root / "central.log", extra=("--expire-every-s", "0")).start()
    try:
        yield process.url, token
    finally:
        process.stop()


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_the_admin_api_answers_as_documented(case: schemathesis.Case, server: tuple[str, str]) -> None:
    url, token = server
    case.call_and_validate(base_url=url, checks=CHECKS, headers={"Authorization": f"Bearer {token}"}, timeout=10)
