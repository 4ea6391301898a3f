"""Registration with the transformers Auto classes, so `AutoConfig`/`AutoModel*`/`AutoProcessor`
resolve `model_type: mqt_vlm`. Called lazily (by `mqt_vlm.__getattr__` and the loaders), never at
import time."""

from __future__ import annotations

from functools import cache


@cache
def register() -> None:
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForImageTextToText,
        AutoProcessor,
    )

    from mqt_vlm.modeling.configuration import MQTConfig
    from mqt_vlm.modeling.modeling import MQTForConditionalGeneration
    from mqt_vlm.processing.image_processor import MQTImageProcessor
    from mqt_vlm.processing.processor import MQTProcessor

    AutoConfig.register(MQTConfig.model_type, MQTConfig, exist_ok=True)
    AutoModel.register(MQTConfig, MQTForConditionalGeneration, exist_ok=True)
    AutoModelForImageTextToText.register(MQTConfig, MQTForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(MQTConfig, MQTProcessor, exist_ok=True)
