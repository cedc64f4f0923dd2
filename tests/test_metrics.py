import math

import numpy as np
import pytest
from PIL import Image

from srgan_core.data import downscale, load_validation, modcrop
from srgan_core.metrics import detail_ratio, gradient_magnitude, grid_ratio, periodicity, psnr, rgb_to_y, ssim


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


def _photo_like(size=(160, 192), seed=0) -> np.ndarray:
    """Noise smoothed at several scales: texture with no preferred period, like a photo."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    image = sum(ndimage.gaussian_filter(rng.normal(size=(*size, 3)), (s, s, 0)) * s for s in (1, 3, 9))
    return ((image - image.min()) / (image.max() - image.min()) * 200 + 20).astype(np.float64)


def _with_grid(image: np.ndarray, period: int = 4, amplitude: float = 3.0) -> np.ndarray:
    """The checkerboard a sub-pixel upsampler leaves: a fixed offset per phase of a period x period grid."""
    h, w = image.shape[:2]
    phases = np.random.default_rng(9).uniform(-amplitude, amplitude, (period, period, 1))
    return image + np.tile(phases, (h // period + 1, w // period + 1, 1))[:h, :w]


def _uint8(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8))


def test_periodicity_sees_a_faint_4px_grid():
    photo = _photo_like()
    clean, gridded = periodicity(_uint8(photo)), periodicity(_uint8(_with_grid(photo)))
    assert clean < 5 and gridded > 10 * clean
    # The grid is invisible to PSNR at this strength (about 40 dB) yet obvious to the measure.
    assert psnr(_uint8(_with_grid(photo)), _uint8(photo)) > 38
    assert grid_ratio(_uint8(_with_grid(photo)), _uint8(photo)) > 10
    assert grid_ratio(_uint8(photo), _uint8(photo)) == 1.0
    # A grid of another period is not what a x4 upscaler leaves: only x3 sees it.
    three = _uint8(_with_grid(photo[:159, :192], period=3))
    assert periodicity(three, scale=4) < 5 < periodicity(three, scale=3)


def test_periodicity_of_flat_and_tiny_images():
    assert periodicity(Image.new("RGB", (64, 64), (80, 80, 80))) == 1.0
    with pytest.raises(ValueError, match="too small for the grid measure.*32 px.*got 28x40"):
        periodicity(_noise(size=(48, 36)))  # 36x48 minus a 4 px border
    with pytest.raises(ValueError, match="scale of 2 or more"):
        periodicity(_noise(size=(64, 64)), scale=1)


def test_detail_ratio():
    photo = _uint8(_photo_like())
    assert detail_ratio(photo, photo) == 1.0
    from PIL import ImageFilter

    assert detail_ratio(photo.filter(ImageFilter.GaussianBlur(2)), photo) < 0.7


def test_bicubic_grid_ratio_on_set14_is_near_one(data_dir):
    """Bicubic has no sub-pixel grid: about as periodic as the photos (reference figure: 1.3)."""
    import statistics

    ratios = [grid_ratio(lr.resize(hr.size, Image.Resampling.BICUBIC), hr) for _, lr, hr in load_validation(data_dir / "Set14", 4)]
    assert 1.0 < statistics.median(ratios) < 1.7
