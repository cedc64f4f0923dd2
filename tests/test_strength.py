"""GAN strength: network interpolation theta = (1 - s) * theta_PSNR + s * theta_GAN, through the
library, the Upscaler and the CLI. 0 and 1 must give the end models' output bit for bit."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_core import interpolate as I
from srgan_core import weights as W
from srgan_core.models import Generator, GeneratorConfig
from srgan_core.upscale import Upscaler

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parent.parent
TINY = GeneratorConfig(channels=8, blocks=2)
BUNDLED_PAIR = all((W.WEIGHTS_DIR / f"{n}.safetensors").is_file() for n in I.INTERPOLATION_PAIR)
needs_bundled_pair = pytest.mark.skipif(not BUNDLED_PAIR, reason="bundled srresnet_x4 / srgan_x4 not present")


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    """Each test starts with an empty blend cache, and the repository's bundled weights."""
    monkeypatch.delenv("SRGAN_WEIGHTS_DIR", raising=False)
    I._cache.clear()
    yield
    I._cache.clear()


def noise_image(seed: int = 0, size: tuple[int, int] = (20, 14)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def tiny_pair(tmp_path: Path, config_b: GeneratorConfig = TINY) -> tuple[Path, Path]:
    """Two small generators whose every tensor differs, BatchNorm's running statistics included."""
    paths = []
    for seed, config in ((1, TINY), (2, config_b)):
        torch.manual_seed(seed)
        model = Generator(config)
        with torch.no_grad():
            for p in model.parameters():  # PReLU slopes and BN scales start equal in every model
                p.add_(0.1 * torch.rand_like(p))
            for buffer in model.buffers():
                if buffer.is_floating_point():
                    buffer.copy_(torch.rand_like(buffer) + 0.5)  # running stats away from their 0 / 1 start
                else:
                    buffer.fill_(seed)
        paths.append(W.save_generator(model, tmp_path / f"g{seed}").with_suffix(""))
    return paths[0], paths[1]


@needs_bundled_pair
def test_strength_0_and_1_are_the_bundled_models_bit_for_bit():
    image = noise_image()
    psnr = pixels(Upscaler("srresnet_x4").upscale(image))
    gan = pixels(Upscaler("srgan_x4").upscale(image))
    assert np.abs(psnr - gan).max() > 0, "the two bundled models give the same output; the test proves nothing"
    assert np.array_equal(pixels(Upscaler(strength=0).upscale(image)), psnr)
    assert np.array_equal(pixels(Upscaler(strength=1).upscale(image)), gan)
    half = pixels(Upscaler(strength=0.5).upscale(image))
    # halfway in weights is a new model, nearer to each end than the ends are to each other
    apart = np.abs(gan - psnr).mean()
    assert 0 < np.abs(half - psnr).mean() < apart and 0 < np.abs(half - gan).mean() < apart


def test_every_float_tensor_is_blended_and_inputs_are_untouched(tmp_path):
    a_path, b_path = tiny_pair(tmp_path)
    a, b = W.load_generator(a_path), W.load_generator(b_path)
    before = {k: v.clone() for k, v in a.model.state_dict().items()}
    blend = I.interpolate_generators(a, b, 0.25)
    ta, tb, tm = a.model.state_dict(), b.model.state_dict(), blend.model.state_dict()
    assert "body.0.bn1.running_mean" in tm and "body.0.bn1.running_var" in tm and "body.0.act.weight" in tm
    for k, v in tm.items():
        if v.is_floating_point():
            assert not torch.equal(ta[k], tb[k]), k
            assert torch.allclose(v, 0.75 * ta[k] + 0.25 * tb[k], rtol=0, atol=1e-6), k
        else:  # num_batches_tracked: a count, not a weight
            assert torch.equal(v, ta[k]), k
    assert all(torch.equal(before[k], v) for k, v in a.model.state_dict().items())
    assert not blend.model.training and blend.model.config == TINY
    assert blend.meta["interpolation"]["strength"] == 0.25 and blend.name == "g1->g2@0.25"
    for s, end in ((0, ta), (1, tb)):
        got = I.interpolate_generators(a, b, s).model.state_dict()
        assert all(torch.equal(got[k], end[k]) for k in end), s


@pytest.mark.parametrize("config_b, words", [
    (GeneratorConfig(channels=4, blocks=2), "channels 8 vs 4"),
    (GeneratorConfig(channels=8, blocks=2, bicubic_skip=True), "bicubic_skip False vs True"),
])
def test_different_architectures_refused(tmp_path, config_b, words):
    a_path, b_path = tiny_pair(tmp_path, config_b)
    with pytest.raises(W.WeightsError, match=f"cannot blend g1 with g2: different architectures \\({words}\\)"):
        I.interpolate_generators(W.load_generator(a_path), W.load_generator(b_path), 0.5)
    with pytest.raises(W.WeightsError, match="different architectures"):
        Upscaler((a_path, b_path), strength=0.5)


@pytest.mark.parametrize("strength", [math.nan, -1, 2, math.inf, -1e-9, "half", None])
def test_bad_strength_refused(tmp_path, strength):
    a_path, b_path = tiny_pair(tmp_path)
    a = W.load_generator(a_path)
    calls = [lambda: I.interpolate_generators(a, a, strength), lambda: I.load_interpolated(a_path, b_path, strength)]
    if strength is not None:  # to the Upscaler, None means "no blend"
        calls.append(lambda: Upscaler((a_path, b_path), strength=strength))
    for call in calls:
        with pytest.raises(ValueError, match=r"strength must be a number from 0 .* to 1 .*, got"):
            call()


def test_pickles_and_missing_files_refused_before_loading(tmp_path):
    a_path, _ = tiny_pair(tmp_path)
    with pytest.raises(W.WeightsError, match="refusing to load a .pth file"):
        I.load_interpolated(a_path, tmp_path / "gan.pth", 0.5)
    with pytest.raises(W.WeightsError, match="no such weights"):
        I.load_interpolated(tmp_path / "missing", a_path, 0.5)


def test_blends_are_cached_and_end_models_loaded_once(tmp_path, monkeypatch):
    a_path, b_path = tiny_pair(tmp_path)
    loads = []
    real_load = W.load_generator
    monkeypatch.setattr(W, "load_generator", lambda source, **kw: loads.append(source) or real_load(source, **kw))
    first = I.load_interpolated(a_path, b_path, 0.5)
    assert I.load_interpolated(str(a_path), str(b_path) + ".safetensors", 0.504) is first  # same files, same step
    other = I.load_interpolated(a_path, b_path, 0.51)
    assert other is not first and other.meta["interpolation"]["strength"] == 0.51
    assert loads == [a_path, b_path], "moving the slider reloaded a file"
    # a replaced file is a new model, not a stale cached one
    torch.manual_seed(3)
    W.save_generator(Generator(TINY), b_path)
    os.utime(b_path.with_suffix(".safetensors"), ns=(1, 1))  # a clearly different mtime, whatever the clock
    assert I.load_interpolated(a_path, b_path, 0.5) is not first and loads[-1] == b_path


# -- the command line (in process, as `python -m srgan_core` runs it; one real subprocess below) ----------


def cli(capsys, *args: str) -> tuple[int, str, str]:
    from srgan_core.cli import main

    try:
        code = main(list(args))
    except SystemExit as e:  # argparse: --help, or a value that is not a number
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@needs_bundled_pair
def test_cli_strength_ends_equal_the_named_models(tmp_path, capsys):
    src = tmp_path / "in.png"
    noise_image(1).save(src)
    outputs = {}
    for label, flags in {"s0": ["--strength", "0"], "psnr": ["--weights", "srresnet_x4"],
                         "s1": ["--strength", "1", "--weights-psnr", "srresnet_x4", "--weights-gan", "srgan_x4"],
                         "gan": ["--weights", "srgan_x4"]}.items():
        code, _, err = cli(capsys, "upscale", str(src), str(tmp_path / f"{label}.png"), *flags)
        assert code == 0, err
        outputs[label] = pixels(Image.open(tmp_path / f"{label}.png"))
    assert np.array_equal(outputs["s0"], outputs["psnr"]) and np.array_equal(outputs["s1"], outputs["gan"])
    assert not np.array_equal(outputs["psnr"], outputs["gan"])


def test_cli_refuses_bad_strengths_and_flag_mixes_in_one_line(tmp_path, capsys):
    src = tmp_path / "in.png"
    noise_image(1).save(src)
    a_path, b_path = tiny_pair(tmp_path, GeneratorConfig(channels=4, blocks=2))
    cases = {
        ("--strength", "nan"): "strength must be a number from 0",
        ("--strength", "-1"): "strength must be a number from 0",
        ("--strength", "2"): "strength must be a number from 0",
        ("--strength", "inf"): "strength must be a number from 0",
        ("--weights-gan", "srgan_x4"): "give --strength too",
        ("--strength", "0.5", "--weights", "srgan_x4"): "does not go with --weights",
        ("--strength", "0.5", "--bicubic"): "does not go with --bicubic",
        ("--strength", "0.5", "--weights-psnr", str(a_path), "--weights-gan", str(b_path)): "different architectures",
    }
    for flags, words in cases.items():
        code, _, err = cli(capsys, "upscale", str(src), str(tmp_path / "out.png"), *flags)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (flags, err)
        assert words in lines[0], (flags, lines[0])
        assert not (tmp_path / "out.png").exists()


def test_cli_process_refuses_nan_strength_in_one_line(tmp_path):
    src = tmp_path / "in.png"
    noise_image(1).save(src)
    env = {k: v for k, v in os.environ.items() if k != "SRGAN_WEIGHTS_DIR"}
    run = subprocess.run([sys.executable, "-m", "srgan_core", "upscale", str(src), str(tmp_path / "out.png"),
                          "--strength", "nan"], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=240, stdin=subprocess.DEVNULL)
    assert run.returncode == 2 and run.stderr.strip() == (
        "error: strength must be a number from 0 (the PSNR model) to 1 (the GAN model), got nan")


def test_cli_help_names_the_default_and_what_each_model_suits(capsys):
    code, out, _ = cli(capsys, "upscale", "--help")
    text = " ".join(out.split())
    assert code == 0
    assert "first bundled one of real_x4, srgan_x4, srresnet_x4" in text
    assert "real_x4 is trained on camera-like degradations" in text and "suits photos" in text
    assert "suit clean renders" in text and "--strength" in text and "--weights-psnr" in text
