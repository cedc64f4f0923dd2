"""NIQE: the distribution fits recover known parameters, the score ranks real photos above their
degraded copies, and the shipped pristine model is what its provenance says it is."""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import stats

from srgan_core import niqe as niqe_module
from srgan_core.data import list_images, load_validation
from srgan_core.metrics import ssim
from srgan_core.niqe import (
    FEATURES, PRISTINE_PATH, NIQEError, PristineModel, aggd_fit, features, fit_pristine, ggd_fit,
    image_list_sha256, load_pristine, niqe,
)

ROOT = Path(__file__).resolve().parent.parent


def _texture(size=(256, 256), seed=0) -> Image.Image:
    """A photo-like test image: noise smoothed at several scales, in colour."""
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    layers = [ndimage.gaussian_filter(rng.normal(size=(*size, 3)), (s, s, 0)) * s for s in (1, 3, 9)]
    image = sum(layers)
    image = (image - image.min()) / (image.max() - image.min()) * 255
    return Image.fromarray(image.astype(np.uint8))


@pytest.mark.parametrize("shape", [0.6, 1.0, 2.0, 4.0])
def test_ggd_fit_recovers_the_shape_and_variance(shape):
    x = stats.gennorm.rvs(shape, scale=0.5, size=(2, 200_000), random_state=1)
    fitted, var = ggd_fit(x)
    assert fitted == pytest.approx([shape, shape], rel=0.05)
    assert var == pytest.approx([stats.gennorm.var(shape, scale=0.5)] * 2, rel=0.02)


@pytest.mark.parametrize("shape, left, right", [(1.0, 1.0, 1.0), (0.8, 0.5, 1.5), (2.0, 2.0, 1.0)])
def test_aggd_fit_recovers_shape_and_both_sides(shape, left, right):
    rng = np.random.default_rng(2)
    magnitude = np.abs(stats.gennorm.rvs(shape, size=400_000, random_state=3))
    side = rng.random(magnitude.size) < left / (left + right)  # the AGGD's mass on each side
    x = np.where(side, -left * magnitude, right * magnitude)[None]
    fitted, mean, left_var, right_var = aggd_fit(x)
    scale_to_var = stats.gennorm.var(shape)
    assert fitted[0] == pytest.approx(shape, rel=0.05)
    assert left_var[0] == pytest.approx(left**2 * scale_to_var, rel=0.03)
    assert right_var[0] == pytest.approx(right**2 * scale_to_var, rel=0.03)
    assert mean[0] == pytest.approx(x.mean(), abs=0.02)  # leans to the wider side, 0 when symmetric


def test_features_are_36_per_patch_and_batching_mixes_no_patches():
    y = np.asarray(_texture((288, 200)).convert("L"), dtype=np.float64)
    feats, sharpness = features(y)
    assert feats.shape == (3 * 2, FEATURES) and sharpness.shape == (6,)
    assert np.isfinite(feats).all()
    # All patches are fitted at once; each row must equal that patch fitted on its own.
    coeffs = niqe_module._patches(niqe_module.mscn(y[:288, :192])[0], 96)
    batched = niqe_module._patch_features(coeffs)
    for k in range(len(coeffs)):
        assert batched[k] == pytest.approx(niqe_module._patch_features(coeffs[k : k + 1])[0], rel=1e-12)
    assert batched == pytest.approx(feats[:, :18], rel=1e-12)


def test_score_is_deterministic_and_lower_for_the_real_photo():
    image = _texture()
    assert niqe(image) == niqe(image)
    blurred = image.filter(ImageFilter.GaussianBlur(2))
    assert niqe(blurred) > niqe(image)


def test_tiny_and_flat_images_are_refused_clearly():
    with pytest.raises(NIQEError, match=r"too small for NIQE.*96x96.*got 150x150") as info:
        niqe(Image.new("RGB", (150, 150), (50, 90, 200)))
    assert isinstance(info.value, ValueError)  # the CLI and app turn it into one line
    with pytest.raises(NIQEError, match="too small"):
        niqe(_texture((100, 400)), border=4)  # 4 patches without the border, none with it
    assert niqe(_texture((100, 400))) > 0
    with pytest.raises(NIQEError, match="texture"):
        niqe(Image.new("RGB", (300, 300), (120, 120, 120)))


