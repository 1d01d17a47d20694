# Two commands matter:  `make demo` (the whole provider, end to end, against the local sandbox)
# and `make test` (lint, types, docs and the test suite). Each creates .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv test lint typecheck docs pytest leakcheck test-slow demo bench clean browser

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test,docs,postgres,mysql]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/check_sizes.py

typecheck: venv
	$(BIN)/mypy

docs: venv
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

pytest: venv
	$(BIN)/pytest

# The secrets suites again, every log line at DEBUG kept in one file: none may hold a test secret.
LEAK_LOG := .pytest-leakcheck.log
leakcheck: venv
	rm -f $(LEAK_LOG)
	WAMM_TEST_LOG_FILE=$(LEAK_LOG) $(BIN)/pytest -q -p no:cacheprovider tests/security tests/hooks tests/webhooks
	@if grep -q LEAKCHECK $(LEAK_LOG); then echo "A test secret reached the logs:"; grep -m5 LEAKCHECK $(LEAK_LOG); exit 1; fi
	@echo "leakcheck: $$(wc -l < $(LEAK_LOG)) log lines, no test secret among them"

# tests/deployment drives the UI in Debian's Chromium: install it when missing (as root, as on CI).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Chromium for the deployment suite"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "Could not install chromium: the UI test will be skipped (or fail under CI=true)"; \
	fi

# pytest includes tests/deployment: the provider's wheel in a real Airflow deployment (a few minutes).
test: browser lint typecheck docs pytest leakcheck

test-slow: venv
	$(BIN)/pytest -m slow

demo: venv
	$(BIN)/python demo/run_demo.py

bench: venv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .mypy_cache .ruff_cache
