# cryoensemble: `make demo` and `make test` work on a fresh machine (they create .venv first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Tests marked slow run when PYTEST_MARK includes them (CI: PYTEST_MARK="not heavy").
PYTEST_MARK ?= not slow and not heavy
DEMO_OUT ?= demo_output

.PHONY: demo test lint typecheck docs format relion bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,docs,md]'
	touch $@

# RELION 3.1 (Debian package) for the interoperability tests; installed when we are root.
relion:
	@command -v relion_project >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq relion >/dev/null) \
	      || echo "warning: could not install relion; RELION tests will be skipped"; \
	  else echo "note: relion_project not found and not root; RELION tests will be skipped"; fi; }

# Style, the import layers of docs/architecture.md (contracts in pyproject.toml), and static types
# of the kernel packages (mypy, configured in pyproject.toml).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/lint-imports
	$(MAKE) typecheck

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

# API reference from the docstrings (mkdocs + mkdocstrings), built into site/.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

format: $(VENV)/.installed
	$(VENV)/bin/ruff format src tests benchmarks examples
	$(VENV)/bin/ruff check --fix src tests benchmarks examples

test: $(VENV)/.installed relion lint
	$(PY) -m pytest -m "$(PYTEST_MARK)"

demo: $(VENV)/.installed
	$(VENV)/bin/cryoensemble demo --out $(DEMO_OUT) --overwrite

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_imaging.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache site
