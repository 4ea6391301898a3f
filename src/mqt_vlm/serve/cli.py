"""`mqt serve`: the OpenAI-compatible server on one model.

FastAPI and uvicorn are imported inside the command (they are the optional `serve` extra), so
`mqt --help` stays fast and works without them.
"""

from __future__ import annotations

from pathlib import Path

import typer


def _default_name(model: str) -> str:
    if model.startswith("builtin:"):
        return model.split(":", 1)[1]
    return Path(model).resolve().name or "mqt"


def serve(
    model: str = typer.Option("builtin:shapes", help="Model folder or builtin:NAME."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000, help="TCP port."),
    served_model_name: str | None = typer.Option(None, help="Model id clients send (default: the folder name)."),
    allow_remote_images: bool = typer.Option(False, help="Also accept http(s) image URLs and local file paths "
                                                         "(trusted clients only). Off: base64 data URLs only."),
    visual_tokens: str = typer.Option("", help="Budget when a request names none: an int in 1..M, M or 'auto' "
                                               "(default: the model's default budget)."),
    auto_budgets: str = typer.Option("16,64,256", help="Budgets 'auto' tries, in order (clipped to M)."),
    auto_threshold: float = typer.Option(0.5, help="'auto' accepts an answer whose confidence reaches this."),
    auto_metric: str = typer.Option("mean_prob", help="'auto' confidence: mean_prob or first_token_prob."),
    max_batch_size: int = typer.Option(16, help="Most requests generated together."),
    batch_wait_ms: float = typer.Option(5.0, help="How long the first queued request waits for others to join."),
    max_padding: float = typer.Option(0.3, help="Split a batch (rows sorted by length) where its prefill would be more "
                                                "than this fraction padding; 1.0 never splits. See BENCHMARKS.md."),
    max_queue: int = typer.Option(256, help="Queued requests beyond this get HTTP 503."),
    cache_mb: int = typer.Option(512, help="Encode-once visual-token cache size in MiB (0 disables it)."),
    max_body_mb: float = typer.Option(16.0, help="Largest request body in MiB (HTTP 413 beyond)."),
    max_image_pixels: int = typer.Option(16_000_000, help="Largest image, in pixels (HTTP 400 beyond)."),
    max_image_side: int = typer.Option(8192, help="Longest image side in pixels (HTTP 400 beyond): images are "
                                                  "padded to a square of this side before resizing."),
    max_image_aspect_ratio: float = typer.Option(20.0, help="Largest long side / short side of an image "
                                                            "(HTTP 400 beyond)."),
    max_images: int = typer.Option(4, help="Most images per request."),
    max_tokens_limit: int = typer.Option(1024, help="Largest max_tokens a request may ask for."),
    default_max_tokens: int = typer.Option(256, help="max_tokens when a request gives none."),
    max_prompt_tokens: int = typer.Option(4096, help="Largest prompt, text plus visual tokens."),
    max_prompt_bytes: int | None = typer.Option(None, help="Most UTF-8 bytes of message text, checked before "
                                                           "tokenizing (default: 16 x --max-prompt-tokens)."),
    request_timeout: float = typer.Option(120.0, help="Seconds a request may take, queueing included (HTTP 503 beyond)."),
    remote_timeout: float = typer.Option(10.0, help="Seconds a whole image fetch may take "
                                                    "(with --allow-remote-images)."),
    header_timeout: float = typer.Option(10.0, help="Seconds a connection has to send its request line and headers "
                                                    "(then HTTP 408 and the connection is closed)."),
    body_timeout: float = typer.Option(30.0, help="Seconds a request has to send its whole body (HTTP 408 beyond)."),
    api_docs: bool = typer.Option(False, help="Serve /docs, /redoc and /openapi.json (off: they are 404)."),
    template: str | None = typer.Option(None, help="Prompt template: vicuna_v1, plain or chat (default: the model's)."),
    dtype: str | None = typer.Option(None, help="float32, bfloat16 or float16 (or fp32, bf16, fp16; default: as saved)."),
    device: str = typer.Option("auto", help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API with a visual-token budget per request."""
    import uvicorn

    from mqt_vlm.inference.auto_budget import AutoBudgetConfig
    from mqt_vlm.budgets import parse_budget
    from mqt_vlm.loading import load_model
    from mqt_vlm.serve.app import create_app
    from mqt_vlm.serve.config import MiB, ServeConfig
    from mqt_vlm.serve.limits import uvicorn_options

    auto = AutoBudgetConfig.parse(auto_budgets, auto_threshold, auto_metric)
    default_budget = None  # the model's default
    if visual_tokens.strip():  # a typo fails before the model loads
        default_budget = parse_budget(visual_tokens, None, allow_auto=True, option="--visual-tokens")
    loaded, processor = load_model(model, dtype=dtype, device=device)
    max_body = int(max_body_mb * MiB)
    config = ServeConfig(
        model_name=served_model_name or _default_name(model),
        max_body_bytes=max_body,
        max_image_bytes=max_body,
        max_image_pixels=max_image_pixels,
        max_image_side=max_image_side,
        max_image_aspect_ratio=max_image_aspect_ratio,
        max_images_per_request=max_images,
        max_tokens_limit=max_tokens_limit,
        default_max_tokens=min(default_max_tokens, max_tokens_limit),
        max_prompt_tokens=max_prompt_tokens,
        max_prompt_bytes=max_prompt_bytes,
        request_timeout_s=request_timeout,
        remote_timeout_s=remote_timeout,
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        api_docs=api_docs,
        max_queue=max_queue,
        max_batch_size=max_batch_size,
        batch_wait_ms=batch_wait_ms,
        max_padding=max_padding,
        cache_bytes=cache_mb * MiB,
        allow_remote_images=allow_remote_images,
        default_visual_tokens=default_budget,
        template=template,
        auto=auto,
    )
    app = create_app(loaded, processor, config)
    typer.echo(f"serving {config.model_name!r} (M = {processor.num_queries}) on http://{host}:{port}/v1", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options(config))
