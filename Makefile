# Two commands: `make run` and `make test`. Python 3.11+ on Debian.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql://postgres@127.0.0.1:5432

.PHONY: run test test-sqlite test-postgres worker migrate demo lint bench clean

$(BIN)/portal: pyproject.toml
	@# Debian's python3 ships without venv until python3-venv is installed.
	$(PYTHON) -m venv $(VENV) || { apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: $(BIN)/portal  ## serve on http://127.0.0.1:$${PORT:-8000} with SQLite and in-process jobs
	$(BIN)/portal serve

worker: $(BIN)/portal  ## an arq worker (needs REDIS_URL and DATABASE_URL)
	$(BIN)/portal worker

migrate: $(BIN)/portal
	$(BIN)/portal migrate

demo: $(BIN)/portal
	$(BIN)/portal demo

test: $(BIN)/portal  ## the whole suite on SQLite, then on PostgreSQL with Redis
	bash scripts/services.sh
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite: $(BIN)/portal
	PORTAL_TEST_DB=sqlite $(BIN)/pytest $(PYTEST_ARGS)

test-postgres: $(BIN)/portal
	PORTAL_TEST_DB=postgres PORTAL_TEST_PG=$(PG_URL) $(BIN)/pytest $(PYTEST_ARGS)

lint: $(BIN)/portal
	$(BIN)/ruff check portal tests bench

bench: $(BIN)/portal
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .pytest_cache
