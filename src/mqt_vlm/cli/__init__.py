"""The `mqt` command line."""
