# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv build demo test lint bench clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# Rebuild the extension in place whenever its sources change (editable installs do not).
build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

demo: build
	$(PY) -m terminal.cli demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy core
	PATH="$(VENV)/bin:$$PATH" cython-lint --max-line-length 120 core/_cengine.pyx tests/bench/result_floor.pyx

test: build lint
	$(PY) -m pytest -q

# Benchmarks, measured in one run; prints the README's table. BENCH=tests/bench/test_core_bench.py narrows it.
BENCH ?= tests/bench
bench: build
	mkdir -p .benchmarks
	$(PY) -m pytest $(BENCH) --benchmark-enable --benchmark-json=.benchmarks/latest.json \
		--benchmark-columns=min,median,mean,ops -q
	$(PY) -m tests.bench.report .benchmarks/latest.json

clean:
	rm -rf $(VENV) build core/_cengine.c core/*.so .pytest_cache .benchmarks
