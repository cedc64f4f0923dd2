import math

import numpy as np
import pytest
from PIL import Image

from srgan_core.data import downscale, load_validation, modcrop
from srgan_core.metrics import gradient_magnitude, psnr, rgb_to_y, ssim


def _noise(seed=0, size=(48, 40)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def test_y_channel_is_bt601_studio_range():
    black = np.zeros((1, 1, 3), np.uint8)
    white = np.full((1, 1, 3), 255, np.uint8)
    assert rgb_to_y(black)[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(white)[0, 0] == pytest.approx(235.0)


def test_psnr_of_a_known_offset():
    hr = Image.fromarray(np.full((20, 20, 3), 100, np.uint8))
    sr = Image.fromarray(np.full((20, 20, 3), 110, np.uint8))
    y_diff = 10 * 219 / 255  # a uniform +10 on R, G and B moves Y by 10 * 219/255
    assert psnr(sr, hr) == pytest.approx(20 * math.log10(255 / y_diff), abs=1e-9)
    assert psnr(hr, hr) == math.inf and ssim(hr, hr) == pytest.approx(1.0)


def test_border_crop_ignores_edge_errors():
    hr = np.asarray(_noise()).copy()
    sr = hr.copy()
    sr[:4] = 0  # damage only the 4-pixel border
    sr[:, -4:] = 0
    assert psnr(sr, hr, scale=4) == math.inf
    assert psnr(sr, hr, scale=2) < 20


def test_ssim_matches_the_reference_window():
    # The published-value check is test_bicubic_x4_matches_the_published_baseline; this one
    # makes sure the Gaussian 11x11 / sigma 1.5 window is in use, not skimage's 7x7 default.
    hr = _noise(1, (64, 64))
    sr = Image.fromarray(np.clip(np.asarray(hr, np.int16) + np.random.default_rng(2).integers(-20, 21, (64, 64, 3)), 0, 255).astype(np.uint8))
    value = ssim(sr, hr, scale=0)
    assert 0.5 < value < 0.99
    from skimage.metrics import structural_similarity

    uniform = structural_similarity(rgb_to_y(sr), rgb_to_y(hr), data_range=255.0, win_size=7)
    assert value != pytest.approx(uniform, abs=1e-6)  # not the default 7x7 uniform window


def test_size_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="differ in size"):
        psnr(_noise(size=(10, 10)), _noise(size=(12, 10)))


def test_gradient_magnitude_ranks_detail():
    flat = Image.new("RGB", (32, 32), (90, 90, 90))
    assert gradient_magnitude(flat) == 0.0
    assert gradient_magnitude(_noise()) > 10


@pytest.mark.parametrize("name, published, psnr_tol, published_ssim", [("Set5", 28.42, 0.10, 0.8104), ("Set14", 26.00, 0.15, 0.7027)])
def test_bicubic_x4_matches_the_published_baseline(data_dir, name, published, psnr_tol, published_ssim):
    """External check of the whole convention: Pillow bicubic x4 lands on the published figures."""
    pairs = load_validation(data_dir / name, 4)
    scores = [(psnr(lr.resize(hr.size, Image.Resampling.BICUBIC), hr), ssim(lr.resize(hr.size, Image.Resampling.BICUBIC), hr)) for _, lr, hr in pairs]
    mean_psnr = sum(p for p, _ in scores) / len(scores)
    mean_ssim = sum(s for _, s in scores) / len(scores)
    assert abs(mean_psnr - published) <= psnr_tol, mean_psnr
    assert abs(mean_ssim - published_ssim) <= 0.005, mean_ssim


def test_modcrop_and_downscale():
    img = _noise(size=(361, 250))
    cropped = modcrop(img, 4)
    assert cropped.size == (248, 360)
    assert downscale(cropped, 4).size == (62, 90)
