"""The page of `mqt demo --web` (gradio), and the server that shows it.

Left: the image (upload one, or render a fresh synthetic scene from a seed), the question and the
budget slider 1..M. Right: the answer at that budget with its time and TFLOPs, and the Grad-CAM of
its first token. Below: "All budgets" answers at 1, 2, 4, 8, 16 and M side by side, with a
Grad-CAM panel per budget. The page opens already filled in (scene, answers and maps computed at
startup, as the components' initial values), so the first view is complete before any click.

gradio is imported inside the functions here, from the `web` extra; nothing else imports this module.
API names (for `gradio_client`): /scene, /answer, /gradcam, /answer_all, /gradcam_all.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

from mqt_vlm.errors import MQTError
from mqt_vlm.web.engine import MAX_NEW_TOKENS_LIMIT, DemoEngine, comparison_budgets
from mqt_vlm.web.handlers import TABLE_HEADERS, PageHandlers

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_NEW_TOKENS = 96  # enough for a description of every cell of a 4x4 scene
# small images (64-pixel scenes) shown at a fixed size, enlarged without smoothing
CSS = (".pixelated .image-frame img { image-rendering: pixelated; width: 192px !important; "
       "height: 192px !important; object-fit: contain; outline: 1px solid #d4d4d8; }")


def require_gradio() -> Any:
    """Import gradio (no telemetry, no update check), or say how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError as exc:
        raise MQTError("The web demo needs gradio: pip install 'mqt-vlm[web]'.") from exc
    return gradio


def _shown(gr: Any, handler: Callable[..., Any]) -> Callable[..., Any]:
    """Show an `MQTError` on the page as a message instead of a generic 'Error'."""

    @wraps(handler)
    def run(*args: Any) -> Any:
        try:
            return handler(*args)
        except MQTError as exc:
            raise gr.Error(str(exc)) from exc

    return run


def _intro(engine: DemoEngine) -> str:
    about = engine.about()
    return (f"## mqt-vlm: one model, any number of visual tokens\n"
            f"Model **{engine.name}** (M = {engine.num_queries} queries). Its Matryoshka Query Transformer "
            "reads the image with M queries; any first m of them are a valid image representation, so "
            "the same model answers at every budget m = 1..M. The image is encoded once; each budget "
            "reads the first m visual tokens." + (f"\n\n*About this model:* {about}" if about else ""))


@dataclass(frozen=True)
class Opening:
    """What the page shows when it opens, computed before serving so the first view is complete."""

    image: str  # a PNG file: the scene, or the user's image
    question: str
    questions: list[str]
    truths: dict[str, str]
    answer: tuple[str, str]  # (answer, stats) at the default budget
    cam: tuple[Any, str]  # (Grad-CAM image, label) at the default budget
    table: tuple[list[list[Any]], str]  # (all-budgets rows, note)
    gallery: list[tuple[Any, str]]


def opening(handlers: PageHandlers, seed: int, image: Path | None, folder: Path) -> Opening:
    """Answers, Grad-CAM and the all-budgets table for scene `seed` (or `image`) at the default budget."""
    if image is None:
        view = handlers.scene(seed)
        path = folder / f"scene-{seed}.png"
        view.image.save(path)
        question, questions, truths = view.question, view.questions, view.truths
    else:
        path, question, questions, truths = Path(image), "What is in the image?", [], {}
    budget = handlers.engine.default_budget
    return Opening(str(path), question, questions, truths,
                   handlers.answer(str(path), question, budget, DEFAULT_MAX_NEW_TOKENS, truths),
                   handlers.gradcam(str(path), question, budget),
                   handlers.answer_all(str(path), question, DEFAULT_MAX_NEW_TOKENS, truths),
                   handlers.gradcam_all(str(path), question))


