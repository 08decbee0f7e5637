# `make demo` and `make test` each create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
INSTALLED := $(VENV)/.installed

.PHONY: demo test test-fast bench browser shellcheck postgres clean

$(INSTALLED): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test,beam]'
	# musicnn's weights (the music embedding of evaluate); its metadata pins a
	# NumPy and TensorFlow of 2019, and only its checkpoint files are read.
	$(VENV)/bin/python -m pip install -q --no-deps musicnn==0.1.0
	touch $@

demo: $(INSTALLED)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash launch/demo.sh

# The whole suite on every core (pytest-xdist, at most 4 workers: each simulates 2 devices),
# a file per worker, the longest files first (tests/conftest.py). Compiled programs are
# cached in .cache/ for the processes tests start. The 25 slowest tests are listed at the end.
test: $(INSTALLED) browser shellcheck postgres
	MELODYGAN_JAX_CACHE=$(CURDIR)/.cache/jax_tests $(VENV)/bin/python -m pytest -q -n auto \
	  --maxprocesses=4 --dist loadfile --no-loadscope-reorder --durations=25

# For working: everything but the multi-process, browser, PostgreSQL and end-to-end runs,
# on every core (pytest-xdist), with compiled programs cached in .cache/ for the next run.
test-fast: $(INSTALLED)
	MELODYGAN_JAX_CACHE=$(CURDIR)/.cache/jax_tests $(VENV)/bin/python -m pytest -q -n auto \
	  --maxprocesses=4 --dist loadfile --no-loadscope-reorder \
	  -m 'not (end_to_end or multiprocess or browser or postgres)'

# The listening-page test opens index.html in headless Chromium (Debian's package).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  ! command -v apt-get >/dev/null || \
	  apt-get install -y -q chromium >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) || \
	  echo "note: could not install chromium; the listening-page test will be skipped"

# The launch-script test runs shellcheck (Debian's package).
shellcheck:
	@command -v shellcheck >/dev/null || ! command -v apt-get >/dev/null || \
	  apt-get install -y -q shellcheck >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q shellcheck >/dev/null 2>&1) || \
	  echo "note: could not install shellcheck; the shellcheck test will be skipped"

# The sweep test starts its own PostgreSQL server (Debian's package) on a unix socket.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v apt-get >/dev/null || \
	  apt-get install -y -q postgresql >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql >/dev/null 2>&1) || \
	  echo "note: could not install postgresql; the PostgreSQL sweep test will be skipped"

bench: $(INSTALLED)
	$(VENV)/bin/python -m pip install -q -e '.[test,beam,bench]'
	for b in benchmarks/*_bench.py; do $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) demo *.egg-info
