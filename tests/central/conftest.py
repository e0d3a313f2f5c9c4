"""Central fixtures: every storage test runs on SQLite and on PostgreSQL (ids `sqlite`, `pg`).
PostgreSQL needs env POSTERM_TEST_PG_DSN (`.ci/run` starts a throwaway cluster and sets it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from central.store import Store
from tests.central.helpers import fresh_store, sqlite_dsn

PG_DSN = os.environ.get("POSTERM_TEST_PG_DSN", "")


@pytest.fixture(params=["sqlite", "pg"])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A DSN of an empty central database."""
    if request.param == "sqlite":
        return sqlite_dsn(tmp_path)
    if not PG_DSN:
        pytest.skip("PostgreSQL: set POSTERM_TEST_PG_DSN (.ci/run starts a cluster and sets it)")
    fresh_store(PG_DSN).close()
    return PG_DSN


@pytest.fixture
def store(dsn: str) -> Iterator[Store]:
    s = fresh_store(dsn)
    yield s
    s.close()
