"""Import of released MQT-LLaVA checkpoints: parity with an independent reference, layouts, errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from mqt_vlm import MQTError, MQTForConditionalGeneration, MQTProcessor
from mqt_vlm.checkpoints.convert import convert_released
from released_reference import QA, TOWER, Reference, write_clip_folder, write_released_checkpoint

PROMPT_Q = "What is in the picture?"


@pytest.fixture(scope="module")
def released(tmp_path_factory, llama_tokenizer_dir):
    src = tmp_path_factory.mktemp("released")
    tensors = write_released_checkpoint(src, llama_tokenizer_dir, sharded=True)
    dst = convert_released(src, tmp_path_factory.mktemp("converted"), dtype="float32")
    return tensors, dst


def test_converted_model_matches_reference_logits_and_generation(released, photos):
    tensors, dst = released
    model = MQTForConditionalGeneration.from_pretrained(dst).eval()
    processor = MQTProcessor.from_pretrained(dst)
    ref = Reference(tensors, processor.tokenizer)
    prompt = processor.format_prompt(PROMPT_Q)
    assert model.config.default_num_visual_tokens == 16  # "second_stage" -> M, never random
    worst = 0.0
    for name in ("chelsea", "astronaut", "camera"):
        for m in (2, 5, 16):
            batch = processor(images=photos[name], text=prompt, num_visual_tokens=m)
            with torch.no_grad():
                ours = model(**batch, num_visual_tokens=m).logits
            theirs = ref.logits(photos[name], prompt, m)
            assert ours.shape == theirs.shape
            worst = max(worst, float((ours - theirs).abs().max()))
    assert worst <= 1e-4, worst
    batch = processor(images=photos["coffee"], text=prompt, num_visual_tokens=4)
    generated = model.generate(**batch, num_visual_tokens=4, max_new_tokens=8, do_sample=False)
    assert generated[0, batch["input_ids"].shape[1]:].tolist() == ref.greedy(photos["coffee"], prompt, 4, 8)


def test_single_file_and_external_tower(tmp_path, llama_tokenizer_dir, photos):
    src = tmp_path / "src"
    tensors = write_released_checkpoint(src, llama_tokenizer_dir, with_tower=False, seed=1)
    with pytest.raises(MQTError, match="--vision-tower"):
        convert_released(src, tmp_path / "a")
    full = write_released_checkpoint(tmp_path / "donor", llama_tokenizer_dir, seed=1)
    write_clip_folder(tmp_path / "clip", full)
    dst = convert_released(src, tmp_path / "dst", vision_tower=tmp_path / "clip", dtype="float32")
    model = MQTForConditionalGeneration.from_pretrained(dst).eval()
    processor = MQTProcessor.from_pretrained(dst)
    ref = Reference({**tensors, **{k: v for k, v in full.items() if k.startswith(TOWER)}}, processor.tokenizer)
    prompt = processor.format_prompt(PROMPT_Q)
    batch = processor(images=photos["chelsea"], text=prompt, num_visual_tokens=8)
    with torch.no_grad():
        diff = (model(**batch, num_visual_tokens=8).logits - ref.logits(photos["chelsea"], prompt, 8)).abs().max()
    assert diff <= 1e-4


def test_strict_lists_missing_and_unexpected(tmp_path, llama_tokenizer_dir):
    src = tmp_path / "src"
    write_released_checkpoint(src, llama_tokenizer_dir, extra={"model.mm_projector.weight": torch.zeros(2, 2)},
                              drop=(QA + "ln_k.bias", "model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(MQTError) as info:
        convert_released(src, tmp_path / "dst")
    message = str(info.value)
    assert "mqt.ln_k.bias" in message and "language_model.model.layers.1.mlp.up_proj.weight" in message
    assert "model.mm_projector.weight" in message
    dst = convert_released(src, tmp_path / "dst", strict=False)
    report = json.loads((dst / "conversion.json").read_text())
    assert "model.mm_projector.weight" in report["unexpected"] and "mqt.ln_k.bias" in report["missing"]


def test_stage_one_query_abstractor_bin(tmp_path, llama_tokenizer_dir, photos):
    """A stage-1 folder (config + query_abstractor.bin) plus the base LLM folder."""
    base = tmp_path / "base"
    tensors = write_released_checkpoint(base, llama_tokenizer_dir, seed=2)
    stage1 = tmp_path / "stage1"
    stage1.mkdir()
    (stage1 / "config.json").write_text((base / "config.json").read_text())
    new_qa = {k: v + 0.5 for k, v in tensors.items() if k.startswith(QA)}
    torch.save(new_qa, stage1 / "query_abstractor.bin")
    dst = convert_released(stage1, tmp_path / "dst", language_model=base, dtype="float32")
    model = MQTForConditionalGeneration.from_pretrained(dst)
    assert torch.equal(model.mqt.query.data, new_qa[QA + "query"])
    assert torch.equal(model.language_model.lm_head.weight.data, tensors["lm_head.weight"])


def test_pickles_with_code_are_refused(tmp_path, llama_tokenizer_dir):
    import pickle

    from mqt_vlm.checkpoints.released import load_query_abstractor

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "query_abstractor.bin"
    path.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(MQTError, match="weights_only"):
        load_query_abstractor(path)
    save_file({"query": torch.zeros(4, 8)}, str(tmp_path / "qa.safetensors"))
    assert set(load_query_abstractor(tmp_path / "qa.safetensors")) == {"mqt.query"}


def test_bad_sources(tmp_path):
    with pytest.raises(MQTError, match="not a folder"):
        convert_released(tmp_path / "nope", tmp_path / "dst")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MQTError, match="config.json"):
        convert_released(tmp_path / "empty", tmp_path / "dst")
