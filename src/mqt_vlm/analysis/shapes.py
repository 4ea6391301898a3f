"""Shape specs for analytic FLOP counting: vision tower, connector (MQT or LLaVA's MLP), LLM.

A spec holds only the numbers that set the cost of a forward pass, so the 7B presets can be data
files (`presets/*.json`) and a live `MQTConfig` can be turned into the same thing (`from_config`).
The counting itself lives in `mqt_vlm.analysis.flops`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mqt_vlm.errors import MQTError

if TYPE_CHECKING:  # transformers is heavy; the analytic counts do not need it
    from mqt_vlm.modeling.configuration import MQTConfig

PRESETS_PACKAGE = "mqt_vlm.analysis"
PRESETS_DIR = "presets"


def _check_positive(obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MQTError(f"{type(obj).__name__}.{name} must be a positive int, got {value!r}.")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise MQTError(f"Unknown keys {unknown} in {where}; known: {sorted(known)}.")
    return cls(**data)


@dataclass(frozen=True)
class VisionShape:
    """A ViT tower. `run_all_layers=True` counts every layer even when the features are read from
    an earlier one (`feature_layer=-2`): the released MQT-LLaVA runs the full CLIP tower with
    output_hidden_states and takes hidden_states[-2], so the last layer is paid for. Our model stops
    at the feature layer (`run_all_layers=False`)."""

    image_size: int = 336
    patch_size: int = 14
    width: int = 1024
    layers: int = 24
    heads: int = 16
    mlp_size: int = 4096
    channels: int = 3
    class_token: bool = True  # CLIP prepends a CLS token; SigLIP does not
    feature_layer: int = -2
    run_all_layers: bool = True
    attention_pool_head: bool = False  # SigLIP's MAP head (one probe query + MLP)

    def __post_init__(self) -> None:
        _check_positive(self, ("image_size", "patch_size", "width", "layers", "heads", "mlp_size", "channels"))
        if self.image_size % self.patch_size:
            raise MQTError(f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}.")
        if not -(self.layers + 1) <= self.feature_layer <= self.layers:
            raise MQTError(f"feature_layer={self.feature_layer} is outside the tower's {self.layers} layers.")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def seq_len(self) -> int:
        """Tokens inside the tower: patches plus the CLS token when there is one."""
        return self.num_patches + int(self.class_token)

    @property
    def layers_run(self) -> int:
        """hidden_states has layers + 1 entries (embeddings first), so hidden_states[k] needs
        k layers (k >= 0) or layers + 1 + k layers (k < 0)."""
        if self.run_all_layers:
            return self.layers
        return self.feature_layer if self.feature_layer >= 0 else self.layers + 1 + self.feature_layer


@dataclass(frozen=True)
class MQTShape:
    """The Matryoshka Query Transformer. Our implementation computes all M queries and slices the
    first m, so its cost does not depend on the budget (a few GFLOPs at 7B scale)."""

    num_queries: int = 256
    width: int = 1024
    kv_dim: int = 1024
    output_dim: int = 4096
    heads: int = 16
    depth: int = 1
    mlp_ratio: float = 4.0
    type: Literal["mqt"] = "mqt"

    def __post_init__(self) -> None:
        _check_positive(self, ("num_queries", "width", "kv_dim", "output_dim", "heads", "depth"))
        if self.type != "mqt":
            raise MQTError(f"MQTShape.type must be 'mqt', got {self.type!r}.")

    @property
    def mlp_hidden(self) -> int:
        return int(self.width * self.mlp_ratio)


@dataclass(frozen=True)
class MLPProjectorShape:
    """LLaVA-1.5's `mlp2x_gelu` projector: Linear(in, hidden), GELU, Linear(hidden, out), applied to
    every vision patch, so the LLM always sees all N patches as visual tokens."""

    in_dim: int = 1024
    hidden_dim: int = 4096
    out_dim: int = 4096
    type: Literal["mlp"] = "mlp"

    def __post_init__(self) -> None:
        _check_positive(self, ("in_dim", "hidden_dim", "out_dim"))
        if self.type != "mlp":
            raise MQTError(f"MLPProjectorShape.type must be 'mlp', got {self.type!r}.")


@dataclass(frozen=True)
class LLMShape:
    """A LLaMA-style decoder. `lm_head_positions="last"` counts the vocabulary projection for the
    last prefill position only, which is what generation does (HF `generate` passes
    logits_to_keep=1); `"all"` matches a plain forward that returns logits for every position."""

    hidden: int = 4096
    layers: int = 32
    heads: int = 32
    kv_heads: int = 32
    head_dim: int = 128
    intermediate: int = 11008
    vocab: int = 32000
    gated_mlp: bool = True  # SwiGLU: gate, up, down = 3 matmuls; False: up, down = 2
    lm_head_positions: Literal["last", "all"] = "last"

    def __post_init__(self) -> None:
        _check_positive(self, ("hidden", "layers", "heads", "kv_heads", "head_dim", "intermediate", "vocab"))
        if self.heads % self.kv_heads:
            raise MQTError(f"heads={self.heads} is not a multiple of kv_heads={self.kv_heads}.")
        if self.lm_head_positions not in ("last", "all"):
            raise MQTError(f"lm_head_positions must be 'last' or 'all', got {self.lm_head_positions!r}.")


Connector = MQTShape | MLPProjectorShape


@dataclass(frozen=True)
class ModelShape:
    """Vision tower + connector + LLM, with the published TFLOPs where a paper reports them."""

    vision: VisionShape
    connector: Connector
    llm: LLMShape
    name: str = "custom"
    description: str = ""
    reference_tflops: dict[int, float] = field(default_factory=dict)
    reference_source: str = ""

    def __post_init__(self) -> None:
        c = self.connector
        in_dim = c.kv_dim if isinstance(c, MQTShape) else c.in_dim
        out_dim = c.output_dim if isinstance(c, MQTShape) else c.out_dim
        if in_dim != self.vision.width:
            raise MQTError(f"The connector reads width {in_dim} but the vision tower gives {self.vision.width}.")
        if out_dim != self.llm.hidden:
            raise MQTError(f"The connector writes width {out_dim} but the LLM hidden size is {self.llm.hidden}.")

    @property
    def max_visual_tokens(self) -> int:
        """M for the MQT; N (every patch) for an MLP projector."""
        if isinstance(self.connector, MQTShape):
            return self.connector.num_queries
        return self.vision.num_patches

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reference_tflops"] = {str(k): v for k, v in self.reference_tflops.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelShape":
        data = dict(data)
        for key in ("vision", "connector", "llm"):
            if not isinstance(data.get(key), dict):
                raise MQTError(f"A model shape needs a '{key}' object, got {data.get(key)!r}.")
        connector = dict(data.pop("connector"))
        kind = connector.get("type", "mqt")
        connector_cls = {"mqt": MQTShape, "mlp": MLPProjectorShape}.get(kind)
        if connector_cls is None:
            raise MQTError(f"connector.type must be 'mqt' or 'mlp', got {kind!r}.")
        reference = {int(k): float(v) for k, v in dict(data.pop("reference_tflops", {})).items()}
        return _build(
            cls,
            {
                **data,
                "vision": _build(VisionShape, data.pop("vision"), "vision"),
                "connector": _build(connector_cls, connector, "connector"),
                "llm": _build(LLMShape, data.pop("llm"), "llm"),
                "reference_tflops": reference,
            },
            "the model shape",
        )


def available_presets() -> list[str]:
    root = resources.files(PRESETS_PACKAGE).joinpath(PRESETS_DIR)
    return sorted(p.name[: -len(".json")] for p in root.iterdir() if p.name.endswith(".json"))


def load_preset(name: str) -> ModelShape:
    """A shipped preset by name (e.g. "mqt-llava-7b"), or a path to a JSON file of the same form."""
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        text = path.read_text()
    else:
        resource = resources.files(PRESETS_PACKAGE).joinpath(PRESETS_DIR, f"{name}.json")
        if not resource.is_file():
            raise MQTError(f"Unknown FLOPs preset {name!r}; shipped: {available_presets()} (or pass a .json path).")
        text = resource.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MQTError(f"FLOPs preset {name!r} is not valid JSON: {exc}") from exc
    return ModelShape.from_dict(data)


def from_config(
    cfg: MQTConfig, lm_head_positions: Literal["last", "all"] = "last", full_tower: bool = False
) -> ModelShape:
    """The shape of an `MQTForConditionalGeneration` built from `cfg` (an `MQTConfig`).

    The vision config must be ViT-like (image_size, patch_size, hidden_size, num_hidden_layers,
    intermediate_size). Our model runs the tower only up to `vision_feature_layer`, so only those
    layers are counted; `full_tower=True` counts every layer (and SigLIP's pooling head), which is
    what the released code and transformers' LLaVA run.
    """
    v, t = cfg.vision_config, cfg.text_config
    image_size, patch_size = v.image_size, v.patch_size
    if isinstance(image_size, (list, tuple)) or isinstance(patch_size, (list, tuple)):
        raise MQTError("FLOP counting supports square images and patches only.")
    siglip = "siglip" in str(getattr(v, "model_type", ""))
    vision = VisionShape(
        image_size=int(image_size),
        patch_size=int(patch_size),
        width=int(v.hidden_size),
        layers=int(v.num_hidden_layers),
        heads=int(v.num_attention_heads),
        mlp_size=int(v.intermediate_size),
        channels=int(getattr(v, "num_channels", 3)),
        class_token=not siglip,
        feature_layer=int(cfg.vision_feature_layer),
        run_all_layers=full_tower,
        attention_pool_head=full_tower and siglip and bool(getattr(v, "vision_use_head", True)),
    )
    q = cfg.query_transformer_config
    connector = MQTShape(
        num_queries=q.num_queries,
        width=int(q.hidden_size),
        kv_dim=q.kv_dim,
        output_dim=q.output_dim,
        heads=q.num_heads,
        depth=q.depth,
        mlp_ratio=q.mlp_ratio,
    )
    heads = int(t.num_attention_heads)
    head_dim = getattr(t, "head_dim", None) or int(t.hidden_size) // heads
    llm = LLMShape(
        hidden=int(t.hidden_size),
        layers=int(t.num_hidden_layers),
        heads=heads,
        kv_heads=int(getattr(t, "num_key_value_heads", None) or heads),
        head_dim=int(head_dim),
        intermediate=int(t.intermediate_size),
        vocab=int(t.vocab_size),
        gated_mlp=True,
        lm_head_positions=lm_head_positions,
    )
    return ModelShape(vision=vision, connector=connector, llm=llm, name=str(getattr(cfg, "name_or_path", "") or "config"))
