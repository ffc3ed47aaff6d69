# Hanul: `make run` installs and runs everything; `make test` installs and runs the tests (what CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: run bot console generator model models migrate test lint format clean

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[postgres]'
	touch $@

# The test environment takes the CPU build of torch first, so no multi-GB CUDA download happens. CI's package index
# serves it as torch==2.13.0; where pip reads plain PyPI (whose Linux wheel is the CUDA one), name PyTorch's CPU index:
# make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
$(VENV)/.test: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q -e '.[test,postgres]'
	touch $@

# The configured video model is fetched once (a no-op when it is already here and locked), then the bot starts.
run: model
	$(PY) -m bot

# The bot alone: for a bot whose generator runs elsewhere (GENERATOR_URL).
bot: $(VENV)/.runtime
	$(PY) -m bot

model: $(VENV)/.runtime
	$(PY) -m generator download

models: $(VENV)/.runtime
	$(PY) -m generator models

console: model
	$(PY) -m bot --console

generator: model
	$(PY) -m generator serve

# Each service upgrades its own tables (and does so at start): the bot its own, and the generator's when the
# generator runs beside it (no GENERATOR_URL). A generator-only host runs `python -m generator migrate`.
migrate: $(VENV)/.runtime
	$(PY) -m bot --migrate

# lint-imports checks the dependency contracts in pyproject.toml ([tool.importlinter]); it reads every file each
# time (its cache keys on modification times, which a quick edit-and-undo can leave unchanged).
lint: $(VENV)/.test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

# The suite over up to 4 processes, a test file per process at a time (a file's module fixtures run once).
test: lint
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile

format: $(VENV)/.test
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
