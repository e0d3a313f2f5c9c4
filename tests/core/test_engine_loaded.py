"""A silent fallback to the pure engine is a bug: the compiled one must load unless asked not to."""

import core
from tests.conftest import PURE_ONLY


def test_compiled_engine_is_active_unless_pure_is_forced() -> None:
    if PURE_ONLY:
        assert core.IMPLEMENTATION == "pure"
    else:
        assert core.compiled_load_error is None, core.compiled_load_error
        assert core.IMPLEMENTATION == "compiled"
        assert core.Engine.__module__ == "core._cengine"
