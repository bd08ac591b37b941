# Two commands on a fresh machine:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DATASET ?= amazon2018-game
DATA_ROOT ?= data/processed
PORT ?= 8501
# Which torch build the venv gets: cpu (PyTorch's CPU wheel index, ~190 MB) or cuda (PyPI's default build, which
# pulls the CUDA libraries: several GB). Default: cuda when nvidia-smi sees a GPU, else cpu.
TORCH ?= $(shell nvidia-smi -L 2>/dev/null | grep -q GPU && echo cuda || echo cpu)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
CHROMIUM ?= /usr/bin/chromium
ifeq ($(filter $(TORCH),cpu cuda),)
$(error TORCH must be cpu or cuda, not '$(TORCH)')
endif

.PHONY: venv demo test test-fast data clean

$(VENV)/.installed: pyproject.toml requirements.txt constraints.txt
	@echo "installing into $(VENV) with TORCH=$(TORCH) (make venv TORCH=cpu|cuda to choose)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
ifeq ($(TORCH),cpu)
	# torch alone from PyTorch's CPU index (only CPU builds there); the rest from the default index, where the
	# installed torch already satisfies every requirement, so no CUDA package is pulled
	$(PY) -m pip install -q --no-deps --index-url $(TORCH_CPU_INDEX) -c constraints.txt torch
endif
	$(PY) -m pip install -q -c constraints.txt -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# manifest.json is written last (the folder is built aside and renamed), so an interrupted prepare is redone here
$(DATA_ROOT)/$(DATASET)/manifest.json: | venv
	$(VENV)/bin/specgr prepare --dataset $(DATASET) --out $(DATA_ROOT)

data: $(DATA_ROOT)/$(DATASET)/manifest.json

# the main job: data (downloaded and checksum-verified, or read from $$SPECGR_DATA_MIRROR), then the app on localhost
demo: venv data
	$(VENV)/bin/streamlit run app/main.py --server.address 127.0.0.1 --server.port $(PORT)

# everything: unit tests, notebooks (nbmake) and the app tests (AppTest + headless Chromium); the notebooks and the
# app's browser test use the real amazon2018-game data, prepared first (from $$SPECGR_DATA_MIRROR or upstream)
test: venv data
	@test -x $(CHROMIUM) || echo "note: no Chromium at $(CHROMIUM), so the browser test of the app is skipped." \
		"Install it: sudo apt-get install chromium (Debian/Ubuntu), or point CHROMIUM=... at one."
	SPECGR_CHROMIUM=$(CHROMIUM) $(PY) -m pytest --nbmake --nbmake-timeout=300 tests notebooks

# unit tests only, no notebooks or browser
test-fast: venv
	$(PY) -m pytest -m "not slow" tests

clean:
	rm -rf $(VENV) .pytest_cache
