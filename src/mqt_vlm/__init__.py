"""mqt-vlm: elastic vision-language models with the Matryoshka Query Transformer.

`import mqt_vlm` registers our classes with transformers' Auto classes (the Hugging Face
convention): afterwards `AutoConfig`, `AutoModel`, `AutoModelForImageTextToText`, `AutoProcessor`,
`AutoImageProcessor` and `pipeline("image-text-to-text")` resolve an mqt_vlm folder. That imports
transformers and torch; our public names are still resolved lazily, and no optional package
(accelerate, fastapi, matplotlib, ...) is imported by our code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "MQTError": "mqt_vlm.errors",
    "QueryTransformerConfig": "mqt_vlm.modeling.query_transformer",
    "MatryoshkaQueryTransformer": "mqt_vlm.modeling.query_transformer",
    "MQTConfig": "mqt_vlm.modeling.configuration",
    "MQTForConditionalGeneration": "mqt_vlm.modeling.modeling",
    "MQTImageProcessor": "mqt_vlm.processing.image_processor",
    "MQTProcessor": "mqt_vlm.processing.processor",
    "build_model": "mqt_vlm.modeling.builder",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from mqt_vlm.errors import MQTError
    from mqt_vlm.modeling.builder import build_model
    from mqt_vlm.modeling.configuration import MQTConfig
    from mqt_vlm.modeling.modeling import MQTForConditionalGeneration
    from mqt_vlm.modeling.query_transformer import MatryoshkaQueryTransformer, QueryTransformerConfig
    from mqt_vlm.processing.image_processor import MQTImageProcessor
    from mqt_vlm.processing.processor import MQTProcessor


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mqt_vlm' has no attribute {name!r}")


importlib.import_module("mqt_vlm.modeling.auto").register()
