# localizer: common tasks. `make train` and `make test` set up the virtual
# environment first when needed.
#
#   make train [DATASET=synthetic|voc|voc_dir|csv] [DATA_DIR=...] [EXPERIMENT=...]
#   make evaluate [MODEL=work/quickstart/best.keras]
#   make export MODEL=... EXPORT_DIR=models/localizer [EXPORT_FLAGS="--tflite --tflite_int8"]
#   make test (lint + fast tests) | lint | format | test-slow | coverage | bench | real-check | clean
#   make browser (chromium for the demo page's browser test; CI runs it before make test)
#
# TF=cpu (default) installs the `tensorflow-cpu` wheel and no CUDA packages;
# TF=gpu installs `tensorflow[and-cuda]` for machines with an NVIDIA GPU.

PYTHON_SYSTEM ?= python3
VENV ?= .venv
TF ?= cpu
# The development install has the optional extras too, so that their tests run.
EXTRAS ?= dev,onnx,demo
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(TF)

# Empty DATASET/DATA_DIR leave the experiment's choice (synthetic by default).
# With neither DATASET nor EXPERIMENT, `make train` runs the quick start.
DATASET ?=
DATA_DIR ?=
SPLIT ?= val
EXPERIMENT ?= $(if $(DATASET),,quickstart)
# The default work dir is work/<dataset>[-<data folder>-<path digest>][-<experiment>], from the one
# rule in localizer/training/workdir.py (asked only when a target needs it).
WORK_DIR ?= $(shell $(PY) -m localizer.training.workdir "$(DATASET)" "$(DATA_DIR)" "$(EXPERIMENT)")
DATA_FLAGS = $(if $(DATASET),--dataset=$(DATASET)) $(if $(DATA_DIR),--data_dir="$(DATA_DIR)")
MODEL ?= $(WORK_DIR)/best.keras
REPORT_DIR ?= $(WORK_DIR)/report
EXPORT_DIR ?= models/localizer
# More flags of localizer.export, e.g. "--tflite --tflite_int8", --norefine, --version=N.
EXPORT_FLAGS ?=
PYTEST_ARGS ?=
# Processes for the fast suite (pytest-xdist); 0 runs it in this process.
TEST_WORKERS ?= 2

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install train evaluate export test lint format test-slow coverage bench real-check browser clean

install: $(STAMP)

# Re-runs only when the package metadata changes; otherwise `make install` is
# a no-op.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS),$(TF)]"
	rm -f $(VENV)/.installed-*
	touch $@

train: $(STAMP)
	$(PY) -m localizer.train $(DATA_FLAGS) --experiment="$(EXPERIMENT)" --workdir="$(WORK_DIR)"

evaluate: $(STAMP)
	$(PY) -m localizer.evaluate --model="$(MODEL)" $(DATA_FLAGS) --split=$(SPLIT) \
		--report_dir="$(REPORT_DIR)"

export: $(STAMP)
	$(PY) -m localizer.export --model="$(MODEL)" --export_dir="$(EXPORT_DIR)" $(EXPORT_FLAGS)

test: lint
	$(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) $(PYTEST_ARGS)

# ruff's rules and format (pyproject.toml); `make format` applies the formatter and the safe fixes.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

# Line coverage of the fast suite (in-process code; the commands' subprocesses are not traced).
coverage: $(STAMP)
	$(PY) -m coverage run --source=localizer,pipelines,experiments -m pytest -q -m "not slow" $(PYTEST_ARGS)
	$(PY) -m coverage report --skip-empty --sort=cover

# A short real recipe trained, exported (--tflite --tflite_int8) and scored through every runtime,
# plain and EXIF-tagged photos; fails when two disagree (experiments/real_model_check.py, ~15 min).
# Run it after any change to inference, serving, export or decoding.
REAL_DATA_DIR ?= ../shared/data/realmix
real-check: $(STAMP)
	$(PY) -m experiments.real_model_check --data_dir="$(REAL_DATA_DIR)"

# Needs ../shared/data/realmix for real photos (generated JPEGs otherwise).
bench: $(STAMP)
	$(PY) -m experiments.bench_pipeline
	$(PY) -m experiments.bench_training
	$(PY) -m experiments.bench_distributed
	$(PY) -m experiments.bench_serving
	$(PY) -m experiments.results

# Debian's chromium and its chromedriver, which the demo page's browser test drives
# (tests/localizer/test_demo_browser.py: skipped without them, failed without them in CI). Installed
# with apt when missing (as root, as CI runs); a no-op when both are there.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		echo "chromium and chromedriver are installed"; \
	else \
		apt-get update && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends chromium chromium-driver; \
	fi

clean:
	rm -rf $(VENV) work reports build .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
