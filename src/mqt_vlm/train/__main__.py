"""`python -m mqt_vlm.train CONFIG OUTPUT_DIR [options]`: the `mqt train` command as a module, so
`accelerate launch -m mqt_vlm.train ...` works without the `mqt` console script."""

from __future__ import annotations

import sys


def main() -> None:
    import typer

    from mqt_vlm.errors import MQTError
    from mqt_vlm.train.cli import train

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train)
    try:
        app()
    except MQTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
