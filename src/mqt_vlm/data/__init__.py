"""Datasets for training and evaluating mqt-vlm: loaders and the synthetic grid-VQA generator."""
