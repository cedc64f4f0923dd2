"""Degradations: deterministic per seed, every stage switchable, shapes and value ranges."""
import numpy as np
import pytest
from PIL import Image

from srgan_core import degrade
from srgan_core.data import PatchDataset
from srgan_core.degrade import DegradationConfig, make_lr, realistic

OFF = dict(blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0, second_order_prob=0.0)


@pytest.fixture(scope="module")
def hr() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96]
    base = (np.sin(xx / 3) * np.cos(yy / 5)) * 90 + 128
    return np.clip(base[..., None] + rng.normal(0, 8, (96, 96, 3)), 0, 255).astype(np.uint8)


def test_same_seed_same_lr_and_other_seeds_differ(hr):
    cfg = DegradationConfig(second_order_prob=0.5)
    a = realistic(hr, 4, cfg, np.random.default_rng([1, 2, 3]))
    b = realistic(hr, 4, cfg, np.random.default_rng([1, 2, 3]))
    assert np.array_equal(a, b)
    others = [realistic(hr, 4, cfg, np.random.default_rng([1, 2, i])) for i in range(4, 8)]
    assert all(not np.array_equal(a, o) for o in others)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_shapes_dtype_and_range(hr, scale):
    for i in range(6):
        lr = realistic(hr, scale, DegradationConfig(second_order_prob=0.5), np.random.default_rng(i))
        assert lr.shape == (96 // scale, 96 // scale, 3) and lr.dtype == np.uint8


def test_with_every_stage_off_it_is_a_plain_resize(hr):
    cfg = DegradationConfig(methods=("bicubic",), **OFF)
    assert np.array_equal(realistic(hr, 4, cfg, np.random.default_rng(0)), degrade.bicubic(hr, 4))
    clean = np.asarray(Image.fromarray(hr).resize((24, 24), Image.Resampling.BICUBIC))
    assert np.array_equal(degrade.bicubic(hr, 4), clean)


@pytest.mark.parametrize("stage", ["blur_prob", "noise_prob", "jpeg_prob"])
def test_each_stage_on_its_own_changes_the_image(hr, stage):
    cfg = DegradationConfig(methods=("bicubic",), **{**OFF, stage: 1.0})
    lr = realistic(hr, 4, cfg, np.random.default_rng(0)).astype(float)
    diff = np.abs(lr - degrade.bicubic(hr, 4)).mean()
    assert diff > 0.5, f"{stage} left the image as it was"


def test_noise_strength_follows_the_knob(hr):
    flat = np.full((96, 96, 3), 128, np.uint8)
    for top in (2.0, 10.0):
        cfg = DegradationConfig(methods=("area",), noise_sigma=(top, top), poisson_prob=0.0, **{**OFF, "noise_prob": 1.0})
        lr = realistic(flat, 4, cfg, np.random.default_rng(0)).astype(float)
        assert lr.std() == pytest.approx(top, rel=0.35)


def test_presets_are_deterministic_and_the_clean_one_is_bicubic(hr):
    image = Image.fromarray(hr)
    assert np.array_equal(np.asarray(make_lr(image, 4, "bicubic")), degrade.bicubic(hr, 4))
    a, b = make_lr(image, 4, "phone_jpeg", seed=3), make_lr(image, 4, "phone_jpeg", seed=3)
    assert np.array_equal(np.asarray(a), np.asarray(b)) and a.size == (24, 24)
    heavy = np.asarray(make_lr(image, 4, "heavy_jpeg")).astype(float)
    assert np.abs(heavy - degrade.bicubic(hr, 4)).mean() > 1
    with pytest.raises(ValueError, match="unknown degradation"):
        make_lr(image, 4, "sepia")


@pytest.mark.parametrize("kw, words", [(dict(blur_prob=1.5), "blur_prob"), (dict(jpeg_quality=(0, 50)), "JPEG quality"),
                                       (dict(noise_sigma=(5.0, 1.0)), "noise sigma"), (dict(methods=("lanczos",)), "downscale")])
def test_bad_knobs_are_refused_by_name(kw, words):
    with pytest.raises(ValueError, match=words):
        DegradationConfig(**kw)


def test_training_patches_with_the_realistic_degradation_repeat_per_seed(tmp_path, hr):
    Image.fromarray(hr).save(tmp_path / "a.png")
    data = PatchDataset([tmp_path], scale=4, patch=48, seed=5, degradation=DegradationConfig())
    lr, hr_patch = data.item(2, 0)
    assert lr.shape == (3, 12, 12) and hr_patch.shape == (3, 48, 48)
    assert 0 <= float(lr.min()) and float(lr.max()) <= 1
    again, _ = data.item(2, 0)
    assert (again == lr).all()
    clean = PatchDataset([tmp_path], scale=4, patch=48, seed=5)
    assert not (clean.item(2, 0)[0] == lr).all() and (clean.item(2, 0)[1] == hr_patch).all()
