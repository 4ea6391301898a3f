"""The one error type users catch.

Every check on user input (budgets, images, prompts, checkpoints) raises `MQTError` with a message
that says what was wrong and what to do, so callers can tell our validation apart from bugs.
"""

from __future__ import annotations


class MQTError(ValueError):
    """Invalid input or configuration; the message says how to fix it."""


def check_budget(num_tokens: object, max_tokens: int) -> int:
    """Validate one visual-token budget m and return it as an int.

    Booleans and floats are refused on purpose: a budget of `True` or `16.0` is almost always a bug
    (e.g. a config value read as the wrong type), and silently accepting it hides that.
    """
    if isinstance(num_tokens, bool) or not isinstance(num_tokens, int):
        # numpy / torch integer scalars are fine; anything else is not
        if hasattr(num_tokens, "__index__") and not isinstance(num_tokens, bool):
            try:
                num_tokens = int(num_tokens.__index__())  # type: ignore[union-attr]
            except TypeError:
                pass
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int):
            raise MQTError(
                f"num_visual_tokens must be an int in 1..{max_tokens}, got {num_tokens!r} "
                f"({type(num_tokens).__name__}). Pass an explicit integer budget."
            )
    if not 1 <= num_tokens <= max_tokens:
        raise MQTError(
            f"num_visual_tokens must be in 1..{max_tokens} (the model's number of queries M), "
            f"got {num_tokens}."
        )
    return num_tokens
