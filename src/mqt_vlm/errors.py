"""The one error type users catch.

Every check on user input (budgets, images, prompts, checkpoints) raises `MQTError` with a message
that says what was wrong and what to do, so callers can tell our validation apart from bugs.
Budgets are parsed and checked in `mqt_vlm.budgets`.
"""

from __future__ import annotations


class MQTError(ValueError):
    """Invalid input or configuration; the message says how to fix it."""


# the budget check lives with the rest of the budget vocabulary; this name stays for old imports
from mqt_vlm.budgets import check_budget  # noqa: E402,F401
