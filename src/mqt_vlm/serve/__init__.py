"""The OpenAI-compatible server (`mqt serve`). Import `mqt_vlm.serve.app.create_app` to embed it;
this package imports nothing heavy on its own (FastAPI is the optional `serve` extra)."""
