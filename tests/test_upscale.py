"""Upscaler, bicubic and load_image on real files and small random-init generators.

The generators are tiny (a few channels, a few blocks) so each test runs in well under a second,
and their BatchNorm statistics are randomised so that folding BN is actually exercised.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from srgan_core.models import Generator, GeneratorConfig
from srgan_core.images import MAX_INPUT_PIXELS, MAX_INPUT_SIDE, MIN_INPUT_SIDE, ImageInputError, load_image
from srgan_core.streaming import receptive_radius
from srgan_core.upscale import Upscaler, bicubic


def tiny_generator(seed: int = 0, **config) -> Generator:
    """A small random-init generator whose BatchNorms are not the identity."""
    torch.manual_seed(seed)
    model = Generator(GeneratorConfig(**{"channels": 8, "blocks": 2, **config}))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine every OpenMP barrier
    can wait a whole time slice for it: one thread keeps these tests fast and their time steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> Generator:
    return tiny_generator()


@pytest.fixture(scope="module")
def upscaler(model) -> Upscaler:
    return Upscaler(model)


def whole_image(model: Generator, x: torch.Tensor) -> torch.Tensor:
    """The reference: one eager forward pass of the unmodified model over the whole image."""
    with torch.no_grad():
        return model(x).clamp(0, 1)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t[0].permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)


def noise(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    a = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
    return Image.fromarray(a[:, :, 0] if bands == 1 else a, mode)


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, rows: bytes | None = None) -> bytes:
    """A PNG written by hand, so tests can make files Pillow will not write (16-bit RGB, lying headers)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    data = zlib.compress(rows if rows is not None else b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("config", [dict(blocks=2), dict(blocks=3, scale=2), dict(blocks=1, scale=8), dict(blocks=0)])
def test_receptive_radius_is_the_gradient_support(config):
    """The radius computed from the config is exactly how far an output pixel looks."""
    cfg = GeneratorConfig(channels=4, **config)
    torch.manual_seed(0)
    model = Generator(cfg).eval()
    r, s = receptive_radius(cfg), cfg.scale
    n = 2 * r + 5
    c = n // 2
    x = torch.rand(1, 3, n, n, requires_grad=True)
    y = model(x)
    reach = 0
    for phase in range(s):  # every position inside the output block of input pixel c
        (g,) = torch.autograd.grad(y[0, :, c * s + phase, c * s + phase].sum(), x, retain_graph=True)
        rows = g.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
        reach = max(reach, int((rows - c).abs().max()))
    assert reach == r


@pytest.mark.parametrize("tile,band", [(1024, None), (1024, 1), (1024, 3), (16, 2), (9, 7), (5, 100)])
@pytest.mark.parametrize("size", [(1, 1), (29, 37), (1, 19), (23, 1), (64, 48)])
def test_tiled_equals_whole_image(model, tile, band, size):
    """Strips, bands and every edge case of the row stream give the whole-image numbers."""
    w, h = size
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(w * 100 + h))
    out = Upscaler(model, tile=tile, band=band).upscale_tensor(x)
    ref = whole_image(model, x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() < 1e-5


def test_tiled_image_within_one_level_of_whole_image(model):
    """The contract's form of the check: 8-bit images, every pixel within 1/255."""
    image = noise(70, 45)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    ref = to_uint8(whole_image(model, x))
    for tile, band in [(1024, None), (20, 4), (33, 1)]:
        out = np.asarray(Upscaler(model, tile=tile, band=band).upscale(image))
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_overlap_below_the_radius_shows_at_the_seams():
    """The check above can fail: strips overlapping by one pixel less than the radius differ."""
    model = tiny_generator(blocks=0, channels=4)
    r = receptive_radius(model.config)
    x = torch.rand(1, 3, 24, 60, generator=torch.Generator().manual_seed(1))
    ref = whole_image(model, x)
    exact = Upscaler(model, tile=16, overlap=r).upscale_tensor(x)
    short = Upscaler(model, tile=16, overlap=r - 1).upscale_tensor(x)
    assert (exact - ref).abs().max().item() < 1e-5
    assert (short - ref).abs().max().item() > 1e-4


def test_batchnorm_folding_matches_the_model_and_leaves_it_untouched():
    model = tiny_generator(seed=3).train()  # even a model left in train mode is read with its running stats
    before = {k: v.clone() for k, v in model.state_dict().items()}
    up = Upscaler(model)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    x = torch.rand(1, 3, 21, 17, generator=torch.Generator().manual_seed(2))
    ref = whole_image(model.eval(), x)
    assert (up.upscale_tensor(x) - ref).abs().max().item() < 1e-5
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_model_without_batchnorm():
    model = tiny_generator(batch_norm=False)
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(4))
    assert (Upscaler(model).upscale_tensor(x) - whole_image(model, x)).abs().max().item() < 1e-5


