# kgrec: `make demo` installs everything and runs the demo on the embedded store;
# `make test` installs, assembles and starts a throwaway Neo4j, runs the suite, stops Neo4j.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kgrec-installed

.PHONY: install demo test check lint typecheck layers docs-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/kgrec demo

# The static checks, then pytest against a throwaway Neo4j (or yours, from KGREC_NEO4J_URI),
# stopped even when tests fail.
test: install browser check
	deploy/neo4j/with-neo4j $(BIN)/pytest

# ruff, the type checker over the package, the import layers (pyproject.toml [tool.importlinter]), and
# docs/architecture.md against the tree (every path it names exists; its drawings are current).
check: lint typecheck layers docs-check

# Debian's chromium for the browser tests (tests/test_explanation_pages.py); never `playwright install`.
.PHONY: browser
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; \
	elif [ "$$CI" = true ]; then echo "CI=true: /usr/bin/chromium is missing and cannot be installed (not root)" >&2; exit 1; \
	else echo "note: /usr/bin/chromium is missing (install Debian's chromium); the browser tests will skip"; fi

lint: install
	$(BIN)/ruff check .

# mypy needs the package under its own name: the repository root *is* `kgrec`, so it checks a
# symlink named kgrec in a temporary folder (its cache stays in the virtualenv).
typecheck: install
	@t=$$(mktemp -d) && ln -s "$(CURDIR)" "$$t/kgrec" && cd "$$t" && \
	  MYPYPATH="$$t" "$(CURDIR)/$(BIN)/mypy" -p kgrec --config-file "$(CURDIR)/pyproject.toml" \
	    --cache-dir "$(CURDIR)/$(VENV)/.mypy_cache"; rc=$$?; rm -rf "$$t"; exit $$rc

layers: install
	$(BIN)/lint-imports --no-cache

docs-check: install
	$(BIN)/python docs/drawings.py --check

clean:
	rm -rf data .pytest_cache .ruff_cache
