"""The elastic VLM: query transformer, config, model, builder and Auto registration."""
