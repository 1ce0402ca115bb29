# Two entry points for a fresh clone (see README): `make demo` and `make test`.
# Both create .venv with the Python 3.11 on PATH and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
SHARED ?= ../shared
# Where local copies of the models and sample clips live; without them the project
# downloads from the official URLs in models/manifest.yaml and sample_videos/manifest.yaml.
ifneq ($(wildcard $(SHARED)/models),)
export DETECTOR_MODEL_DIR ?= $(abspath $(SHARED)/models)
endif
ifneq ($(wildcard $(SHARED)/footage),)
export DETECTOR_SAMPLE_DIR ?= $(abspath $(SHARED)/footage)
endif

.PHONY: demo test test-fast lint install bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[edge,backend,test,test-edge,cluster]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/detector replay aboda_video4 --video out/aboda_video4.mp4 --tracks out/aboda_video4.tracks.jsonl --acts out/aboda_video4.acts.jsonl
	@echo "annotated video: out/aboda_video4.mp4"

# Every tier: unit (pure), integration (real servers and models), accuracy (real footage).
test: install
	$(VENV)/bin/pytest -q -rs

# The developer's fast loop: the pure unit tier (no models, no footage, no servers). Pure tests
# share nothing, so they run on every core at once; the other tiers start servers and time
# things, and stay serial.
test-fast: install
	$(VENV)/bin/pytest -q -rs -n auto tests/unit

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(VENV)/bin/detector bench $(DETECTOR_SAMPLE_DIR) --truth $(DETECTOR_SAMPLE_DIR)/truth.yaml --json out/bench/bench.json

clean:
	rm -rf $(VENV) out
