# Two commands for a fresh machine:
#   make demo   set up .venv, generate the demo data set, train, test and score (CPU, minutes)
#   make test   set up .venv and run the test suite (make test-fast: without the slow end-to-end tests)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test test-fast demo clean-demo

setup: $(VENV)/.installed

# torch/torchvision are pinned in requirements.txt.  visdom (live plots) is optional: 0.2.4
# only builds with setuptools<81 and without build isolation, so it gets its own step.
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q 'setuptools<81' wheel && \
	  $(BIN)/pip install -q --no-build-isolation visdom==0.2.4 || \
	  echo "warning: visdom could not be installed; live plots are off (training works without it)"
	touch $@

test: setup
	$(BIN)/python -m pytest -q tests

# the unit and integration tests, without the end-to-end runs marked `slow`
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" tests

demo: setup
	$(BIN)/python scripts/demo.py

clean-demo:
	rm -rf datasets/demo_horse2zebra checkpoints/demo_cut results/demo_cut checkpoints/bench_* results/bench_* results/benchmark_demo.json