def test_progress_reports_every_step(model):
    calls = []
    up = Upscaler(model, tile=16, band=8)
    up.upscale(noise(40, 30), progress=lambda done, total: calls.append((done, total)))
    total = up.plan(40, 30)
    assert total == 3 * 4  # three column strips, four bands of 8 rows each
    assert calls == [(i, total) for i in range(total + 1)]


# ----------------------------------------------------------------------------- image modes


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_output_size_follows_the_scale(scale):
    up = Upscaler(tiny_generator(scale=scale, blocks=1))
    for w, h in [(1, 1), (7, 5), (13, 2)]:
        out = up.upscale(noise(w, h))
        assert out.size == (w * scale, h * scale) and out.mode == "RGB"
        assert bicubic(noise(w, h), scale).size == out.size


def test_rgba_keeps_bicubic_alpha(upscaler):
    image = noise(19, 11, "RGBA", seed=5)
    out = upscaler.upscale(image)
    assert out.mode == "RGBA" and out.size == (76, 44)
    alpha = image.getchannel("A").resize(out.size, Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(alpha))
    # colour comes from the model on the RGB bands alone
    assert np.array_equal(np.asarray(out.convert("RGB")), np.asarray(upscaler.upscale(image.convert("RGB"))))
    bic = bicubic(image)
    assert bic.mode == "RGBA" and np.array_equal(np.asarray(bic.getchannel("A")), np.asarray(alpha))


def test_la_becomes_rgba(upscaler):
    image = noise(9, 6, "LA", seed=6)
    out = upscaler.upscale(image)
    assert out.mode == "RGBA"
    grey = image.getchannel("L").convert("RGB")
    assert np.array_equal(np.asarray(out.convert("RGB")), np.asarray(upscaler.upscale(grey)))
    assert bicubic(image).mode == "RGBA"


def test_grey_and_bilevel_run_as_rgb(upscaler):
    grey = noise(10, 8, "L", seed=7)
    out = upscaler.upscale(grey)
    assert out.mode == "RGB"
    assert np.array_equal(np.asarray(out), np.asarray(upscaler.upscale(grey.convert("RGB"))))
    assert upscaler.upscale(grey.convert("1")).size == (40, 32)


def test_palette_with_and_without_transparency(upscaler):
    rgb = noise(12, 9, seed=8)
    pal = rgb.quantize(16)
    assert upscaler.upscale(pal).mode == "RGB"
    assert np.array_equal(np.asarray(upscaler.upscale(pal)), np.asarray(upscaler.upscale(pal.convert("RGB"))))
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    opened = load_image(buf.getvalue())
    assert opened.mode == "P"
    out = upscaler.upscale(opened)
    assert out.mode == "RGBA"
    transparent = np.asarray(opened) == 0
    assert transparent.any()
    alpha = Image.fromarray(np.where(transparent, 0, 255).astype(np.uint8)).resize(out.size, Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(alpha))


