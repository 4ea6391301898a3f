"""Evaluation: benchmark loaders and the pure scoring functions that reproduce the official scorers."""
