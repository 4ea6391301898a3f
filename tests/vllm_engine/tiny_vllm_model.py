"""A tiny MQT model that vLLM's CPU backend can run, written to a folder.

vLLM's CPU attention needs head_dim >= 32, so the LM is 128 wide with 4 heads (the `tiny` preset has
head_dim 16). M = 16 queries (the `tiny` preset's grid), default budget 8 (not M, so a test can
tell them apart), 3 LM layers, the 32000-token LLaMA
vocabulary from mistral-common. `python tests/vllm_engine/tiny_vllm_model.py OUT` writes one by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

TEXT = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 32}
VISION = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2}


def write_tiny_model(out: Path, tokenizer_dir: Path, num_queries: int = 16, default_budget: int = 8, seed: int = 0) -> Path:
    """Build, save (model + processor) and return `out`. Random weights, scaled up so greedy
    answers vary with the image and the budget instead of repeating one token."""
    import torch

    from mqt_vlm.modeling.builder import build_model, load_preset

    preset = load_preset("tiny")
    torch.manual_seed(seed)
    side = int(num_queries**0.5)
    mqt = {**preset["mqt_config"], "num_queries": num_queries, "query_grid": [side, num_queries // side]}
    model, processor = build_model(
        {**preset["vision_config"], **VISION},
        {**preset["text_config"], **TEXT},
        str(tokenizer_dir),
        mqt,
        image_processor=preset.get("image_processor"),
        default_num_visual_tokens=default_budget,
    )
    with torch.no_grad():
        model.mqt.proj.mul_(8.0)  # visual tokens on the scale of the text embeddings
    model.eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


if __name__ == "__main__":
    from mqt_vlm.assets import llama_tokenizer_dir

    target = Path(sys.argv[1])
    print(write_tiny_model(target, llama_tokenizer_dir(target.with_name(target.name + "-tokenizer"))))
