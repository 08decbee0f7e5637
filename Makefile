# `make demo` and `make test` each create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
INSTALLED := $(VENV)/.installed

.PHONY: demo test bench clean

$(INSTALLED): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

demo: $(INSTALLED)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash launch/demo.sh

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest -q

bench: $(INSTALLED)
	$(VENV)/bin/python -m pip install -q -e '.[test,bench]'
	for b in benchmarks/*_bench.py; do $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) demo *.egg-info
