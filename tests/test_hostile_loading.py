"""Damaged model folders through the commands: every one is `error: ...` and exit 2, never a
traceback and never a half-random model. Each case writes a real broken file (a copy of the shipped
builtin:shapes with one thing wrong) and runs the `mqt` command line on it.
"""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cli_run import assert_refused, run_mqt
from mqt_vlm.errors import MQTError
from mqt_vlm.loading import load_model, parse_dtype, resolve_device, resolve_model_path

SOURCE = resolve_model_path("builtin:shapes")  # 4 MB, tied lm_head, trained: a real model folder


def _tensors() -> dict[str, torch.Tensor]:
    return load_file(SOURCE / "model.safetensors")


def _save(folder: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def _edit_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))
    return edit


def _truncate(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _untie(config: dict) -> None:
    config["tie_word_embeddings"] = config["text_config"]["tie_word_embeddings"] = False


def _sharded_without_shard(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    index = {"metadata": {}, "weight_map": {name: "model-00001-of-00002.safetensors" for name in _tensors()}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


# name -> (how to break a copy of the model folder, what the error must name)
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "safetensors-truncated": (_truncate, "file not fully covered"),
    "safetensors-garbage": (lambda f: (f / "model.safetensors").write_bytes(b"\x00garbage" * 100), "not a readable safetensors file"),
    "safetensors-empty": (lambda f: (f / "model.safetensors").write_bytes(b""), "header too small"),
    "safetensors-missing": (lambda f: (f / "model.safetensors").unlink(), "has no weights"),
    "wrong-shape": (lambda f: _save(f, {**_tensors(), "mqt.query": _tensors()["mqt.query"][:5].clone()}),
                    "mqt.query is (5, 96) in the file but (32, 96) in the model"),
    "missing-lm-layer": (lambda f: _save(f, {k: v for k, v in _tensors().items() if ".layers.1." not in k or "language" not in k}),
                         "9 tensor(s) the model needs are missing"),
    "missing-mqt-query": (lambda f: _save(f, {k: v for k, v in _tensors().items() if k != "mqt.query"}),
                          "missing (they would be random): mqt.query"),
    "unexpected-tensor": (lambda f: _save(f, {**_tensors(), "mqt.extra": torch.zeros(2)}), "belong to no parameter: mqt.extra"),
    "untied-lm-head-missing": (_edit_config(_untie), "language_model.lm_head.weight"),
    "config-more-layers": (_edit_config(lambda c: c["text_config"].update(num_hidden_layers=5)), "language_model.model.layers.4."),
    "config-not-json": (lambda f: (f / "config.json").write_text("{ not json"), "config.json is not valid JSON"),
    "config-empty": (lambda f: (f / "config.json").write_text(""), "config.json is not valid JSON"),
    "config-a-list": (lambda f: (f / "config.json").write_text("[1, 2]"), "must hold a JSON object, got list"),
    "config-wrong-model-type": (_edit_config(lambda c: c.update(model_type="bert")), "describes a 'bert' model"),
    "config-num-queries-a-string": (_edit_config(lambda c: c["mqt_config"].update(num_queries="many")), "num_queries"),
    "config-text-config-an-int": (_edit_config(lambda c: c.update(text_config=5)), "not a valid mqt_vlm config"),
    "config-hidden-size-a-string": (_edit_config(lambda c: c["text_config"].update(hidden_size="big")), "hidden_size"),
    "processor-config-not-json": (lambda f: (f / "processor_config.json").write_text("{ nope"), "processor_config.json is not valid JSON"),
    "processor-config-missing": (lambda f: (f / "processor_config.json").unlink(), "no processor_config.json"),
    "processor-config-wrong-types": (lambda f: (f / "processor_config.json").write_text(json.dumps({"image_processor": {"crop_size": "big"}})),
                                     "Could not load the processor"),
    "tokenizer-json-garbage": (lambda f: (f / "tokenizer.json").write_text("garbage{"), "tokenizer.json is not valid JSON"),
    "tokenizer-json-wrong-structure": (lambda f: (f / "tokenizer.json").write_text('{"foo": 1}'), "Could not load the processor"),
    "tokenizer-config-not-json": (lambda f: (f / "tokenizer_config.json").write_text("{ nope"), "tokenizer_config.json is not valid JSON"),
    "tokenizer-missing": (lambda f: [(f / n).unlink() for n in ("tokenizer.json", "tokenizer_config.json")], "no tokenizer files"),
    "generation-config-not-json": (lambda f: (f / "generation_config.json").write_text("{ nope"), "generation_config.json is not valid JSON"),
    "index-lists-a-missing-shard": (_sharded_without_shard, "lists model-00001-of-00002.safetensors, which is not in"),
    "index-not-json": (lambda f: ((f / "model.safetensors").unlink(), (f / "model.safetensors.index.json").write_text("{")),
                       "model.safetensors.index.json is not valid JSON"),
}


def broken_copy(root: Path, name: str) -> Path:
    folder = root / name
    shutil.copytree(SOURCE, folder)
    CASES[name][0](folder)
    return folder


@pytest.mark.parametrize("name", sorted(CASES))
def test_generate_refuses_a_damaged_model_folder(name: str, tmp_path: Path, capsys) -> None:
    folder = broken_copy(tmp_path, name)
    assert_refused(["generate", "--model", str(folder), "--prompt", "hi", "--max-new-tokens", "1"], capsys, CASES[name][1])


def test_an_intact_copy_loads_and_its_tied_head_is_not_missing(tmp_path: Path, capsys) -> None:
    """The control for every case above: the same folder, unbroken, answers with exit 0."""
    folder = tmp_path / "intact"
    shutil.copytree(SOURCE, folder)
    code, output = run_mqt(["generate", "--model", str(folder), "--prompt", "hi", "--max-new-tokens", "1"], capsys)
    assert code == 0, output
    model, _ = load_model(folder)
    assert model.language_model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_every_command_refuses_missing_tensors(tmp_path: Path, capsys) -> None:
    """generate, chat, serve, eval and `train --init-from` go through the one strict loader."""
    folder = broken_copy(tmp_path, "missing-mqt-query")
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"id": "a", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]}]))
    expected = "missing (they would be random): mqt.query"
    assert_refused(["chat", "--model", str(folder)], capsys, expected)
    assert_refused(["serve", "--model", str(folder)], capsys, expected)
    assert_refused(["eval", "--model", str(folder), "--benchmarks", "synthetic", "--data-root", str(tmp_path),
                    "--out", str(tmp_path / "eval")], capsys, expected)
    config = Path(__file__).resolve().parents[1] / "configs" / "stage2-tiny.yaml"
    assert_refused(["train", str(config), str(tmp_path / "run"), "--init-from", str(folder), "--data", str(data)], capsys, expected)


