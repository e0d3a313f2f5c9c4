"""Shared fixtures: both pricing engines, side by side (ids `c` and `py`)."""

from __future__ import annotations

import os

import pytest

import core
from core import fallback

ENGINES = [pytest.param(fallback.Engine, id="py")]
try:
    from core import _cengine
except ImportError:  # reported by tests/core/test_engine_loaded.py unless POSTERM_PURE is set
    _cengine = None
else:
    ENGINES.insert(0, pytest.param(_cengine.Engine, id="c"))

PURE_ONLY = bool(os.environ.get("POSTERM_PURE"))


@pytest.fixture(scope="session", params=ENGINES)
def engine_cls(request: pytest.FixtureRequest) -> type:
    """Each test using it runs once per engine implementation."""
    return request.param


@pytest.fixture
def make_engine(engine_cls: type):
    """Build an engine of the current implementation from a rules tree."""

    def build(tree: dict) -> object:
        return engine_cls(core.compile_rules(tree, "test.toml"))

    return build
