"""The CLI as a user runs it: a real subprocess, real files, exit codes and one-line errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srgan_core.models import Generator, GeneratorConfig
from srgan_core.weights import save_generator

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "srgan_core", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny_x4"
    save_generator(Generator(GeneratorConfig(channels=8, blocks=1)), path,
                   description="tiny test model", metrics={"Set5": {"psnr": 20.0, "ssim": 0.5}},
                   training={"data": ["T91"], "iterations": 1, "command": "python -m srgan_core train ..."})
    return path


def test_help_lists_every_command():
    out = cli("--help")
    assert out.returncode == 0
    for command in ("upscale", "evaluate", "train", "publish", "blend", "toygan", "anomaly"):
        assert command in out.stdout
    for command in ("upscale", "evaluate", "train", "publish", "blend"):
        sub = cli(command, "--help")
        assert sub.returncode == 0 and "usage:" in sub.stdout and len(sub.stdout) > 300


def test_blend_writes_the_network_interpolation_with_its_provenance(tmp_path, tiny_weights):
    import torch

    from srgan_core.weights import load_generator

    torch.manual_seed(1)
    other = tmp_path / "other_x4"
    save_generator(Generator(GeneratorConfig(channels=8, blocks=1)), other, description="the other one",
                   training={"data": ["BSDS200"], "iterations": 2, "command": "python -m srgan_core train --seed 1"})
    out = cli("blend", str(tiny_weights), str(other), "--strength", "0.25", "--out", str(tmp_path / "mix"))
    assert out.returncode == 0, out.stderr
    a, b, mix = (load_generator(str(p)) for p in (tiny_weights, other, tmp_path / "mix"))
    assert mix.fallback_reason is None  # its sha256 matches its sidecar
    for k, v in mix.model.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(v, 0.75 * a.model.state_dict()[k] + 0.25 * b.model.state_dict()[k], atol=1e-6)
    training = mix.meta["training"]
    assert training["blend"]["strength"] == 0.25 and training["blend"]["b"] == str(other)
    assert training["command"] == "python -m srgan_core train --seed 1"  # B's own recipe, kept
    assert "blend" in training["blend"]["command"] and mix.meta["description"] == "the other one"

    wider = tmp_path / "wider_x4"
    save_generator(Generator(GeneratorConfig(channels=16, blocks=1)), wider)
    bad = cli("blend", str(tiny_weights), str(wider), "--strength", "0.5", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "different architectures" in bad.stderr and bad.stderr.count("\n") == 1
    assert not (tmp_path / "bad.safetensors").exists()
    nan = cli("blend", str(tiny_weights), str(other), "--strength", "nan", "--out", str(tmp_path / "bad"))
    assert nan.returncode == 2 and "strength must be a number from 0" in nan.stderr


def test_evaluate_bicubic_json_on_set5(data_dir):
    out = cli("evaluate", "--data", str(data_dir / "Set5"), "--bicubic", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert abs(result["psnr"] - 28.42) <= 0.10 and 0.80 < result["ssim"] < 0.82
    assert [i["name"] for i in result["images"]] == ["baby", "bird", "butterfly", "head", "woman"]


def test_evaluate_table_with_a_model(data_dir, tiny_weights):
    out = cli("evaluate", "--data", str(data_dir / "Set5"), "--weights", str(tiny_weights))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "Y channel" in lines[0] and lines[-1].startswith("mean")
    assert len(lines) == 2 + 5 + 1


def test_evaluate_bad_arguments_are_one_line(tmp_path, tiny_weights):
    for args in (["--data", str(tmp_path / "nope"), "--bicubic"],
                 ["--data", str(tmp_path), "--bicubic", "--scale", "3"],
                 ["--data", str(tmp_path), "--weights", str(tiny_weights), "--scale", "2"]):
        out = cli("evaluate", *args)
        assert out.returncode != 0
        assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr, out.stderr


def test_publish_dry_run_builds_a_hub_folder(tmp_path, tiny_weights):
    out = cli("publish", str(tiny_weights), "--repo", "someone/srgan-test", "--out", str(tmp_path / "pub"), "--dry-run")
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "pub"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "tiny_x4.json", "tiny_x4.safetensors"]
    card = (folder / "README.md").read_text()
    assert "| Set5 | 20.00 / 0.5000 | 28.43 / 0.8111 | 32.05 / 0.9019 |" in card
    assert 'Upscaler("hf://someone/srgan-test/tiny_x4")' in card
    sidecar = json.loads((folder / "tiny_x4.json").read_text())
    assert sidecar["config"]["channels"] == 8 and len(sidecar["sha256"]) == 64
    from srgan_core.weights import load_generator

    assert load_generator(folder / "tiny_x4").model.config.channels == 8  # the folder loads as is


def test_publish_refuses_bad_repo_and_pickles(tmp_path, tiny_weights):
    out = cli("publish", str(tiny_weights), "--repo", "no-owner", "--dry-run")
    assert out.returncode == 2 and "owner/name" in out.stderr
    pickle = tmp_path / "model.pth"
    pickle.write_bytes(b"\x80\x04K\x01.")
    out = cli("publish", str(pickle), "--repo", "a/b", "--dry-run")
    assert out.returncode == 2 and "safetensors" in out.stderr and "Traceback" not in out.stderr


def test_upscale_folder_keeps_going_and_never_overwrites(tmp_path, tiny_weights):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    picture.save(src / "a.png")
    picture.save(src / "a.jpg")
    picture.convert("L").save(src / "gray.bmp")
    (src / "notes.png").write_text("not an image")
    out = cli("upscale", str(src), str(tmp_path / "out"), "--weights", str(tiny_weights))
    assert out.returncode == 1  # one file failed
    assert "3 of 4 images upscaled" in out.stdout and "1 failed" in out.stdout
    assert "notes.png" in out.stderr and "Traceback" not in out.stderr
    made = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert made == ["a_jpg.png", "a_png.png", "gray.png"]
    assert Image.open(tmp_path / "out" / "gray.png").size == (40, 48)


def test_upscale_single_file_and_bad_tile(tmp_path, tiny_weights):
    Image.new("RGB", (9, 7), (200, 10, 10)).save(tmp_path / "x.png")
    out = cli("upscale", str(tmp_path / "x.png"), str(tmp_path / "y.png"), "--weights", str(tiny_weights))
    assert out.returncode == 0, out.stderr
    assert Image.open(tmp_path / "y.png").size == (36, 28)
    bad = cli("upscale", str(tmp_path / "x.png"), str(tmp_path / "z.png"), "--tile", "0")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --tile")
    missing = cli("upscale", str(tmp_path / "nope.png"), str(tmp_path / "z.png"))
    assert missing.returncode == 2 and "nope.png" in missing.stderr


def test_train_has_a_flag_for_every_config_field():
    from dataclasses import fields

    from srgan_core.train import TrainConfig

    out = cli("train", "--help")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        assert (f"{flag}, --no-{flag[2:]}" if isinstance(f.default, bool) else f"{flag} ") in text, flag


def test_train_refuses_bad_settings_before_training(tmp_path):
    missing = cli("train", "--out", str(tmp_path / "run"))
    assert missing.returncode == 2 and missing.stderr == "error: --train-data is required (one or more image folders)\n"
    run = tmp_path / "typo"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"iterations": 10, "lr_mn": 1e-5}))
    typo = cli("train", "--resume", str(run))
    assert typo.returncode == 2 and typo.stderr.count("\n") == 1 and "'lr_mn'" in typo.stderr and "lr_min" in typo.stderr
    elsewhere = cli("train", "--resume", str(run), "--out", str(tmp_path / "other"))
    assert elsewhere.returncode == 2 and "--resume continues the run in its own folder" in elsewhere.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "other").exists()
