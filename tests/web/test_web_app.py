"""The web demo as a person and a program meet it: `mqt demo --web` started as a process on
127.0.0.1, driven with `gradio_client` (answers must equal `mqt generate` and `generate_batch` on
the same image and question), and opened in headless Chromium (the DOM must hold the budget slider
and the answers; the screenshot must be a real picture).

Needs the `web` extra (gradio); `make test-web` builds a venv with it and installs Chromium.
Set MQT_WEB_SCREENSHOT=path to keep the screenshot (docs/figures/web_demo.png comes from here).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REASON = "the web demo needs the web extra (pip install 'mqt-vlm[web]'); `make test-web` builds a venv with it"
pytest.importorskip("gradio", reason=REASON)
gradio_client = pytest.importorskip("gradio_client", reason=REASON)

from mqt_vlm.data.synthetic import DESCRIBE_PROMPT  # noqa: E402
from mqt_vlm.inference import GenerationRequest, SamplingParams, generate_batch  # noqa: E402
from mqt_vlm.processing.images import load_image  # noqa: E402
from mqt_vlm.web.app import DEFAULT_MAX_NEW_TOKENS  # noqa: E402
from mqt_vlm.web.engine import DemoEngine, comparison_budgets  # noqa: E402

OPENING_SEED = 1234  # the scene the page opens on (`mqt demo`'s default seed)
SCENE_SEED = 21  # a scene asked for through the API
START_TIMEOUT_S = 240
WINDOW = (1280, 2000)


@dataclass
class WebServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "GRADIO_ANALYTICS_ENABLED": "False"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """`mqt demo --web` on a free loopback port, until the module's tests are done."""
    port = free_port()
    log = tmp_path_factory.mktemp("web") / "server.log"
    command = [sys.executable, "-m", "mqt_vlm.cli", "demo", "--web", "--port", str(port), "--seed", str(OPENING_SEED)]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment())
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"mqt demo --web exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mqt demo --web did not answer on {url} within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(1.0)
        yield WebServer(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def client(server: WebServer) -> object:
    return gradio_client.Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def engine() -> DemoEngine:
    """The same model in this process: the reference the page's answers are compared with."""
    return DemoEngine.load("builtin:shapes")


def reference(engine: DemoEngine, image: Image.Image, question: str, m: int, max_new_tokens: int) -> str:
    """generate_batch called directly, with the prompt the processor formats."""
    processor = engine.processor
    request = GenerationRequest(processor.format_prompt(question), [image], m, SamplingParams(max_new_tokens=max_new_tokens))
    return generate_batch(engine.model, processor, [request])[0].text


def mqt_generate(image: Path, question: str, m: int, max_new_tokens: int) -> str:
    """The answer `mqt generate` prints (stdout; its timing line goes to stderr)."""
    command = [sys.executable, "-m", "mqt_vlm.cli", "generate", "-p", question, "-i", str(image), "--tokens", str(m),
               "--max-new-tokens", str(max_new_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.rstrip("\n")


def test_scene_answers_at_two_budgets_equal_mqt_generate_and_generate_batch(client, engine):
    m_max, n = engine.num_queries, DEFAULT_MAX_NEW_TOKENS
    image_path, question, _, truth = client.predict(SCENE_SEED, api_name="/scene")
    expected_scene = engine.scene(SCENE_SEED)
    assert question == DESCRIBE_PROMPT == expected_scene.questions[-1][0]
    assert truth == f"True answer: {expected_scene.questions[-1][1]}"
    image = load_image(image_path)
    assert image.tobytes() == expected_scene.image.tobytes()  # the page hands out the scene's exact pixels
    answers = {}
    for m in (2, m_max):
        text, stats = client.predict(gradio_client.handle_file(image_path), DESCRIBE_PROMPT, m, n, api_name="/answer")
        assert text == reference(engine, image, DESCRIBE_PROMPT, m, n)
        assert text == mqt_generate(Path(image_path), DESCRIBE_PROMPT, m, n)
        assert stats.startswith(f"m = {m} of M = {m_max} visual tokens") and "TFLOPs" in stats
        answers[m] = text
    table, note = client.predict(gradio_client.handle_file(image_path), DESCRIBE_PROMPT, n, api_name="/answer_all")
    rows = {row[0]: row for row in table["data"]}
    assert list(rows) == comparison_budgets(m_max)
    assert rows[2][1] == answers[2] and rows[m_max][1] == answers[m_max]
    assert all(row[3] > 0 and row[4] > 0 for row in rows.values())  # time (ms) and TFLOPs
    assert rows[1][4] < rows[m_max][4]  # prefill grows with the budget
    assert "encode-once cache" in note


def test_uploaded_image_is_read_as_mqt_generate_reads_it(client, engine, tmp_path):
    """A non-square RGBA upload: the page must see what `mqt generate --image` sees (alpha over white)."""
    picture = Image.new("RGBA", (90, 50), (0, 0, 0, 0))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((5, 5, 40, 40), fill=(220, 30, 30, 255))
    draw.rectangle((50, 10, 80, 40), fill=(30, 70, 220, 160))
    path = tmp_path / "upload.png"
    picture.save(path)
    question, m, n = "Is there a red shape?", 4, 8
    text, _ = client.predict(gradio_client.handle_file(str(path)), question, m, n, api_name="/answer")
    assert text == reference(engine, load_image(path), question, m, n) == mqt_generate(path, question, m, n)
    cam, label = client.predict(gradio_client.handle_file(str(path)), question, m, api_name="/gradcam")
    assert label.startswith(f"m = {m}: logit of ")
    with Image.open(cam) as shown:
        assert shown.size == (224, 224)


def test_gradcam_panel_per_budget(client, engine):
    image_path = client.predict(SCENE_SEED, api_name="/scene")[0]
    panels = client.predict(gradio_client.handle_file(image_path), "Is there a red shape?", api_name="/gradcam_all")
    assert [p["caption"].split(":")[0] for p in panels] == [f"m = {m}" for m in comparison_budgets(engine.num_queries)]
    for panel in panels:
        with Image.open(panel["image"]) as shown:
            assert shown.size == (224, 224) and len(np.unique(np.asarray(shown).reshape(-1, 3), axis=0)) > 20


def test_errors_come_back_as_messages(client):
    image_path = client.predict(SCENE_SEED, api_name="/scene")[0]
    with pytest.raises(gradio_client.exceptions.AppError, match="Type a question first"):
        client.predict(gradio_client.handle_file(image_path), "   ", 2, 8, api_name="/answer")
    with pytest.raises(gradio_client.exceptions.AppError, match="whole number"):
        client.predict(gradio_client.handle_file(image_path), "Is there a red shape?", 2.5, 8, api_name="/answer")


def test_core_never_imports_gradio():
    """gradio is installed here, so this can fail: only `mqt_vlm.web.app` functions import it."""
    code = ("import sys, mqt_vlm, mqt_vlm.cli.main, mqt_vlm.demo, mqt_vlm.web.engine, mqt_vlm.web.handlers, "
            "mqt_vlm.web.app; print('gradio' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment(), check=True)
    assert done.stdout.strip() == "False"


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Chromium is not installed (`make test-web` installs Debian's chromium with apt)")
    profile = tempfile.mkdtemp(prefix="mqt-chromium-")
    try:
        return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                               "--hide-scrollbars", "--virtual-time-budget=20000", *args],
                              capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def page_texts(dom: str, after: str) -> list[str]:
    """The non-blank text nodes of the DOM after the element whose id is `after`."""
    start = dom.index(f'id="{after}"')
    return [html.unescape(t.strip()) for t in re.findall(r">([^<>]+)<", dom[start:]) if t.strip()]


def test_page_in_headless_chromium(server, engine, tmp_path):
    """The opening page, as a browser renders it: the budget slider 1..M and the answers at every
    budget (computed here with generate_batch on the same scene and question) are on it."""
    m_max = engine.num_queries
    scene = engine.scene(OPENING_SEED)
    question = scene.questions[-1][0]  # the page opens on the scene's description
    dom = chromium("--dump-dom", server.url).stdout
    slider = re.search(r'<input type="range"[^>]*aria-label="range slider for Visual-token budget m[^"]*"[^>]*>', dom)
    assert slider is not None, "no budget slider in the page"
    assert f'min="1"' in slider.group(0) and f'max="{m_max}"' in slider.group(0)
    texts = page_texts(dom, "all-budgets")
    pairs = set(zip(texts, texts[1:]))
    for m in comparison_budgets(m_max):
        expected = reference(engine, scene.image, question, m, DEFAULT_MAX_NEW_TOKENS)
        assert (str(m), expected) in pairs, f"the answer at m = {m} ({expected!r}) is not in the page's table"
    assert question in dom

    shot = tmp_path / "web_demo.png"
    done = chromium(f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", server.url)
    assert shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as png:
        pixels = np.asarray(png.convert("RGB"))
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # text, the scene, heat maps: not a blank page
    assert (pixels.std(axis=(0, 1)) > 10).all()
    keep = os.environ.get("MQT_WEB_SCREENSHOT")
    if keep:
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, keep)
