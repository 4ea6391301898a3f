"""The one model loader: a `--model`/`--init-from` argument to (model, processor), for every command.

An argument is an `mqt_vlm` folder or `builtin:NAME` (a model shipped inside the package). The dtype
has one vocabulary (`parse_dtype`) and the device one default (`resolve_device`: CUDA when
available, else CPU), whatever the command.

Loading is strict. transformers fills tensors that are missing from the weights with random values
and only logs it, so a folder that lost an LM layer or `mqt.query` would load with exit 0 and answer
nonsense; here missing, unexpected and mis-shaped tensors are an `MQTError` that lists them (tied
weights, e.g. `lm_head` with `tie_word_embeddings`, are not missing: transformers ties them and does
not report them). Damaged files (JSON that does not parse, a safetensors file with a bad header, a
tokenizer or processor that does not load) are errors that name the file, never a traceback.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from mqt_vlm.errors import MQTError

BUILTIN_PREFIX = "builtin:"
MODEL_TYPE = "mqt_vlm"
# the one dtype vocabulary of every command and config; the short names are Accelerate's
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# JSON files a model folder may hold; each must parse if present
_JSON_FILES = ("config.json", "generation_config.json", "processor_config.json", "preprocessor_config.json",
               "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json", "added_tokens.json",
               "chat_template.json", "model.safetensors.index.json")
_LISTED = 8  # tensor names shown per kind of mismatch


def builtin_dir(name: str) -> Path:
    """Folder of a model shipped in `mqt_vlm/builtin/NAME`."""
    folder = Path(str(resources.files("mqt_vlm"))) / "builtin" / name
    if not (folder / "config.json").is_file():
        available = sorted(p.name for p in folder.parent.iterdir() if (p / "config.json").is_file()) if folder.parent.is_dir() else []
        raise MQTError(
            f"No built-in model {name!r}; available: {', '.join(available) or 'none'}. Built-in models are made by "
            "the CPU reproduction: `make pretrain-lm` builds shapes-base and `make reproduce` (python -m "
            "mqt_vlm.repro --install-builtin) trains shapes from it (docs/reproduction.md); any folder written "
            "by `mqt train` or `save_pretrained` works as --model too."
        )
    return folder


def resolve_model_path(model: str | Path) -> Path:
    text = str(model)
    if text.startswith(BUILTIN_PREFIX):
        return builtin_dir(text[len(BUILTIN_PREFIX):])
    path = Path(text)
    if not (path / "config.json").is_file():
        raise MQTError(
            f"{text} is not an mqt_vlm model folder (no config.json). Use a folder written by "
            "`save_pretrained`/`mqt convert`/`mqt train`, or builtin:shapes."
        )
    return path


def parse_dtype(dtype: str | torch.dtype | None, option: str = "--dtype") -> torch.dtype | None:
    """float32/bfloat16/float16 (or fp32/bf16/fp16, or a torch.dtype) -> torch.dtype; None or
    "auto" -> None (keep the dtype the weights were saved in)."""
    if dtype is None or isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    name = str(dtype).strip().lower().removeprefix("torch.")
    if name == "auto":
        return None
    name = DTYPE_ALIASES.get(name, name)
    if name not in DTYPES:
        raise MQTError(f"{option} must be one of {', '.join(DTYPES)} (or {', '.join(DTYPE_ALIASES)}; auto keeps "
                       f"the saved dtype), got {dtype!r}.")
    return DTYPES[name]


def resolve_device(device: str | None = None, option: str = "--device") -> str:
    """The device every command defaults to: CUDA when available, else CPU (None or "auto"); an
    explicit device is checked to exist, so a typo or a missing GPU is a clear error up front."""
    text = (device or "auto").strip()
    if text.lower() == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise MQTError(f"{option} {device!r} is not a device; use auto, cpu, cuda or cuda:N ({exc}).") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise MQTError(f"{option} {device} needs a CUDA GPU and none is visible; use --device cpu (or auto).")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise MQTError(f"{option} {device}: only {torch.cuda.device_count()} CUDA device(s) are visible.")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise MQTError(f"{option} mps needs Apple's Metal backend, which this machine lacks; use --device cpu (or auto).")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise MQTError(f"{option} {device!r}: use auto, cpu, cuda, cuda:N or mps.")
    return str(parsed)


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise MQTError(f"Cannot read {file}: {exc.strerror or exc}.") from None
    except UnicodeDecodeError as exc:
        raise MQTError(f"{file} is not UTF-8 text (byte {exc.start}); the model folder is damaged: re-export or re-download it.") from None
    except json.JSONDecodeError as exc:
        raise MQTError(f"{file} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); the model "
                       "folder is damaged: re-export or re-download it.") from None
    except (RecursionError, ValueError) as exc:
        raise MQTError(f"{file} is not usable JSON ({type(exc).__name__}); re-export or re-download it.") from None
    if not isinstance(data, dict):
        raise MQTError(f"{file} must hold a JSON object, got {type(data).__name__}; re-export or re-download it.")
    return data


def _check_folder(path: Path) -> list[Path]:
    """Every JSON file parses, the weights' headers read, the processor files exist; returns the weight files."""
    for name in _JSON_FILES:
        if (path / name).is_file():
            _read_json(path / name)
    model_type = _read_json(path / "config.json").get("model_type", MODEL_TYPE)
    if model_type != MODEL_TYPE:
        raise MQTError(f"{path / 'config.json'} describes a {model_type!r} model, not an {MODEL_TYPE} one; convert a "
                       "released MQT-LLaVA checkpoint with `mqt convert`.")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise MQTError(f"{index} has no 'weight_map' of tensor names to files; re-export the model.")
        files = [path / name for name in sorted(set(weight_map.values()))]
    elif (path / "model.safetensors").is_file():
        files = [path / "model.safetensors"]
    elif (path / "pytorch_model.bin").is_file():
        files = []  # read by torch.load inside from_pretrained; its errors are caught there
    else:
        raise MQTError(f"{path} has no weights (model.safetensors); re-export the model or copy the file back.")
    from safetensors import SafetensorError, safe_open

    for file in files:
        if not file.is_file():
            raise MQTError(f"{index.name} lists {file.name}, which is not in {path}; copy it back or re-export the model.")
        try:
            with safe_open(str(file), framework="pt") as handle:  # reads and checks the header only
                handle.keys()
        except (SafetensorError, OSError) as exc:
            raise MQTError(f"{file} is not a readable safetensors file ({exc}); it is truncated or corrupt: "
                           "re-export or re-download it.") from None
    if not any((path / name).is_file() for name in ("processor_config.json", "preprocessor_config.json")):
        raise MQTError(f"{path} has no processor_config.json (image settings); save the processor with the model "
                       "(MQTProcessor.save_pretrained).")
    if not any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise MQTError(f"{path} has no tokenizer files (tokenizer.json, tokenizer_config.json); save the processor "
                       "with the model (MQTProcessor.save_pretrained).")
    return files


