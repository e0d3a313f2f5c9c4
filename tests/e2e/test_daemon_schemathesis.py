"""docs/openapi.yaml is as strict as the daemon: schemathesis generates requests from the
document — valid ones and ones the document forbids — against the real daemon process over
its loopback TCP listener, and checks every answer: no 5xx, only documented status codes,
content types and headers, responses that match their schemas, and every request the document
forbids refused (4xx).

Bounded: `EXAMPLES_PER_OPERATION` examples per operation, no shrinking past `SHRINK_S`, one
daemon for the module. Not checked: `positive_data_acceptance` (a request valid by the
document can still be refused by the checkout's state — 409 "no open checkout" — or an
unknown product, 404; the document lists those statuses) and `use_after_free` /
`ensure_resource_availability` (the API has no resources created and deleted by REST calls).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from terminal.client import DaemonProcess
from terminal.demo_run import setup

from .test_daemon_api_guards import enable_tcp_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
EXAMPLES_PER_OPERATION = 10
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

# The event stream never ends; tests/e2e/test_daemon_api_guards.py covers it.
schema = schemathesis.openapi.from_path(DOC).exclude(path="/v1/events")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("schemathesis")
    config = setup(root)
    port = enable_tcp_config(config, root / "api.sock")
    daemon = DaemonProcess(config, root)
    daemon.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        daemon.stop()


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_the_daemon_answers_as_documented(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)
