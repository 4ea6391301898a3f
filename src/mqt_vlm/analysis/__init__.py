"""Cost analysis: analytic FLOPs of elastic VLMs at any visual-token budget."""
