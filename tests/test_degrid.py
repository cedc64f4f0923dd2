"""The degrid stage: a grid pattern is found over a whole image and removed, the photo is left
alone, and a generator is taught its own output without the pattern, patch by patch."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_core.data import TeacherPatchDataset
from srgan_core.degrid import remove_grid, sharpen
from srgan_core.metrics import detail_ratio, periodicity, psnr
from srgan_core.train import TrainConfig, train


def photo(h: int = 192, w: int = 256, seed: int = 0) -> np.ndarray:
    """Something like a photo: smooth shapes and a fine, random grain (float, 0..255, RGB)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 120 + 50 * np.sin(xx / 17.0) * np.cos(yy / 23.0)
    grain = ndimage.gaussian_filter(rng.normal(0, 1, (h, w, 3)), (0.8, 0.8, 0)) * 25
    return np.clip(base[..., None] + grain, 0, 255)


def with_grid(image: np.ndarray, amplitude: float = 1.5, seed: int = 1) -> np.ndarray:
    """The photo plus what a pixel-shuffle upscaler paints: one 4 x 4 pattern on every block,
    stronger where the photo is brighter (its strength follows the content)."""
    h, w = image.shape[:2]
    pattern = np.random.default_rng(seed).normal(0, 1, (4, 4))
    pattern -= pattern.mean()
    envelope = image.mean(axis=2) / 128.0
    return image + (amplitude * envelope * np.tile(pattern, (h // 4, w // 4)))[..., None]


def test_remove_grid_takes_the_pattern_off_a_photo_and_leaves_the_photo_alone():
    clean = photo()
    gridded = with_grid(clean)
    assert periodicity(gridded.round().astype(np.uint8)) > 5 * periodicity(clean.round().astype(np.uint8))
    cleaned = remove_grid(gridded)
    assert cleaned.shape == gridded.shape and cleaned.dtype == np.float64
    # as periodic as the photo again (the measure's own noise is about 1.5x), and close to it
    assert periodicity(cleaned.clip(0, 255).round().astype(np.uint8)) < 1.5 * periodicity(clean.round().astype(np.uint8))
    to8 = lambda a: Image.fromarray(a.clip(0, 255).round().astype(np.uint8))
    assert psnr(to8(cleaned), to8(clean), 4) > psnr(to8(gridded), to8(clean), 4) + 3
    # on the photo alone it changes almost nothing: a narrow band around 15 frequencies
    assert psnr(to8(remove_grid(clean)), to8(clean), 4) > 45
    with pytest.raises(ValueError, match="multiples of the scale 4"):
        remove_grid(np.zeros((30, 32, 3)))
    with pytest.raises(ValueError, match="gain must be between 0 and 4"):
        remove_grid(gridded, gain=float("nan"))
    with pytest.raises(ValueError, match="H x W x C"):
        remove_grid(np.zeros((32, 32)))


def test_a_gain_above_one_turns_the_patterns_sign_and_zero_leaves_the_image_alone():
    clean = photo()
    gridded = with_grid(clean)
    pattern = gridded - remove_grid(gridded)  # what the plain removal takes away
    assert np.abs(pattern).mean() > 0.5
    np.testing.assert_allclose(remove_grid(gridded, gain=0.0), gridded)
    turned = remove_grid(gridded, gain=2.0) - remove_grid(gridded)
    np.testing.assert_allclose(turned, -pattern, atol=1e-9)  # the pattern again, its sign turned
    # so the target is as far from clean on the other side as the teacher is on this one
    assert abs(np.abs(remove_grid(gridded, gain=2.0) - clean).mean() - np.abs(gridded - clean).mean()) < 0.2


def test_sharpen_raises_the_fine_detail_keeps_the_mean_and_zero_leaves_the_image_alone():
    from scipy import ndimage

    clean = photo()
    soft = ndimage.gaussian_filter(clean, (0.7, 0.7, 0))  # what a distillation pass does to edges, a little
    np.testing.assert_allclose(sharpen(soft, 0.0), soft)
    sharper = sharpen(soft, 0.3)
    assert abs(sharper.mean() - soft.mean()) < 1e-6  # the unsharp mask moves no brightness
    # more edge energy, towards the photo's own: the detail ratio (against the unblurred photo) rises
    hr = clean.round().clip(0, 255).astype(np.uint8)
    as_image = lambda x: x.round().clip(0, 255).astype(np.uint8)  # noqa: E731
    assert detail_ratio(as_image(soft), hr) < detail_ratio(as_image(sharper), hr) < 1.05
    # it is linear in the amount: twice the amount adds twice the difference
    np.testing.assert_allclose(sharpen(soft, 0.6) - soft, 2 * (sharper - soft), atol=1e-9)
    with pytest.raises(ValueError, match="between 0 and 1"):
        sharpen(soft, float("nan"))
    with pytest.raises(ValueError, match="H x W x C"):
        sharpen(soft[..., 0], 0.1)


def test_sharpened_teacher_targets_are_the_cleaned_targets_sharpened(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo(seed=4)[:96, :128].round().astype(np.uint8)).save(folder / "p.png")

    def teacher(lr: Image.Image) -> Image.Image:
        return lr.resize((lr.width * 4, lr.height * 4), Image.Resampling.BICUBIC)

    plain = TeacherPatchDataset([folder], teacher, patch=48, seed=1)
    sharp = TeacherPatchDataset([folder], teacher, patch=48, seed=1, sharpen=0.2)
    lr, target = plain.pairs[0]
    np.testing.assert_array_equal(sharp.pairs[0][0], lr)  # same LR; only the target changes
    expected = (sharpen(target.astype(np.float64) * 255, 0.2) / 255).clip(0, 1)
    np.testing.assert_allclose(sharp.pairs[0][1], expected, atol=1e-5)  # sharpened after the grid is removed
    assert np.abs(sharp.pairs[0][1] - target).mean() > 1e-4  # about a tenth of a grey level: it did something


def test_teacher_patches_are_the_teachers_whole_image_output_cleaned_cut_where_its_input_was(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(photo(seed=i)[:190, :250].round().astype(np.uint8)).save(folder / f"p{i}.png")
    seen = []

    def teacher(lr: Image.Image) -> Image.Image:
        """Nearest-neighbour x4 plus a grid pattern: easy to tell where each output pixel came from."""
        seen.append(lr.size)
        up = np.asarray(lr.resize((lr.width * 4, lr.height * 4), Image.Resampling.NEAREST), dtype=np.float64)
        return Image.fromarray(with_grid(up, 3.0).clip(0, 255).round().astype(np.uint8))

    calls = []
    data = TeacherPatchDataset([folder], teacher, patch=32, seed=3, progress=lambda i, n: calls.append((i, n)))
    assert seen == [(62, 47)] * 3 and calls == [(1, 3), (2, 3), (3, 3)]  # whole images, cut to multiples of 4
    lr_full, target_full = data.pairs[0]
    assert target_full.shape == (188, 248, 3) and target_full.dtype == np.float32
    gridded = np.asarray(teacher(Image.fromarray(lr_full)))
    assert periodicity((target_full * 255).round().astype(np.uint8)) < 0.5 * periodicity(gridded)
    lr_tensor = torch.from_numpy(lr_full).permute(2, 0, 1).float() / 255
    for index in range(12):
        lr, target = data.item(0, index)
        assert lr.shape == (3, 8, 8) and target.shape == (3, 32, 32)
        # cut from the LR the teacher saw, as it saw it: not mirrored or turned (its texture would not be)
        if index % len(data.pairs) == 0:
            windows = lr_tensor.unfold(1, 8, 1).unfold(2, 8, 1).permute(1, 2, 0, 3, 4)
            assert ((windows - lr).abs().amax(dim=(2, 3, 4)) < 1e-6).any()
        # each target pixel is (the cleaned version of) its LR pixel, repeated 4 x 4: aligned, not off by a phase
        block_means = target.reshape(3, 8, 4, 8, 4).mean(dim=(2, 4))
        assert (block_means - lr).abs().mean() < 2.5 / 255
    assert all((a == b).all() for a, b in zip(data.item(1, 5), data.item(1, 5)))  # deterministic, as PatchDataset


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_degrid_stage_trains_on_the_teachers_targets_and_records_its_teacher(tmp_path):
    from srgan_core.models import Generator, GeneratorConfig
    from srgan_core.weights import save_generator

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(photo(96, 128, seed=i).round().astype(np.uint8)).save(folder / f"p{i}.png")
    save_generator(Generator(GeneratorConfig(channels=8, blocks=1)), tmp_path / "gan",
                   training={"stage": "srgan", "iterations": 800, "command": "python -m srgan_core train --stage srgan"})
    cfg = TrainConfig(stage="degrid", init=str(tmp_path / "gan"), train_data=[str(folder)], val_data=[str(folder)],
                      out=str(tmp_path / "run"), channels=8, blocks=1, patch=48, batch_size=4, iterations=3, lr=1e-4,
                      content_loss="l1", log_every=1, val_every=3, val_max_images=1, ckpt_every=3, threads=1)
    train(cfg)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines if "g_loss" in line] == [1, 2, 3]
    sidecar = json.loads((tmp_path / "run" / "generator.json").read_text())
    assert sidecar["training"]["stage"] == "degrid" and "without its grid pattern" in sidecar["description"]
    assert "--stage degrid" in sidecar["training"]["command"]
    assert sidecar["training"]["teacher"] == {"stage": "srgan", "iterations": 800, "command": "python -m srgan_core train --stage srgan"}
    with pytest.raises(ValueError, match="give --teacher"):
        TrainConfig(stage="degrid", train_data=[str(folder)])
    with pytest.raises(ValueError, match="--teacher is for the degrid stage"):
        TrainConfig(stage="srresnet", teacher=str(tmp_path / "gan"))
    with pytest.raises(ValueError, match="patch 32 is too small"):
        TrainConfig(stage="degrid", init=str(tmp_path / "gan"), patch=32)
    with pytest.raises(ValueError, match="cannot go with --degradation realistic"):
        TrainConfig(stage="degrid", init=str(tmp_path / "gan"), degradation="realistic")
    with pytest.raises(ValueError, match="degrid_sigma"):
        TrainConfig(stage="degrid", init=str(tmp_path / "gan"), degrid_sigma=float("nan"))
    with pytest.raises(ValueError, match="degrid_gain must be between 0 and 4"):
        TrainConfig(stage="degrid", init=str(tmp_path / "gan"), degrid_gain=5.0)
    with pytest.raises(ValueError, match="--degrid-gain is for the degrid stage"):
        TrainConfig(stage="srresnet", degrid_gain=2.0)
    with pytest.raises(ValueError, match="degrid_sharpen must be between 0 and 1"):
        TrainConfig(stage="degrid", init=str(tmp_path / "gan"), degrid_sharpen=-0.1)
    with pytest.raises(ValueError, match="--degrid-sharpen is for the degrid stage"):
        TrainConfig(stage="srresnet", degrid_sharpen=0.1)
