"""`python -m mqt_vlm.cli` is the same as `mqt`."""

from mqt_vlm.cli.main import main

main()