def build_app(engine: DemoEngine, seed: int = 0, image: Path | None = None) -> Any:
    """The page as a `gr.Blocks`, opening on scene `seed` (or on `image`) already answered."""
    gr = require_gradio()
    handlers = PageHandlers(engine)
    m_max = engine.num_queries
    budgets = comparison_budgets(m_max)
    start = opening(handlers, seed, image, Path(tempfile.mkdtemp(prefix="mqt-web-")))
    # uploads and drawn images land in gradio's cache; files older than an hour go, every hour
    with gr.Blocks(title="mqt-vlm web demo", delete_cache=(3600, 3600)) as page:
        gr.Markdown(_intro(engine))
        state = gr.State(start.truths)
        with gr.Row():
            with gr.Column(scale=1):
                picture = gr.Image(start.image, type="filepath", format="png", image_mode=None, height=300,
                                   label="Image (upload one, or make a synthetic scene)", elem_classes="pixelated")
                with gr.Row():
                    seed_box = gr.Number(seed, precision=0, minimum=0, label="Scene seed", scale=1)
                    new_scene = gr.Button("New synthetic scene", scale=2)
                picker = gr.Dropdown(start.questions, value=start.question if start.questions else None,
                                     label="Questions about this scene")
                truth = gr.Markdown(handlers.truth_line(start.question, start.truths) if start.truths else "")
                question_box = gr.Textbox(start.question, label="Question", lines=2)
                budget = gr.Slider(1, m_max, value=engine.default_budget, step=1,
                                   label=f"Visual-token budget m (1..{m_max})", elem_id="budget-slider")
                max_new = gr.Slider(1, MAX_NEW_TOKENS_LIMIT, value=DEFAULT_MAX_NEW_TOKENS, step=1, label="Max new tokens")
                with gr.Row():
                    ask = gr.Button("Answer at m", variant="primary")
                    ask_all = gr.Button(f"All budgets ({', '.join(map(str, budgets))})")
            with gr.Column(scale=1):
                answer = gr.Textbox(start.answer[0], label="Answer at m", lines=3, elem_id="answer")
                stats = gr.Markdown(start.answer[1])
                cam = gr.Image(start.cam[0], format="png", label="Grad-CAM of the answer's first token at m",
                               height=300, interactive=False, elem_classes="pixelated")
                cam_label = gr.Markdown(start.cam[1])
        table = gr.Dataframe(start.table[0], headers=TABLE_HEADERS, label="All budgets, side by side",
                             interactive=False, elem_id="all-budgets", wrap=True,
                             column_widths=["7%", "63%", "8%", "11%", "11%"])
        note = gr.Markdown(start.table[1])
        gallery = gr.Gallery(start.gallery, label="Grad-CAM per budget (red: the patches the first answer token "
                                                  "depends on most, at the vision layer the MQT reads)",
                             columns=len(budgets), format="png", height=260, object_fit="contain")

        def show_scene(value: Any) -> tuple[Any, ...]:
            view = handlers.scene(value)
            return (view.image, view.question, gr.Dropdown(choices=view.questions, value=view.question),
                    handlers.truth_line(view.question, view.truths), view.truths)

        scene_outputs = [picture, question_box, picker, truth, state]
        new_scene.click(lambda value: int(value or 0) + 1, seed_box, seed_box, api_visibility="private") \
            .success(_shown(gr, show_scene), seed_box, scene_outputs, api_name="scene")
        seed_box.submit(_shown(gr, show_scene), seed_box, scene_outputs, api_visibility="private")
        # a picture of the user's: no true answers any more
        picture.upload(lambda: (gr.Dropdown(choices=[], value=None), "", {}), None, [picker, truth, state],
                       api_visibility="private")
        picker.input(lambda q, t: (q, handlers.truth_line(q, t)), [picker, state], [question_box, truth],
                     api_visibility="private")
        ask.click(_shown(gr, handlers.answer), [picture, question_box, budget, max_new, state], [answer, stats],
                  api_name="answer") \
            .success(_shown(gr, handlers.gradcam), [picture, question_box, budget], [cam, cam_label], api_name="gradcam")
        ask_all.click(_shown(gr, handlers.answer_all), [picture, question_box, max_new, state], [table, note],
                      api_name="answer_all") \
            .success(_shown(gr, handlers.gradcam_all), [picture, question_box], gallery, api_name="gradcam_all")
    return page


def serve(model: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, seed: int = 0,
          image: Path | None = None) -> None:
    """Load the model and serve the page until interrupted (bound to `host`, loopback by default)."""
    gr = require_gradio()
    engine = DemoEngine.load(model)
    page = build_app(engine, seed, image)
    print(f"mqt web demo: model {engine.name} (M = {engine.num_queries}) on http://{host}:{port}", flush=True)
    page.queue(default_concurrency_limit=1).launch(server_name=host, server_port=port, share=False,
                                                   footer_links=["api"], show_error=True, quiet=True,
                                                   theme=gr.themes.Default(), css=CSS)
