"""`mqt export`: a built-in model copied to a folder that loads by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqt_vlm.cli.main import main
from mqt_vlm.loading import builtin_dir, load_model


def test_export_builtin_loads_from_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "shapes"
    with pytest.raises(SystemExit) as done:
        main(["export", "builtin:shapes", str(out)])
    assert done.value.code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in builtin_dir("shapes").iterdir() if p.is_file())
    model, processor = load_model(out)
    assert model.num_queries == processor.num_queries == 32


def test_export_refuses_a_used_folder_and_a_bad_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x.txt").write_text("mine")
    for argv in (["export", "builtin:shapes", str(tmp_path / "taken")], ["export", "builtin:nope", str(tmp_path / "new")]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "No built-in model 'nope'" in err
    assert (tmp_path / "taken" / "x.txt").read_text() == "mine" and not (tmp_path / "new").exists()