def test_dtype_and_device_are_checked_before_loading(capsys) -> None:
    for command in (["generate", "--prompt", "hi"], ["chat"], ["serve"]):
        assert_refused([*command, "--dtype", "foo"], capsys, "--dtype must be one of float32, bfloat16, float16")
        assert_refused([*command, "--device", "foo"], capsys, "--device 'foo' is not a device")
    if not torch.cuda.is_available():
        assert_refused(["generate", "--prompt", "hi", "--device", "cuda"], capsys, "needs a CUDA GPU and none is visible")


def test_one_dtype_vocabulary_and_one_device_default() -> None:
    from mqt_vlm.analysis.gradcam_cli import gradcam  # noqa: F401 - the analysis commands take no device
    from mqt_vlm.checkpoints.convert import _resolve_dtype
    from mqt_vlm.eval.cli import evaluate
    from mqt_vlm.inference.cli import chat, generate
    from mqt_vlm.serve.cli import serve

    for names, dtype in ((("float32", "fp32", "torch.float32"), torch.float32), (("bfloat16", "bf16", "BF16"), torch.bfloat16),
                         (("float16", "fp16"), torch.float16)):
        assert {parse_dtype(name) for name in names} == {_resolve_dtype(names[0], [])} == {dtype}
    assert parse_dtype(None) is None and parse_dtype("auto") is None
    with pytest.raises(MQTError, match="float32, bfloat16, float16"):
        _resolve_dtype("float64", [])
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None) == resolve_device("auto") == expected
    for command in (generate, chat, serve, evaluate):
        assert inspect.signature(command).parameters["device"].default.default == "auto", command.__name__


def test_the_real_process_prints_no_traceback(tmp_path: Path) -> None:
    folder = broken_copy(tmp_path, "missing-lm-layer")
    run = subprocess.run([sys.executable, "-m", "mqt_vlm.cli", "generate", "--model", str(folder), "--prompt", "hi"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "error: The weights of" in run.stderr and "Traceback" not in run.stderr
