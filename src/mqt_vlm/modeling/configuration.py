"""`MQTConfig`: vision tower config + LLM config + query-transformer config, the HF way."""

from __future__ import annotations

from typing import Any, Literal

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

from mqt_vlm.errors import MQTError
from mqt_vlm.modeling.query_transformer import QueryTransformerConfig

IMAGE_TOKEN = "<image>"


def vision_patch_grid(vision_config: PretrainedConfig) -> tuple[int, int]:
    """The vision tower's patch grid (rows, cols), from image_size and patch_size."""
    image_size = getattr(vision_config, "image_size", None)
    patch_size = getattr(vision_config, "patch_size", None)
    if image_size is None or patch_size is None:
        raise MQTError(
            f"Cannot read image_size/patch_size from the vision config ({type(vision_config).__name__}); "
            "set mqt_config['key_grid'] explicitly."
        )
    sizes = image_size if isinstance(image_size, (list, tuple)) else (image_size, image_size)
    patches = patch_size if isinstance(patch_size, (list, tuple)) else (patch_size, patch_size)
    return (int(sizes[0]) // int(patches[0]), int(sizes[1]) // int(patches[1]))


def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


class MQTConfig(PretrainedConfig):
    """An elastic VLM: any HF vision tower, the MQT, any HF causal LM.

    `mqt_config` holds the query-transformer fields (`QueryTransformerConfig`); its `kv_dim`,
    `output_dim` and `key_grid` are derived from the sub-configs, and a mismatch is an error.
    """

    model_type = "mqt_vlm"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_vision_model"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vision_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    mqt_config: dict | None = None
    vision_feature_layer: int = -2
    vision_feature_select_strategy: Literal["default", "full"] = "default"
    image_token: str = IMAGE_TOKEN
    image_token_id: int = 32000
    default_num_visual_tokens: int | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.vision_feature_select_strategy not in ("default", "full"):
            raise MQTError(
                "vision_feature_select_strategy must be 'default' (drop the CLS token) or 'full', "
                f"got {self.vision_feature_select_strategy!r}."
            )
        mqt = dict(self.mqt_config or {})
        derived: dict[str, Any] = {"kv_dim": self.vision_config.hidden_size, "output_dim": self.text_config.hidden_size}
        try:
            derived["key_grid"] = list(vision_patch_grid(self.vision_config))
        except MQTError:
            derived["key_grid"] = mqt.get("key_grid")  # a tower without image_size/patch_size: trust the input
        for name, value in derived.items():
            given = mqt.get(name)
            if given is not None and value is not None and list(_as_tuple(given)) != list(_as_tuple(value)):
                source = "the vision tower" if name != "output_dim" else "the language model"
                raise MQTError(
                    f"mqt_config[{name!r}] = {given!r} does not match {source} ({value!r}); remove it from "
                    "mqt_config (it is derived) or fix the sub-config."
                )
            mqt[name] = value
        self.mqt_config = QueryTransformerConfig.from_dict(mqt).to_dict()
        if self.default_num_visual_tokens is None:
            self.default_num_visual_tokens = self.mqt_config["num_queries"]
        if not 1 <= int(self.default_num_visual_tokens) <= self.mqt_config["num_queries"]:
            raise MQTError(
                f"default_num_visual_tokens={self.default_num_visual_tokens} is outside 1..{self.num_queries}."
            )
        if self.text_config.tie_word_embeddings:
            self.tie_word_embeddings = True

    @property
    def num_queries(self) -> int:
        return int(self.mqt_config["num_queries"])

    @property
    def query_transformer_config(self) -> QueryTransformerConfig:
        return QueryTransformerConfig.from_dict(dict(self.mqt_config))
