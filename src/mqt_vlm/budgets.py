"""The one budget vocabulary: what a visual-token budget may be, parsed and checked where it enters.

A budget m is how many of the M MQT tokens an image gets: an int in 1..M (any m works, the first m
of the M tokens: the prefix property). Wherever a person or a client writes one (a command-line
option, the HTTP `visual_tokens` field, lmms-eval's model_args, a Python call to the processor or
the model), it is parsed here and nowhere else, into one of three things:

- an int in 1..M;
- a list of such ints (`--budgets 2,8,M`: order kept, repeats dropped);
- the explicit string "auto" (`AUTO`) where the caller has an automatic budget (generate, chat, the
  server). "auto" is never a number: no 0 sentinel.

Words: digits, "M" or "max" for M itself (case does not matter), "auto" where allowed. Python
values: ints (numpy/torch integer scalars too); bools and floats are refused, since a budget of
`True` or `16.0` is almost always a bug upstream. Before a model is loaded (M unknown) a value can
be checked for syntax alone (`num_queries=None`): "M" is then kept as `MAX` and resolved later, so a
typo fails before minutes of loading.

The default, when no budget is given, is the model config's `default_num_visual_tokens`; the
processor saved with the model carries the same number (`MQTProcessor.default_num_visual_tokens`).
docs/budgets.md lists the command-line options.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from mqt_vlm.errors import MQTError

AUTO: Literal["auto"] = "auto"
MAX: Literal["max"] = "max"
MAX_WORDS = ("m", "max")
Budget = int | Literal["auto"]  # a parsed, validated budget
Unresolved = int | Literal["auto", "max"]  # parsed before M is known


def check_budget(num_tokens: object, max_tokens: int, name: str = "num_visual_tokens") -> int:
    """Validate one budget m given as a Python value and return it as an int in 1..max_tokens."""
    if isinstance(num_tokens, bool) or not isinstance(num_tokens, int):
        # numpy / torch integer scalars are fine; anything else is not
        if hasattr(num_tokens, "__index__") and not isinstance(num_tokens, bool):
            try:
                num_tokens = int(num_tokens.__index__())  # type: ignore[union-attr]
            except TypeError:
                pass
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int):
            raise MQTError(
                f"{name} must be an int in 1..{max_tokens}, got {num_tokens!r} "
                f"({type(num_tokens).__name__}). Pass an explicit integer budget."
            )
    if not 1 <= num_tokens <= max_tokens:
        raise MQTError(f"{name} must be in 1..{max_tokens} (the model's number of queries M), got {num_tokens}.")
    return num_tokens


def _words(allow_auto: bool, num_queries: int | None) -> str:
    bound = f"1..{num_queries}" if num_queries is not None else "1..M"
    return f"an int in {bound}, M (or max) for all queries" + (", or auto" if allow_auto else "")


def parse_budget(value: object, num_queries: int | None = None, *, allow_auto: bool = False,
                 option: str = "num_visual_tokens") -> Unresolved:
    """One budget from a word or a Python value.

    With `num_queries` the result is an int in 1..M (or "auto"); without, only the syntax is
    checked and "M"/"max" comes back as `MAX` (resolve it with a second call once M is known).
    `option` names the option or field in error messages.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            if allow_auto:
                return AUTO
            raise MQTError(f"{option}: 'auto' is not available here; give {_words(False, num_queries)}.")
        if text in MAX_WORDS:
            return num_queries if num_queries is not None else MAX
        if not text.isdigit():
            raise MQTError(f"{option} takes {_words(allow_auto, num_queries)}; got {value.strip()!r}.")
        value = int(text)
    if num_queries is None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MQTError(f"{option} takes {_words(allow_auto, None)}; got {value!r}.")
        return value
    return check_budget(value, num_queries, option)


def parse_budgets(value: str | Iterable[object], num_queries: int | None = None, *, allow_auto: bool = False,
                  option: str = "--budgets") -> list[Unresolved]:
    """A comma-separated list ("2,8,M") or a sequence of budgets; each as `parse_budget` reads it.

    Order is kept and repeats dropped; an empty list is an error.
    """
    items = [part for part in value.split(",") if part.strip()] if isinstance(value, str) else list(value)
    if not items:
        raise MQTError(f"{option} needs at least one budget, e.g. 2,8,M.")
    parsed = [parse_budget(item, num_queries, allow_auto=allow_auto, option=option) for item in items]
    return list(dict.fromkeys(parsed))


def resolve_default(value: object, default: int, num_queries: int, *, allow_auto: bool = False,
                    option: str = "num_visual_tokens") -> Budget:
    """`value` parsed, or `default` (the model's `default_num_visual_tokens`) when it is None or ""."""
    if value is None or (isinstance(value, str) and not value.strip()):
        value = default
    return parse_budget(value, num_queries, allow_auto=allow_auto, option=option)  # type: ignore[return-value]


def pick_option(option: str, value: str, aliases: dict[str, str]) -> str:
    """The value of a command-line option that also answers to old names (hidden aliases).

    Two of them given with different values is an error rather than a silent choice.
    """
    given = {name: v for name, v in ((option, value), *aliases.items()) if v is not None and str(v).strip()}
    if len(set(given.values())) > 1:
        raise MQTError(f"{' and '.join(given)} name the same setting; give only {option}.")
    return next(iter(given.values()), value)
