# Two commands set up a fresh machine:
#   make run    create .venv, install, migrate, serve on http://127.0.0.1:8000
#   make test   install the test tools and run the whole suite
# NO_LOCAL_MODEL=1 skips llama-cpp-python (no 6-minute build; the local model then
# shows as unavailable, with the reason, in the model menu).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
REQS := $(if $(NO_LOCAL_MODEL),requirements-base.txt,requirements.txt)
# A portable llama.cpp build: -march=native can pick CPU features (AMX) that a virtual
# machine advertises but does not allow, and the wheel may move to another machine.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# The second test pass: PostgreSQL and Redis, when reachable (CI requires them).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# CI set to any value but an empty or false one (0, false, no, off; any case) means CI,
# as in conftest.running_in_ci(): PostgreSQL is required and missing tools fail tests.
CI_LOWER := $(shell printf '%s' '$(subst ','',$(CI))' | tr '[:upper:]' '[:lower:]')
REQUIRE_POSTGRES ?= $(if $(filter-out 0 false no off n f,$(CI_LOWER)),1,)

.PHONY: run test install install-dev migrate admin lint format bench loadtest clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-%: $(VENV)/bin/activate requirements-base.txt requirements.txt requirements-dev.txt
	$(PIP) install --quiet -r $*
	@touch $@

install: $(VENV)/.installed-$(REQS)

install-dev: $(VENV)/.installed-requirements-dev.txt

migrate: install
	$(PY) manage.py migrate --noinput

# DEBUG is off unless set (DEBUG=true make run shows Django's detailed error pages); with
# ALLOWED_HOSTS unset the site answers on loopback only and whitenoise serves static/.
# --no-proxy-headers: the client's address is the connection's, never a header a client
# could write (behind a proxy, see TRUSTED_PROXY_HEADER in the README).
run: migrate
	@echo "Serving on http://$(HOST):$(PORT)/ (Ctrl+C stops)"
	$(VENV)/bin/uvicorn chat_ai.asgi:application --host $(HOST) --port $(PORT) --no-proxy-headers

test: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	@# Two passes of the suite side by side, one core each: SQLite (shown as it runs) and,
	@# when PostgreSQL answers, PostgreSQL + Redis with the multi-worker tests (its output
	@# follows when it ends). The browser tests, the most sensitive to a busy machine, run
	@# after them, alone, in a process of their own (Playwright's sync API keeps an event
	@# loop running while the browser is open).
	@if $(PY) -c "import psycopg, sys; psycopg.connect('$(TEST_DATABASE_URL)', connect_timeout=3).close()" 2>/dev/null; then \
		pg_log=$$(mktemp); \
		echo "== the PostgreSQL + Redis pass runs beside the SQLite pass (its output: after it)"; \
		DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
			$(VENV)/bin/pytest -m "not browser and not local_model" > $$pg_log 2>&1 & pg_pid=$$!; \
		$(VENV)/bin/pytest -m "not postgres and not browser"; sqlite_rc=$$?; \
		wait $$pg_pid; pg_rc=$$?; \
		echo "== the suite on PostgreSQL + Redis, with the multi-worker tests"; \
		cat $$pg_log; rm -f $$pg_log; \
		[ $$sqlite_rc -eq 0 ] && [ $$pg_rc -eq 0 ]; \
	elif [ -n "$(REQUIRE_POSTGRES)" ]; then \
		echo "PostgreSQL is not reachable at $(TEST_DATABASE_URL)"; exit 1; \
	else \
		echo "== PostgreSQL not reachable: only the SQLite pass"; \
		$(VENV)/bin/pytest -m "not postgres and not browser"; \
	fi
	$(VENV)/bin/pytest -m browser

# The benchmark suite (about 25 minutes; results in a temporary folder, see BENCHMARKS.md)
# and the load test (200 users for about a minute). BENCH_ARGS / LOADTEST_ARGS pass
# options, e.g. make bench BENCH_ARGS="--quick", make loadtest LOADTEST_ARGS="--db postgres".
bench: install-dev
	$(PY) -m bench.run $(BENCH_ARGS)

loadtest: install-dev
	$(PY) -m bench.loadtest $(LOADTEST_ARGS)

# Make an administrator account (asks for a user name, an e-mail and a password); the
# admin is at /admin/ and staff see an Admin link in the conversation list.
admin: migrate
	$(PY) manage.py createsuperuser

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
