"""The visual-token budget of a vLLM request: `mm_processor_kwargs={"num_visual_tokens": m}`.

Kept free of vLLM imports, so the rules are testable (and documented) without vLLM installed.

A request gives one int for all its images or a list with one int per image; without it, the
engine-wide `--mm-processor-kwargs` value applies, else the model's `default_num_visual_tokens`.
Anything else in `mm_processor_kwargs` is refused: a misspelt key would otherwise be ignored and the
request answered at the default budget without a word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mqt_vlm.errors import MQTError, check_budget

BUDGET_KEY = "num_visual_tokens"


def resolve_budgets(
    mm_kwargs: Mapping[str, object],
    num_images: int,
    num_queries: int,
    default: int,
) -> list[int]:
    """One validated budget per image of a request (in prompt order)."""
    unknown = sorted(set(mm_kwargs) - {BUDGET_KEY})
    if unknown:
        raise MQTError(
            f"Unknown mm_processor_kwargs {unknown}; MQT models take only {{'{BUDGET_KEY}': m}} "
            f"(an int in 1..{num_queries}, or one int per image)."
        )
    value = mm_kwargs.get(BUDGET_KEY)
    if value is None:
        return [check_budget(default, num_queries)] * num_images
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) != num_images:
            raise MQTError(
                f"{BUDGET_KEY} lists {len(value)} budgets but the request has {num_images} image(s); "
                "give one int for all images or exactly one per image."
            )
        return [check_budget(m, num_queries) for m in value]
    return [check_budget(value, num_queries)] * num_images


def budgets_of_missing(budgets: Sequence[int], is_cached: Sequence[bool]) -> list[int]:
    """The budgets of the images vLLM's processor cache does not hold (it processes only those)."""
    return [m for m, cached in zip(budgets, is_cached) if not cached]
