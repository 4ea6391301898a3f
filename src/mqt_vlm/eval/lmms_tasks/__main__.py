"""`python -m mqt_vlm.eval.lmms_tasks` prints the folder to pass to lmms-eval's --include_path."""

from mqt_vlm.eval.lmms_tasks import TASKS_DIR

print(TASKS_DIR)
