# Two commands: `make run` and `make test`. Python 3.11+ on Debian.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql://postgres@127.0.0.1:5432
# Every package, pinned with its hashes, generated from pyproject.toml by uv (`make lock`).
LOCK := requirements.lock
UV_VERSION := 0.13.9

.PHONY: run test typecheck test-sqlite test-postgres worker migrate demo lint bench lock clean

$(BIN)/python:
	@# Debian's python3 ships without venv until python3-venv is installed.
	$(PYTHON) -m venv $(VENV) || { apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip

$(BIN)/portal: $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/pip install -q -r $(LOCK)
	$(BIN)/pip install -q --no-deps -e .
	@# A dependency added to pyproject.toml but not yet locked shows here, not as an ImportError later.
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; echo "$(LOCK) does not cover pyproject.toml: run make lock" >&2; exit 1; }
	touch $@

lock: $(BIN)/python  ## regenerate requirements.lock from pyproject.toml, after changing a dependency there
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml --extra test --generate-hashes --universal --python-version 3.11 \
		--custom-compile-command "make lock" --quiet -o $(LOCK)

run: $(BIN)/portal  ## serve on http://127.0.0.1:$${PORT:-8000} with SQLite and in-process jobs
	@# PDF invoices need pango and a font from Debian; the rest of the portal runs without them.
	@bash scripts/services.sh pdf || echo "PDF invoices cannot be downloaded until those packages are installed" >&2
	$(BIN)/portal serve

worker: $(BIN)/portal  ## an arq worker (needs REDIS_URL and DATABASE_URL)
	$(BIN)/portal worker

migrate: $(BIN)/portal
	$(BIN)/portal migrate

demo: $(BIN)/portal
	$(BIN)/portal demo

test: $(BIN)/portal  ## the type checker, then the whole suite on SQLite, then on PostgreSQL with Redis
	$(MAKE) --no-print-directory typecheck
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

# mypy over portal/ ([tool.mypy] in pyproject.toml): a renamed column of a typed
# row (OrderRow, BatchRow, TabRow) fails here, not on a page.
typecheck: $(BIN)/portal
	$(BIN)/mypy

# Each run starts a Redis server of its own (so it needs the redis-server binary)
# and drives Debian's chromium; scripts/services.sh installs what is missing.
# Two test processes by default (pytest-xdist): each has its own database, Redis
# and live server, so they share nothing; a module stays in one process, its
# tests in their order (--dist loadfile). TEST_PROCESSES=0 runs in this one.
TEST_PROCESSES ?= 2
test-sqlite: $(BIN)/portal
	bash scripts/services.sh sqlite
	PORTAL_TEST_DB=sqlite $(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

test-postgres: $(BIN)/portal
	bash scripts/services.sh postgres
	PORTAL_TEST_DB=postgres PORTAL_TEST_PG=$(PG_URL) $(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

lint: $(BIN)/portal
	$(BIN)/ruff check portal tests bench

bench: $(BIN)/portal
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .pytest_cache