def test_sixteen_bit_grey_is_scaled_not_clipped(model, upscaler):
    grey = noise(11, 7, "L", seed=9)
    wide = (np.asarray(grey).astype(np.uint16) * 257).astype(np.uint16)  # v/255 == 257v/65535
    buf = io.BytesIO()
    Image.fromarray(wide).save(buf, "PNG")
    opened = load_image(buf.getvalue())
    assert opened.mode.startswith("I")
    a = np.asarray(upscaler.upscale(opened)).astype(int)
    b = np.asarray(upscaler.upscale(grey)).astype(int)
    assert np.abs(a - b).max() <= 1
    banded = np.asarray(Upscaler(model, band=2).upscale(opened)).astype(int)
    assert np.abs(banded - a).max() <= 1  # 16-bit pixels converted to float band by band
    assert bicubic(opened).mode == "RGB" and np.abs(np.asarray(bicubic(opened)).astype(int) - np.asarray(bicubic(grey))).max() <= 1


def test_sixteen_bit_rgb_png(upscaler):
    rng = np.random.default_rng(10)
    pixels = rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    opened = load_image(png_bytes(5, 6, 16, 2, rows))
    assert opened.size == (5, 6)
    # Pillow keeps the high byte of each sample
    assert np.array_equal(np.asarray(opened.convert("RGB")), (pixels >> 8).astype(np.uint8))
    out = upscaler.upscale(opened)
    assert out.mode == "RGB" and out.size == (20, 24)


def test_cmyk_runs_on_its_rgb_conversion(upscaler):
    cmyk = noise(8, 8, "CMYK", seed=11)
    assert np.array_equal(np.asarray(upscaler.upscale(cmyk)), np.asarray(upscaler.upscale(cmyk.convert("RGB"))))
    buf = io.BytesIO()
    cmyk.save(buf, "JPEG")
    assert upscaler.upscale(load_image(buf.getvalue())).mode == "RGB"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_applied(upscaler, fmt, tmp_path):
    image = noise(6, 4, seed=12)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / f"rotated.{fmt.lower()}"
    image.save(path, fmt, exif=exif)
    loaded = load_image(path)
    assert loaded.size == (4, 6)
    assert loaded.getexif().get(0x0112) is None
    raw = Image.open(path)  # not through load_image: the Upscaler turns it upright itself
    assert raw.size == (6, 4)
    assert upscaler.upscale(raw).size == (16, 24)
    assert bicubic(raw).size == (16, 24)
    assert np.array_equal(np.asarray(upscaler.upscale(raw)), np.asarray(upscaler.upscale(ImageOps.exif_transpose(raw))))


def test_bicubic_is_pillow_bicubic():
    image = noise(13, 9, seed=13)
    ref = image.resize((52, 36), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(bicubic(image, 4)), np.asarray(ref))


# ----------------------------------------------------------------------------- sources and limits


def test_upscaler_from_weights_files(tmp_path):
    from srgan_core.weights import load_generator, save_generator

    model = tiny_generator(seed=14)
    path = save_generator(model, tmp_path / "tiny_x4", description="test")
    loaded = load_generator(path)
    for source in (loaded, str(path)):
        up = Upscaler(source)
        assert up.name == "tiny_x4" and up.scale == 4
    x = torch.rand(1, 3, 9, 9)
    assert (Upscaler(loaded).upscale_tensor(x) - whole_image(model, x)).abs().max().item() < 1e-5


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="tile"):
        Upscaler(model, tile=0)
    with pytest.raises(ValueError, match="overlap"):
        Upscaler(model, overlap=-1)
    with pytest.raises(TypeError, match="Generator"):
        Upscaler(42)


def test_upscale_refuses_images_over_the_limit(upscaler):
    with pytest.raises(ImageInputError, match=f"{MAX_INPUT_SIDE} px a side"):
        upscaler.upscale(Image.new("L", (MAX_INPUT_SIDE + 1, 2)))
    x8 = Upscaler(tiny_generator(scale=8, blocks=0))
    side = int(np.sqrt(MAX_INPUT_PIXELS)) // 2 + 8
    with pytest.raises(ImageInputError, match="x8 model"):
        x8.upscale(Image.new("L", (side, side)))


# ----------------------------------------------------------------------------- load_image: bad input


