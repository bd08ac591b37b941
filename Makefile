# Two commands on a fresh machine:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DATASET ?= amazon2018-game
PORT ?= 8501

.PHONY: venv demo test test-fast data clean

$(VENV)/.installed: pyproject.toml requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# constraints.txt pins the CPU build of torch; with a GPU, drop `-c constraints.txt`
	$(PY) -m pip install -q -c constraints.txt -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

data/processed/$(DATASET)/manifest.json: | venv
	$(VENV)/bin/specgr prepare --dataset $(DATASET)

data: data/processed/$(DATASET)/manifest.json

# the main job: data (downloaded and checksum-verified, or read from $$SPECGR_DATA_MIRROR), then the app on localhost
demo: venv data
	$(VENV)/bin/streamlit run app/main.py --server.address 127.0.0.1 --server.port $(PORT)

# everything: unit tests, notebooks (nbmake) and the app tests (AppTest + headless Chromium); the notebooks and the
# app's browser test use the real amazon2018-game data, prepared first (from $$SPECGR_DATA_MIRROR or upstream)
test: venv data
	$(PY) -m pytest --nbmake --nbmake-timeout=300 tests notebooks

# unit tests only, no notebooks or browser
test-fast: venv
	$(PY) -m pytest -m "not slow" tests

clean:
	rm -rf $(VENV) .pytest_cache
