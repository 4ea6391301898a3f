"""Running `mqt ARGS` in process for tests of refusals: exit code, output, and the error contract."""

from __future__ import annotations

import pytest

from mqt_vlm.cli.main import main


def run_mqt(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and everything printed, running `mqt ARGS` in process."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out + captured.err


def assert_refused(args: list[str], capsys: pytest.CaptureFixture[str], *fragments: str) -> str:
    """`mqt ARGS` ends with `error: ...` and exit 2, no traceback, and says each of `fragments`."""
    code, output = run_mqt(args, capsys)
    assert code == 2, output[-3000:]
    assert "error: " in output and "Traceback" not in output
    for fragment in fragments:
        assert fragment in output, (fragment, output[-3000:])
    return output
