"""The web demo (`mqt demo --web`): one elastic model answering at any budget, in a browser.

`engine.py` computes (answers through `generate_batch` and the encode-once cache, TFLOPs, Grad-CAM,
synthetic scenes) and never imports gradio; `app.py` lays out the page and is the only module that
imports gradio (inside its functions, from the `web` extra: `pip install 'mqt-vlm[web]'`).
"""
