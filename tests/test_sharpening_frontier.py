"""The sharpening-frontier script: its "as it is" row is the evaluation's own figure, and each
post-processing moves the output the way it should (sharpening: more detail; back-projection: more PSNR)."""
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from sharpening_frontier import frontier, main  # noqa: E402

from srgan_core.evaluate import evaluate  # noqa: E402
from srgan_core.upscale import Upscaler  # noqa: E402


def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea", "coffee"):  # two textured 160 x 128 crops of the bundled examples
        Image.open(ROOT / "examples" / f"{name}.png").convert("RGB").crop((40, 40, 200, 168)).save(folder / f"{name}.png")
    return folder


def test_rows_start_from_the_evaluated_model_and_move_the_right_way(tmp_path):
    folder = photos(tmp_path)
    rows = {row["variant"]: row for row in frontier(folder)}
    plain = evaluate(folder, Upscaler("srgan_x4").upscale)
    assert abs(rows["as it is"]["psnr"] - plain.psnr) < 1e-9 and abs(rows["as it is"]["detail"] - plain.detail) < 1e-9
    assert rows["as it is"]["grid"] == plain.grid
    for sharper in ("unsharp mask, 1 px, amount 0.2", "output-space strength 1.2"):
        assert rows[sharper]["detail"] > rows["as it is"]["detail"] + 0.01
        assert rows[sharper]["psnr"] < rows["as it is"]["psnr"]
    assert rows["unsharp mask, 1 px, amount 0.2"]["detail"] > rows["unsharp mask, 1 px, amount 0.1"]["detail"]
    assert rows["back-projection, 5 steps"]["psnr"] > rows["as it is"]["psnr"]


def test_the_command_prints_a_table(tmp_path):
    folder = photos(tmp_path)
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "sharpening_frontier.py"), str(folder)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("| photos: srgan_x4 | PSNR | detail | grid |") and len(lines) == 2 + 6
    assert lines[2].startswith("| as it is | ")


def test_bad_input_gets_a_message_not_a_traceback(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for argv, message in (([str(tmp_path / "missing")], "data folder not found"),
                          ([str(tmp_path / "empty")], "no images in"),
                          ([str(photos(tmp_path)), "--gan-model", "nosuch"], "nosuch: no such weights")):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err
