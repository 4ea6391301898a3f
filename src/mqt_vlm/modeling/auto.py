"""Registration with the transformers Auto classes, so that after `import mqt_vlm` a folder with
`model_type: mqt_vlm` resolves through `AutoConfig`, `AutoModel`, `AutoModelForImageTextToText`,
`AutoProcessor` and `AutoImageProcessor` (and so `pipeline("image-text-to-text", model=folder)`).

`mqt_vlm/__init__.py` calls `register()` at import: the Hugging Face convention, and the one
import-time side effect DESIGN.md allows. It costs the import of transformers and torch (which every
use of a model pays anyway); nothing optional (accelerate, fastapi, matplotlib, ...) is imported by
our code here.
"""

from __future__ import annotations

from functools import cache


@cache
def register() -> None:
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
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
    AutoImageProcessor.register(MQTConfig, image_processor_classes={"pil": MQTImageProcessor}, exist_ok=True)
    AutoProcessor.register(MQTConfig, MQTProcessor, exist_ok=True)