def expect_error(src, *fragments: str) -> str:
    with pytest.raises(ImageInputError) as info:
        load_image(src)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_good_files_load_fully(tmp_path):
    path = tmp_path / "ok.png"
    noise(5, 3).save(path)
    image = load_image(path)
    assert image.size == (5, 3) and image.mode == "RGB"
    assert np.asarray(image).shape == (3, 5, 3)  # decoded, and usable after the file is closed
    with open(path, "rb") as f:
        assert load_image(f).size == (5, 3)
    assert load_image(path.read_bytes()).size == (5, 3)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    expect_error(path, str(path), "empty")
    expect_error(b"", "empty")


def test_text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    expect_error(path, str(path), "not an image")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, fmt):
    path = tmp_path / f"cut.{fmt.lower()}"
    buf = io.BytesIO()
    noise(64, 64, seed=15).save(buf, fmt)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    expect_error(path, str(path), "truncated or corrupt")


def test_missing_file_and_folder(tmp_path):
    expect_error(tmp_path / "nope.png", "no such file")
    expect_error(tmp_path, "folder")


def test_too_small(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(path)
    expect_error(path, str(path), "1x1", f"at least {MIN_INPUT_SIDE} px")


def test_over_the_side_limit(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("L", (MAX_INPUT_SIDE + 1, 2)).save(path)
    expect_error(path, str(path), f"{MAX_INPUT_SIDE + 1}x2", "too large")


def test_over_the_pixel_limit_is_refused_from_the_header(tmp_path):
    """A header claiming 3000x3000 over a few bytes of data: refused as too large, not decoded
    (decoding would fail as truncated)."""
    path = tmp_path / "liar.png"
    path.write_bytes(png_bytes(3000, 3000, 8, 2))
    assert 3000 * 3000 > MAX_INPUT_PIXELS
    expect_error(path, str(path), "3000x3000", "too large")


def test_decompression_bomb_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(100_000, 100_000, 8, 2))
    expect_error(path, str(path), "decompression bomb: its header claims 10,000,000,000 pixels; inputs may have at most 2,073,600")
    path.write_bytes(png_bytes(10_000, 10_000, 8, 0))  # over Pillow's warning level only
    expect_error(path, str(path), "decompression bomb: its header claims 100,000,000 pixels")


def test_bicubic_skip_on_8_bit_images_in_bands():
    model = tiny_generator(seed=18, bicubic_skip=True)
    image = noise(21, 17, seed=19)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    ref = to_uint8(whole_image(model, x)).astype(int)
    for band in (None, 3):
        out = np.asarray(Upscaler(model, tile=8, band=band).upscale(image)).astype(int)
        assert np.abs(out - ref).max() <= 1


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_bicubic_skip_generators_are_streamed_exactly(scale):
    model = tiny_generator(seed=16, scale=scale, blocks=1, bicubic_skip=True)
    x = torch.rand(1, 3, 23, 19, generator=torch.Generator().manual_seed(5))
    ref = whole_image(model, x)
    for tile, band in [(1024, None), (1024, 1), (8, 3)]:
        assert (Upscaler(model, tile=tile, band=band).upscale_tensor(x) - ref).abs().max().item() < 1e-5


def test_activations_stay_channels_last(model, monkeypatch):
    """A silent fall back to NCHW would cost speed, not correctness: check the layout directly."""
    import torch.nn.functional as F

    seen = []
    real_conv = F.conv2d

    def spy(x, *args, **kwargs):
        seen.append(x.is_contiguous(memory_format=torch.channels_last))
        return real_conv(x, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", spy)
    Upscaler(model, band=4).upscale_tensor(torch.rand(1, 3, 13, 11))
    assert seen and all(seen)


def test_damaged_exif_does_not_stop_the_image(upscaler):
    buf = io.BytesIO()
    noise(8, 6, seed=17).save(buf, "JPEG", exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05\x01\x12")
    with pytest.warns(UserWarning):  # Pillow says the EXIF block is corrupt; the pixels are fine
        image = load_image(buf.getvalue())
        out = upscaler.upscale(image)
    assert image.size == (8, 6) and out.size == (32, 24)
