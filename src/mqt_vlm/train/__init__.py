"""Training: the paper's two-stage recipe with Matryoshka budget sampling, on Accelerate.

Entry point: `train.cli.train` (wired to `mqt train`; `python -m mqt_vlm.train` runs it directly,
e.g. under `accelerate launch`). Stage presets are YAML files in the repository's `configs/`.
"""
