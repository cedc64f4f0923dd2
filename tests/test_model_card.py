"""model_card: the card's rows and words, read from the weights' own files."""
from __future__ import annotations

import json

import pytest
import torch

from srgan_core import model_card
from srgan_core.models import Generator, GeneratorConfig
from srgan_core.weights import WEIGHTS_DIR, save_generator

TRAINING = {"stage": "srgan", "data": ["T91", "BSDS200"], "iterations": 300, "batch_size": 16, "patch": 96,
            "content_loss": "mse", "wall_time_s": 4145.4, "final_d_loss": 0.69,
            "command": "python -m srgan_core train --stage srgan " + "--a-long-flag value " * 20}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    torch.manual_seed(0)
    save_generator(Generator(GeneratorConfig(channels=8, blocks=1)), tmp_path / "srgan_x4", description="tiny test model.",
                   training=TRAINING, metrics={"Set5": {"psnr": 30.271, "ssim": 0.85321, "gradient_ratio": 0.84},
                                               "Set14@phone_jpeg": {"psnr": 25.0, "ssim": 0.7, "detail": 0.9, "niqe": 5.123}})
    log = [{"iteration": i, "validation": {"Set5": {"psnr": 29 + i / 100}}} for i in (100, 200)]
    (tmp_path / "srgan_x4.metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    monkeypatch.setenv("SRGAN_WEIGHTS_DIR", str(tmp_path))
    return tmp_path


def test_rows_from_the_sidecar_with_references(folder):
    card = model_card.read_card(["srgan_x4"], {"srgan_x4": "SRGAN"}.get, toy=None)
    assert card.headers == model_card.HEADERS + [model_card.NIQE_HEADER]
    rows = {r[0]: r[1:] for r in card.rows}
    assert rows["SRGAN, Set5"] == [30.27, 0.8532, 0.84, None]
    assert rows["SRGAN, Set14, phone_jpeg"] == [25.0, 0.7, 0.9, 5.12]
    assert model_card.GRID_HEADER not in card.headers  # no sidecar has a grid score
    assert rows["SRResNet (paper), Set5"][0] == 32.05
    sets = [r[0].split(", ")[1] for r in card.rows]
    assert sets == sorted(sets)
    assert card.curves == {"SRGAN on Set5": ([100, 200], [30.0, 31.0])}


def test_grid_column_when_a_sidecar_has_it(tmp_path, monkeypatch):
    save_generator(Generator(GeneratorConfig(channels=8, blocks=1)), tmp_path / "srgan_x4",
                   metrics={"Set5": {"psnr": 20.0, "ssim": 0.5, "detail": 0.9, "grid": 1.2345}})
    monkeypatch.setenv("SRGAN_WEIGHTS_DIR", str(tmp_path))
    card = model_card.read_card(["srgan_x4"], toy=None)
    assert card.headers == model_card.HEADERS + [model_card.GRID_HEADER]
    assert [r for r in card.rows if r[0] == "srgan_x4, Set5"][0][1:] == [20.0, 0.5, 0.9, 1.234]


def test_staged_and_blended_training_records_read_as_words():
    text = model_card.facts({"iterations": 1200, "blend": {"a": "runs/a/generator", "b": "runs/b/generator", "strength": 0.5},
                             "stage1": {"iterations": 1600, "command": "python -m srgan_core train ..."},
                             "total_iterations": 7600, "total_wall_time_s": 17160.0})
    assert "made as: 0.5 × runs/a/generator + 0.5 × runs/b/generator (network interpolation)" in text
    assert "training steps, all stages: 7,600" in text and "training time, all stages: 4 h 46 min" in text
    assert "stage1" not in text and "{" not in text  # an earlier stage's record is not dumped as a dict
    realistic = model_card.facts({"degradation": {"blur_prob": 0.15, "blur_sigma": [0.2, 1.0], "noise_prob": 0.85,
                                                  "noise_sigma": [1.0, 5.0], "jpeg_prob": 0.95, "jpeg_quality": [40, 90]}})
    assert realistic == ("- low-resolution inputs: realistic: blur in 15% up to σ 1, noise in 85% up to 5/255, "
                         "JPEG in 95% at quality 40–90")
    assert model_card.facts({"degradation": "bicubic"}) == "- low-resolution inputs: clean bicubic ÷4"
    malformed = model_card.facts({"blend": "half", "degradation": {"blur_sigma": 3}, "total_iterations": "many",
                                  "iterations": 10})
    assert malformed == "- training steps: 10"  # entries a sidecar from elsewhere got wrong are left out


def test_a_distilled_models_card_gives_its_teachers_command_before_its_own():
    text = model_card.facts({"stage": "degrid", "command": "python -m srgan_core train --stage degrid",
                             "teacher": {"stage": "srgan", "command": "python -m srgan_core train --stage srgan"}})
    assert "Its teacher (srgan stage) was made with:" in text
    assert text.index("--stage srgan") < text.index("--stage degrid")
    assert "teacher" not in model_card.facts({"command": "x", "teacher": {"stage": "srgan"}})  # no command, no block
    second_pass = model_card.facts({"stage": "degrid", "command": "pass 2", "teacher": {
        "stage": "degrid", "command": "pass 1", "teacher": {"stage": "srgan", "command": "the GAN"}}})
    assert "Teacher 1 of 2 (srgan stage)" in second_pass and "Teacher 2 of 2 (degrid stage)" in second_pass
    assert second_pass.index("the GAN") < second_pass.index("pass 1") < second_pass.index("pass 2")


def test_no_niqe_column_without_niqe(folder, monkeypatch, tmp_path_factory):
    other = tmp_path_factory.mktemp("w")
    save_generator(Generator(GeneratorConfig(channels=8, blocks=1)), other / "srgan_x4", metrics={"Set5": {"psnr": 20.0, "ssim": 0.5}})
    monkeypatch.setenv("SRGAN_WEIGHTS_DIR", str(other))
    card = model_card.read_card(["srgan_x4"], toy=None)
    assert card.headers == model_card.HEADERS and all(len(r) == len(card.headers) for r in card.rows)


def test_plain_words_not_training_jargon(folder):
    text = model_card.read_card(["srgan_x4"], toy=None).markdown
    for words in ("training steps: 300", "training crops: 96×96 px", "training time: 1 h 9 min", "images per step: 16",
                  "adversarial", "mean squared pixel error", "```\npython -m srgan_core train"):
        assert words in text, words
    for jargon in ("stage:", "patch:", "wall time s", "iterations", "final d loss"):
        assert jargon not in text, jargon


def test_bundled_toy_generator_is_described(folder):
    for f in WEIGHTS_DIR.glob("toygan_default.*"):
        (folder / f.name).write_bytes(f.read_bytes())
    text = model_card.read_card(["srgan_x4"]).markdown
    assert "### Toy generator (`weights/toygan_default`)" in text and "training steps: 30,000" in text


def test_empty_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SRGAN_WEIGHTS_DIR", str(tmp_path))
    card = model_card.read_card([], toy=None)
    assert "No bundled super-resolution weights" in card.markdown
    assert {r[0].split(", ")[0] for r in card.rows} == {"Bicubic", "SRResNet (paper)"}


def test_the_gan_models_perception_distortion_points_reach_the_card_and_its_figure(folder):
    from srgan_core import figures

    assert model_card.read_card(["srgan_x4"], toy=None).tradeoff is None
    assert figures.perception_distortion(None) is None
    path = folder / "srgan_x4.json"
    meta = json.loads(path.read_text())
    meta["perception_distortion"] = {"data": "Set14", "degradation": "bicubic", "points": [
        {"method": "HR", "psnr": None, "niqe": 4.7}, {"method": "bicubic", "psnr": 26.1, "niqe": 11.6},
        {"method": "strength 0", "psnr": 27.7, "niqe": 10.2}, {"method": "strength 1", "psnr": 27.0, "niqe": 7.8}]}
    path.write_text(json.dumps(meta))
    card = model_card.read_card(["srgan_x4"], toy=None)
    fig = figures.perception_distortion(card.tradeoff)
    blends, bicubic = fig["data"]
    assert blends["x"] == [10.2, 7.8] and blends["y"] == [27.7, 27.0] and blends["text"] == ["0", "1"]
    assert bicubic["x"] == [11.6] and bicubic["y"] == [26.1]
    assert fig["layout"]["shapes"][0]["x0"] == 4.7  # the photos' NIQE, drawn as a line
    assert "Set14" in fig["layout"]["title"]["text"]
    json.dumps(fig, allow_nan=False)
