"""Build the compiled pricing engine; everything else is declared in pyproject.toml.

POSTERM_NO_EXTENSIONS=1 skips the build (the pure-Python twin is then the only engine).
"""

import os

from setuptools import setup

ext_modules = []
if not os.environ.get("POSTERM_NO_EXTENSIONS") and os.path.exists("core/_cengine.pyx"):
    from Cython.Build import cythonize
    from setuptools import Extension

    ext_modules = cythonize(
        [Extension("core._cengine", ["core/_cengine.pyx"], include_dirs=["core"],
                   extra_compile_args=["-O2"])],
        compiler_directives={"language_level": "3"},
        annotate=bool(os.environ.get("POSTERM_ANNOTATE")),
    )

setup(ext_modules=ext_modules)
