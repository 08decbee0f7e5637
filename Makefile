# `make demo` and `make test` each create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
INSTALLED := $(VENV)/.installed

.PHONY: demo test bench browser postgres clean

$(INSTALLED): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

demo: $(INSTALLED)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash launch/demo.sh

test: $(INSTALLED) browser postgres
	$(VENV)/bin/python -m pytest -q

# The listening-page test opens index.html in headless Chromium (Debian's package).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  ! command -v apt-get >/dev/null || \
	  apt-get install -y -q chromium >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) || \
	  echo "note: could not install chromium; the listening-page test will be skipped"

# The sweep test starts its own PostgreSQL server (Debian's package) on a unix socket.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v apt-get >/dev/null || \
	  apt-get install -y -q postgresql >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql >/dev/null 2>&1) || \
	  echo "note: could not install postgresql; the PostgreSQL sweep test will be skipped"

bench: $(INSTALLED)
	$(VENV)/bin/python -m pip install -q -e '.[test,bench]'
	for b in benchmarks/*_bench.py; do $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) demo *.egg-info
