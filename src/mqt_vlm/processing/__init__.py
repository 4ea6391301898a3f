"""Turning images and prompts into model inputs."""
