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

.PHONY: run test install install-dev migrate lint format bench loadtest clean

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

run: migrate
	@echo "Serving on http://$(HOST):$(PORT)/ (Ctrl+C stops)"
	$(VENV)/bin/uvicorn chat_ai.asgi:application --host $(HOST) --port $(PORT)

test: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
