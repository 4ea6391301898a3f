"""An independent reference of the released MQT-LLaVA forward pass, and a writer of tiny checkpoints
in the released layout. Written from DESIGN.md sections 2-3 without using mqt_vlm's model code:
manual multi-head attention, LLaVA-style splicing at IMAGE_TOKEN_INDEX = -200, CLIP's own PIL
preprocessing, HF CLIP and LLaMA fed with the raw released tensors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from slow_llama_tokenizer import SlowLlamaTokenizer

IMAGE_TOKEN_INDEX = -200
TOWER = "model.vision_tower.vision_tower.vision_model."
QA = "model.query_abstractor."
CLIP_KW = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=1, image_size=84, patch_size=14)
LLAMA_KW = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                vocab_size=32000, max_position_embeddings=512, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0)
M = 16


def write_released_checkpoint(out: Path, tokenizer_dir: Path, *, sharded: bool = False, with_tower: bool = True,
                              seed: int = 0, extra: dict | None = None, drop: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """A tiny MQT-LLaVA folder: config.json with llava_llama fields, bf16-free fp32 safetensors."""
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    llm = LlamaForCausalLM(LlamaConfig(**LLAMA_KW))
    for k, v in llm.state_dict().items():
        tensors[k] = v.clone()
    if with_tower:
        tower = CLIPVisionModel(CLIPVisionConfig(**CLIP_KW))
        for k, v in tower.state_dict().items():
            if not k.endswith("position_ids"):
                tensors[TOWER + k] = v.clone()
    c, d = CLIP_KW["hidden_size"], LLAMA_KW["hidden_size"]
    qa = {
        "query": torch.randn(M, c) * 0.5, "pos_embed": torch.randn(M, c), "proj": torch.randn(c, d) * c**-0.5,
        "attn.in_proj_weight": torch.randn(3 * c, c) * c**-0.5, "attn.in_proj_bias": torch.randn(3 * c) * 0.1,
        "attn.out_proj.weight": torch.randn(c, c) * c**-0.5, "attn.out_proj.bias": torch.randn(c) * 0.1,
        "ln_q.weight": 1 + 0.1 * torch.randn(c), "ln_q.bias": 0.1 * torch.randn(c),
        "ln_k.weight": 1 + 0.1 * torch.randn(c), "ln_k.bias": 0.1 * torch.randn(c),
        "ln_v.weight": 1 + 0.1 * torch.randn(c), "ln_v.bias": 0.1 * torch.randn(c),
    }
    tensors.update({QA + k: v for k, v in qa.items()})
    tensors.update(extra or {})
    for key in drop:
        tensors.pop(key)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    if sharded:
        keys = sorted(tensors)
        half = len(keys) // 2
        parts = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
        for name, part in parts.items():
            save_file({k: tensors[k] for k in part}, str(out / name))
        index = {"metadata": {}, "weight_map": {k: n for n, part in parts.items() for k in part}}
        (out / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        save_file(tensors, str(out / "model.safetensors"))
    config = {**LLAMA_KW, "model_type": "llava_llama", "architectures": ["LlavaLlamaForCausalLM"],
              "mm_vision_tower": "openai/clip-vit-large-patch14-336", "mm_hidden_size": c, "mm_vision_select_layer": -2,
              "mm_vision_select_feature": "patch", "image_aspect_ratio": "pad", "query_abstractor_type": "mqt",
              "num_visual_tokens": "second_stage", "mm_projector_type": "linear", "use_mm_proj": True,
              "mm_use_im_start_end": False, "tune_mm_mlp_adapter": False, "hidden_act": "silu", "torch_dtype": "float32"}
    (out / "config.json").write_text(json.dumps(config))
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    return tensors


def write_clip_folder(out: Path, tensors: dict[str, torch.Tensor]) -> None:
    """The tower as a standalone HF CLIP folder (what --vision-tower points to)."""
    tower = CLIPVisionModel(CLIPVisionConfig(**CLIP_KW))
    tower.load_state_dict({k[len(TOWER):]: v for k, v in tensors.items() if k.startswith(TOWER)}, strict=False)
    tower.save_pretrained(out)


def slow_tokenizer_of(tokenizer, legacy: bool = False) -> SlowLlamaTokenizer:
    """The slow (sentencepiece) tokenizer the released code would have built from the same files."""
    model_file = getattr(tokenizer, "vocab_file", None)
    if not model_file or not Path(model_file).is_file():
        raise AssertionError("The released-tokenization reference needs the tokenizer's sentencepiece tokenizer.model.")
    return SlowLlamaTokenizer(model_file, legacy=legacy)


def released_tokenization(tokenizer, prompt: str, image_index: int = IMAGE_TOKEN_INDEX, legacy: bool = False) -> list[int]:
    """LLaVA's tokenizer_image_token with the slow tokenizer, written from its description: chunks
    tokenized with special tokens, the first chunk's BOS kept, every later chunk's first token dropped
    when the first chunk began with BOS, image_index between chunks. `tokenizer` is a slow reference
    (`SlowLlamaTokenizer`) or a fast tokenizer whose tokenizer.model is used to build one."""
    slow = tokenizer if isinstance(tokenizer, SlowLlamaTokenizer) else slow_tokenizer_of(tokenizer, legacy)
    chunks = [slow(c) for c in prompt.split("<image>")]
    out, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == slow.bos_token_id:
        offset = 1
        out.append(chunks[0][0])
    for i, chunk in enumerate(chunks):
        if i:
            out.append(image_index)
        out.extend(chunk[offset:])
    return out


class Reference:
    """The released forward pass at budget m, from raw released tensors."""

    def __init__(self, tensors: dict[str, torch.Tensor], tokenizer) -> None:
        self.t = tensors
        self.tokenizer = tokenizer
        self.tower = CLIPVisionModel(CLIPVisionConfig(**CLIP_KW)).eval()
        self.tower.load_state_dict({k[len(TOWER):]: v for k, v in tensors.items() if k.startswith(TOWER)}, strict=False)
        self.llm = LlamaForCausalLM(LlamaConfig(**LLAMA_KW)).eval()
        self.llm.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("model.vision_tower") and not k.startswith(QA)})
        self.clip_pre = CLIPImageProcessorPil(size={"shortest_edge": 84}, crop_size={"height": 84, "width": 84})

    def pixels(self, image):
        w, h = image.size
        side = max(w, h)
        from PIL import Image

        canvas = Image.new("RGB", (side, side), tuple(int(x * 255) for x in self.clip_pre.image_mean))
        canvas.paste(image.convert("RGB"), ((side - w) // 2, (side - h) // 2))
        return self.clip_pre(canvas, return_tensors="pt")["pixel_values"]

    def resampler(self, feats: torch.Tensor, m: int) -> torch.Tensor:
        t = {k[len(QA):]: v for k, v in self.t.items() if k.startswith(QA)}
        c = t["query"].shape[1]
        heads = 16
        src = int(t["pos_embed"].shape[0] ** 0.5)
        tgt = int(feats.shape[1] ** 0.5)
        pos = t["pos_embed"].reshape(1, src, src, c).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(tgt, tgt), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(-1, c)
        ln = lambda x, name: F.layer_norm(x, (c,), t[f"{name}.weight"], t[f"{name}.bias"], eps=1e-6)  # noqa: E731
        q = ln(t["query"][:m] + t["pos_embed"][:m], "ln_q")
        k = ln(pos, "ln_k")
        v = ln(feats[0], "ln_v")
        wq, wk, wv = t["attn.in_proj_weight"].chunk(3)
        bq, bk, bv = t["attn.in_proj_bias"].chunk(3)
        split = lambda x: x.reshape(x.shape[0], heads, c // heads).transpose(0, 1)  # noqa: E731
        qh, kh, vh = split(q @ wq.T + bq), split(k @ wk.T + bk), split(v @ wv.T + bv)
        att = torch.softmax(qh @ kh.transpose(1, 2) / (c // heads) ** 0.5, dim=-1)
        out = (att @ vh).transpose(0, 1).reshape(m, c)
        out = out @ t["attn.out_proj.weight"].T + t["attn.out_proj.bias"]
        return out @ t["proj"]  # [m, D]

    def ids(self, prompt: str) -> list[int]:
        return released_tokenization(self.tokenizer, prompt, IMAGE_TOKEN_INDEX)

    @torch.no_grad()
    def embeds(self, image, prompt: str, m: int) -> torch.Tensor:
        hidden = self.tower(self.pixels(image), output_hidden_states=True).hidden_states[-2][:, 1:]
        visual = self.resampler(hidden, m)
        ids = self.ids(prompt)
        at = ids.index(IMAGE_TOKEN_INDEX)
        emb = self.llm.get_input_embeddings()
        before = emb(torch.tensor(ids[:at]))
        after = emb(torch.tensor(ids[at + 1:]))
        return torch.cat([before, visual, after])[None]

    @torch.no_grad()
    def logits(self, image, prompt: str, m: int) -> torch.Tensor:
        return self.llm(inputs_embeds=self.embeds(image, prompt, m)).logits

    @torch.no_grad()
    def greedy(self, image, prompt: str, m: int, steps: int) -> list[int]:
        embeds = self.embeds(image, prompt, m)
        out = []
        for _ in range(steps):
            nxt = int(self.llm(inputs_embeds=embeds).logits[0, -1].argmax())
            out.append(nxt)
            if nxt == self.tokenizer.eos_token_id:
                break
            embeds = torch.cat([embeds, self.llm.get_input_embeddings()(torch.tensor([[nxt]]))], dim=1)
        return out