def test_a_512px_image_scores_about_as_fast_as_its_ssim():
    """Vectorised over patches: NIQE of 512x512 costs about one SSIM (a plain-loop version costs
    tens). Measured against SSIM in the same run, so a slow or busy machine does not matter."""
    image = _texture((512, 512))
    niqe(image)  # loads the pristine model once

    def best(fn, n=3):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    assert best(lambda: niqe(image)) < 10 * best(lambda: ssim(image, image))


def test_shipped_pristine_model_and_its_provenance():
    data = json.loads(PRISTINE_PATH.read_text())
    model = load_pristine()
    assert model.mu.shape == (FEATURES,) and model.cov.shape == (FEATURES, FEATURES)
    assert np.allclose(model.cov, model.cov.T) and np.linalg.eigvalsh(model.cov).min() > -1e-9
    assert data["features"] == FEATURES and data["patch"] == 96 and data["sharpness_threshold"] == 0.75
    assert data["sets"] == ["T91", "BSDS200"] and data["images"] + data["images_skipped_too_small"] == 291
    assert "scripts/fit_niqe.py" in data["command"] and data["date"] and len(data["image_list_sha256"]) == 64
    assert not {"Set5", "Set14"} & set(data["command"].replace("/", " ").split())


def test_provenance_hash_names_exactly_the_training_images(data_dir):
    shipped = json.loads(PRISTINE_PATH.read_text())["image_list_sha256"]
    assert image_list_sha256(list_images([data_dir / "T91", data_dir / "BSDS200"])) == shipped
    assert image_list_sha256(list_images([data_dir / "T91", data_dir / "Set14"])) != shipped


@pytest.mark.slow
def test_refitting_on_the_training_images_reproduces_the_shipped_model(data_dir, tmp_path):
    out = tmp_path / "pristine.json"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "fit_niqe.py"), str(data_dir / "T91"),
                          str(data_dir / "BSDS200"), "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    refit, shipped = load_pristine(out), load_pristine()
    assert refit.mu == pytest.approx(shipped.mu, rel=1e-6, abs=1e-9)
    assert refit.cov == pytest.approx(shipped.cov, rel=1e-5, abs=1e-9)
    assert refit.provenance["image_list_sha256"] == shipped.provenance["image_list_sha256"]


def test_fit_script_refuses_the_test_sets(data_dir, tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "fit_niqe.py"), str(data_dir / "Set5"),
                          "--out", str(tmp_path / "x.json")], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "training images only" in run.stderr
    assert not (tmp_path / "x.json").exists()


def test_fit_keeps_only_sharp_patches_and_round_trips(tmp_path):
    paths = []
    for i in range(3):
        image = np.asarray(_texture((192, 288), seed=i)).copy()
        image[:, 192:] = np.asarray(Image.fromarray(image[:, 192:]).filter(ImageFilter.GaussianBlur(4)))
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(paths[-1])
    model = fit_pristine(paths)
    assert model.provenance["patches"] < 3 * 6  # the blurred third of every image is left out
    assert model.provenance["images"] == 3
    out = tmp_path / "model.json"
    out.write_text(model.dumps())
    again = load_pristine(out)
    assert again.mu == pytest.approx(model.mu, rel=1e-8) and again.cov == pytest.approx(model.cov, rel=1e-8, abs=1e-12)
    assert niqe(Image.open(paths[0]), model=again) == pytest.approx(niqe(Image.open(paths[0]), model=model), rel=1e-4)
    with pytest.raises(ValueError, match="36 means"):
        PristineModel.from_json({**json.loads(out.read_text()), "mu": [0.0] * 5})
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"mu": [0.0] * 36}))
    with pytest.raises(NIQEError, match="not a NIQE pristine model"):
        load_pristine(broken)


def test_hr_scores_more_natural_than_bicubic_on_set5(data_dir):
    pairs = load_validation(data_dir / "Set5", 4)
    hr = [niqe(hr, border=4) for _, _, hr in pairs]
    bicubic = [niqe(lr.resize(hr.size, Image.Resampling.BICUBIC), border=4) for _, lr, hr in pairs]
    assert np.mean(hr) < np.mean(bicubic) - 2  # measured: 5.3 against 12.3
    assert sum(h < b for h, b in zip(hr, bicubic)) == len(pairs)


def test_module_has_no_gradio_dependency():
    assert "gradio" not in Path(niqe_module.__file__).read_text()
