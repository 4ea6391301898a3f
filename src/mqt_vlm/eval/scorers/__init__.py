"""Pure reproductions of the official benchmark scorers, one module per benchmark.

Each module's docstring names the official file it reproduces and lists the quirks kept on purpose:
those quirks move published numbers, so matching them matters more than tidiness. Everything here is
stdlib-only and side-effect free; only `write_mmbench_submission` touches openpyxl, and only when it
is installed.
"""

from __future__ import annotations

from mqt_vlm.eval.scorers.answer_normalization import normalize_vqa_answer
from mqt_vlm.eval.scorers.gqa import gqa_correct, gqa_prediction
from mqt_vlm.eval.scorers.mmbench import mmbench_choice, mmbench_circular_accuracy
from mqt_vlm.eval.scorers.mme import COGNITION_TASKS, PERCEPTION_TASKS, mme_parse_answer, mme_scores
from mqt_vlm.eval.scorers.pope import pope_metrics, pope_says_yes
from mqt_vlm.eval.scorers.scienceqa import scienceqa_accuracy, scienceqa_choice
from mqt_vlm.eval.scorers.submissions import (
    gqa_submission,
    mmbench_submission_table,
    vizwiz_submission,
    vqav2_submission,
    write_json_submission,
    write_mmbench_submission,
)
from mqt_vlm.eval.scorers.textvqa import textvqa_accuracy
from mqt_vlm.eval.scorers.vqa import vizwiz_accuracy, vqa_accuracy

__all__ = [
    "COGNITION_TASKS",
    "PERCEPTION_TASKS",
    "gqa_correct",
    "gqa_prediction",
    "gqa_submission",
    "mmbench_choice",
    "mmbench_circular_accuracy",
    "mmbench_submission_table",
    "mme_parse_answer",
    "mme_scores",
    "normalize_vqa_answer",
    "pope_metrics",
    "pope_says_yes",
    "scienceqa_accuracy",
    "scienceqa_choice",
    "textvqa_accuracy",
    "vizwiz_accuracy",
    "vizwiz_submission",
    "vqa_accuracy",
    "vqav2_submission",
    "write_json_submission",
    "write_mmbench_submission",
]