def _load_config(path: Path) -> Any:
    from mqt_vlm.modeling.configuration import MQTConfig

    try:
        return MQTConfig.from_pretrained(path)
    except MQTError as exc:
        raise MQTError(f"{path / 'config.json'}: {exc}") from None
    except Exception as exc:  # wrong types surface as TypeError, AttributeError, dataclass errors...
        raise MQTError(f"{path / 'config.json'} is not a valid {MODEL_TYPE} config: {type(exc).__name__}: "
                       f"{_one_line(exc)}") from None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or repr(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def _names(items: list[str]) -> str:
    return ", ".join(items[:_LISTED]) + (f", ... ({len(items) - _LISTED} more)" if len(items) > _LISTED else "")


def check_complete(info: dict[str, Any], where: str) -> None:
    """Refuse a load that left tensors at random values or ignored some (transformers' loading info)."""
    missing = sorted(info.get("missing_keys") or ())
    unexpected = sorted(info.get("unexpected_keys") or ())
    mismatched = sorted(info.get("mismatched_keys") or ())
    errors = [str(e) for e in info.get("error_msgs") or ()]
    if not (missing or unexpected or mismatched or errors):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensor(s) the model needs are missing (they would be random): {_names(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} tensor(s) in the files belong to no parameter: {_names(unexpected)}")
    if mismatched:
        shapes = [f"{name} is {tuple(saved)} in the file but {tuple(needed)} in the model" for name, saved, needed in mismatched]
        parts.append(f"{len(mismatched)} tensor(s) have the wrong shape: {_names(shapes)}")
    parts += errors
    raise MQTError(f"The weights of {where} do not match its config.json: " + "; ".join(parts) + ". The folder is "
                   "incomplete or mixes two models: re-export it (save_pretrained, mqt train, mqt convert).")


def _load_processor(path: Path, where: str) -> Any:
    from mqt_vlm.processing.processor import MQTProcessor

    try:
        return MQTProcessor.from_pretrained(path)
    except MQTError:
        raise
    except Exception as exc:  # the tokenizers backend raises bare Exception on a malformed tokenizer.json
        raise MQTError(f"Could not load the processor (tokenizer and image settings) of {where}: "
                       f"{type(exc).__name__}: {_one_line(exc)}. Re-save it with MQTProcessor.save_pretrained.") from None


def load_model(model: str | Path, dtype: str | torch.dtype | None = None, device: str | None = None, *,
               quantization_config: Any = None) -> tuple[Any, Any]:
    """(MQTForConditionalGeneration in eval mode, MQTProcessor) from a folder or `builtin:NAME`.

    `dtype` as `parse_dtype` reads it (None keeps the saved one); `device` as `resolve_device` reads
    it ("auto": CUDA when available, else CPU; the commands' default), None leaves the model on the
    CPU. Both are checked before anything loads. Every problem is an `MQTError`.
    """
    from mqt_vlm.modeling.auto import register
    from mqt_vlm.modeling.modeling import MQTForConditionalGeneration

    register()
    where = str(model)
    torch_dtype = parse_dtype(dtype)
    device = resolve_device(device) if device is not None else None
    path = resolve_model_path(model)
    _check_folder(path)
    kwargs: dict[str, Any] = {"config": _load_config(path), "output_loading_info": True}
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    else:  # report mis-shaped tensors in check_complete rather than as transformers' RuntimeError
        kwargs["ignore_mismatched_sizes"] = True
    from pickle import UnpicklingError

    from safetensors import SafetensorError

    try:
        loaded, info = MQTForConditionalGeneration.from_pretrained(path, **kwargs)
    except MQTError:
        raise
    except (OSError, RuntimeError, ValueError, EOFError, UnpicklingError, SafetensorError) as exc:  # damaged files
        raise MQTError(f"Could not read the weights of {where}: {type(exc).__name__}: {_one_line(exc)}. The files are "
                       "damaged: re-export or re-download the model.") from None
    check_complete(info, where)
    processor = _load_processor(path, where)
    loaded.eval()
    if device and quantization_config is None:  # quantized weights are placed by their backend
        loaded.to(device)
    return loaded, processor
