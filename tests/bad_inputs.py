"""A corpus of bad and awkward inputs, made on the spot (nothing is downloaded).

Users drop anything into a public demo: empty files, text with an image suffix, cut-off uploads,
16-bit scans, CMYK print files, phone photos that rely on EXIF rotation, animations, vector
drawings, PDFs, and files built to exhaust memory. Each case says what a correct program does
with it: produce an image of the right size, or refuse with a clear message.

    python tests/bad_inputs.py OUT_DIR     # writes the files and OUT_DIR/manifest.json

Importable too: `write_corpus(folder)` returns the cases; `PARAM_CASES` lists the bad numeric
parameters (NaN, infinite, negative, a tile of 0) for the CLI and the app's endpoints.
"""
from __future__ import annotations

import io
import json
import math
import struct
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

SCALE = 4
# Used only when srgan_core.upscale cannot be imported: far above any sensible limit, so the
# "over the limit" files stay over it whatever the library settles on.
FALLBACK_MAX_PIXELS = 400_000_000
FALLBACK_MAX_SIDE = 20_000

IMAGE, REFUSED, EITHER = "image", "refused", "either"


@dataclass(frozen=True)
class FileCase:
    """One input file and what a correct program does with it.

    expect: IMAGE (an upscaled image of `size` * SCALE, with alpha when `alpha`), REFUSED (a clear
    message, no output), or EITHER (both are reasonable, e.g. the first frame of an animation).
    `size` is the size a viewer shows (after EXIF rotation)."""

    name: str
    what: str
    expect: str
    size: tuple[int, int] | None = None
    alpha: bool = False


@dataclass(frozen=True)
class ParamCase:
    """A bad numeric parameter for one path: a CLI command (`args` are its options; `upscale` gets
    `IN OUT` before them) or an app endpoint (`args` are the endpoint's inputs, in order; None is
    an emptied number box). For the CLI, the last option in `args` is the bad one."""

    name: str
    what: str
    path: str  # "cli" or "app"
    args: tuple[Any, ...]
    endpoint: str | None = None  # the app endpoint, or the CLI command
    expect: str = REFUSED


def _noise(w: int, h: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _rgb(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(_noise(w, h, 3, seed))


def _encoded(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    """A PNG written by hand: Pillow cannot write 48-bit RGB, nor lie about its own size."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _rgb16_png(w: int, h: int) -> bytes:
    ramp = np.linspace(0, 65535, w * h * 3).astype(">u2").reshape(h, w * 3)
    rows = b"".join(b"\x00" + row.tobytes() for row in ramp)  # filter type 0 on every row
    return _png(w, h, 16, 2, zlib.compress(rows))


def _bomb_png(side: int = 100_000) -> bytes:
    """Header claims side x side RGB (30 GB decoded); the body is a few KB of deflated zeros."""
    return _png(side, side, 8, 2, zlib.compress(b"\x00" * (1 << 20), 9))


def _bomb_jpeg(side: int = 65_500) -> bytes:
    """A real 16x16 JPEG whose frame header (SOF0) is patched to claim side x side."""
    data = bytearray(_encoded(_rgb(16, 16), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, side, side)  # height, width
    return bytes(data)


def _exif_rotated_jpeg() -> bytes:
    """Stored 48x24; orientation 6 says: show it rotated, 24 wide and 48 tall (phone portrait)."""
    image = _rgb(48, 24, seed=3)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encoded(image, "JPEG", quality=90, exif=exif)


def _animated_gif() -> bytes:
    frames = [_rgb(20, 16, seed=s).convert("P") for s in range(3)]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _palette_with_transparency() -> bytes:
    image = Image.fromarray((_noise(24, 20, 1) // 32).astype(np.uint8)).convert("P")
    image.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    return _encoded(image, "PNG", transparency=0)


def _over_pixel_limit(side: int) -> bytes:
    # 1-bit pixels compress to almost nothing, so the file is small while the image is not.
    return _encoded(Image.new("1", (side, side)), "PNG")


def _float_tiff() -> bytes:
    values = np.linspace(-0.5, 1.5, 32 * 24, dtype=np.float32).reshape(24, 32)
    return _encoded(Image.fromarray(values), "TIFF")


SVG = b"""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">
  <circle cx="32" cy="32" r="24" fill="tomato"/>
</svg>
"""

HTML = b"<!doctype html><html><body><img src='cat.jpg'></body></html>\n"


def _limits() -> tuple[int, int]:
    """The library's hard limits, or generous stand-ins when it is not importable."""
    try:
        from srgan_core.images import MAX_INPUT_PIXELS, MAX_INPUT_SIDE
    except ImportError:
        return FALLBACK_MAX_PIXELS, FALLBACK_MAX_SIDE
    return int(MAX_INPUT_PIXELS), int(MAX_INPUT_SIDE)


def _within(size: tuple[int, int], max_pixels: int, max_side: int) -> bool:
    return size[0] * size[1] <= max_pixels and max(size) <= max_side


def file_cases(max_pixels: int | None = None, max_side: int | None = None) -> list[tuple[FileCase, Callable[[], bytes]]]:
    """Every file case with the function that makes its bytes."""
    if max_pixels is None or max_side is None:
        max_pixels, max_side = _limits()
    over_side = math.isqrt(max_pixels) + 64
    long_side = max_side + 1  # one pixel over the side limit, a single row: few pixels in all
    tall = IMAGE if _within((1, 10_000), max_pixels, max_side) else REFUSED
    rgba = Image.fromarray(_noise(20, 12, 4, seed=5))
    la = Image.fromarray(_noise(18, 14, 2, seed=6))
    gray16 = Image.fromarray(np.linspace(0, 65535, 30 * 20).astype(np.uint16).reshape(20, 30))

    def png_half() -> bytes:
        good = _encoded(_rgb(64, 64, seed=1), "PNG")
        return good[: len(good) // 2]

    def jpeg_half() -> bytes:
        good = _encoded(_rgb(64, 64, seed=2), "JPEG", quality=90)
        return good[: len(good) // 2]

    cases: list[tuple[FileCase, Callable[[], bytes]]] = [
        (FileCase("zero_bytes.png", "an empty file", REFUSED), lambda: b""),
        (FileCase("text.png", "plain text with a .png suffix", REFUSED), lambda: b"this is not an image\n" * 4),
        (FileCase("page.jpg", "an HTML page with a .jpg suffix", REFUSED), lambda: HTML),
        (FileCase("random_bytes.png", "4 KB of random bytes", REFUSED),
         lambda: np.random.default_rng(9).integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        (FileCase("truncated.png", "the first half of a 64x64 PNG", REFUSED), png_half),
        (FileCase("truncated.jpg", "the first half of a 64x64 JPEG", REFUSED), jpeg_half),
        (FileCase("zero_size.png", "a PNG header that claims 0x0 pixels", REFUSED),
         lambda: _png(0, 0, 8, 2, zlib.compress(b""))),
        (FileCase("1x1.png", "a single pixel (upscaled, or refused as too small)", EITHER, (1, 1)),
         lambda: _encoded(_rgb(1, 1), "PNG")),
        (FileCase("2x2.png", "four pixels", IMAGE, (2, 2)), lambda: _encoded(_rgb(2, 2), "PNG")),
        (FileCase("1x10000.png", "one pixel wide, 10,000 tall", tall, (1, 10_000)),
         lambda: _encoded(_rgb(1, 10_000), "PNG")),
        (FileCase("10000x1.png", "10,000 wide, one pixel tall", tall, (10_000, 1)),
         lambda: _encoded(_rgb(10_000, 1), "PNG")),
        (FileCase("rgb16.png", "16 bits per channel RGB (48-bit PNG)", IMAGE, (24, 16)), lambda: _rgb16_png(24, 16)),
        (FileCase("gray16.png", "16-bit grayscale (I;16)", IMAGE, (30, 20)), lambda: _encoded(gray16, "PNG")),
        (FileCase("palette_transparency.png", "palette image with a transparent index", IMAGE, (24, 20), True),
         _palette_with_transparency),
        (FileCase("la.png", "grayscale with alpha (LA)", IMAGE, (18, 14), True), lambda: _encoded(la, "PNG")),
        (FileCase("rgba.png", "RGB with alpha", IMAGE, (20, 12), True), lambda: _encoded(rgba, "PNG")),
        (FileCase("bilevel.png", "1-bit black and white", IMAGE, (33, 17)),
         lambda: _encoded(_rgb(33, 17).convert("1"), "PNG")),
        (FileCase("cmyk.jpg", "a CMYK JPEG (print workflow)", IMAGE, (32, 24)),
         lambda: _encoded(_rgb(32, 24).convert("CMYK"), "JPEG", quality=90)),
        (FileCase("exif_rotated.jpg", "stored 48x24 with EXIF orientation 6 (shown 24x48)", IMAGE, (24, 48)),
         _exif_rotated_jpeg),
        (FileCase("grayscale.jpg", "a grayscale JPEG", IMAGE, (26, 18)),
         lambda: _encoded(_rgb(26, 18).convert("L"), "JPEG", quality=90)),
        (FileCase("progressive.jpg", "a progressive JPEG", IMAGE, (40, 30)),
         lambda: _encoded(_rgb(40, 30), "JPEG", quality=85, progressive=True)),
        (FileCase("png_named.jpg", "a PNG with a .jpg suffix", IMAGE, (21, 13)), lambda: _encoded(_rgb(21, 13), "PNG")),
        (FileCase("photo with spaces é 图.png", "spaces and non-ASCII characters in the name", IMAGE, (15, 11)),
         lambda: _encoded(_rgb(15, 11), "PNG")),
        (FileCase("animated.gif", "a 3-frame animated GIF (first frame, or refused)", EITHER, (20, 16)),
         _animated_gif),
        (FileCase("image.webp", "a lossy WebP", IMAGE, (28, 20)), lambda: _encoded(_rgb(28, 20), "WEBP", quality=80)),
        (FileCase("image.tiff", "an LZW-compressed RGB TIFF", IMAGE, (22, 18)),
         lambda: _encoded(_rgb(22, 18), "TIFF", compression="tiff_lzw")),
        (FileCase("image.bmp", "a Windows bitmap", IMAGE, (19, 23)), lambda: _encoded(_rgb(19, 23), "BMP")),
        (FileCase("float.tiff", "32-bit float TIFF, values -0.5..1.5", EITHER, (32, 24)), _float_tiff),
        (FileCase("bomb.png", "PNG header claims 100,000 x 100,000 (a decompression bomb)", REFUSED), _bomb_png),
        (FileCase("bomb.jpg", "JPEG header claims 65,500 x 65,500", REFUSED), _bomb_jpeg),
        (FileCase("over_pixel_limit.png", f"{over_side:,} x {over_side:,}: over the pixel limit ({max_pixels:,})",
                  REFUSED), lambda: _over_pixel_limit(over_side)),
        (FileCase("over_side_limit.png", f"{long_side:,} x 1: over the side limit ({max_side:,})", REFUSED),
         lambda: _encoded(Image.new("L", (long_side, 1), 128), "PNG")),
        (FileCase("drawing.svg", "an SVG vector drawing", REFUSED), lambda: SVG),
        (FileCase("document.pdf", "a one-page PDF", REFUSED), lambda: _encoded(_rgb(32, 32), "PDF")),
    ]
    return cases


NAN, INF = float("nan"), float("inf")
# /train_toygan inputs: target, epochs, lr, hidden, seed. /ks_check: source, a, b, fraction, n, seed.
PARAM_CASES: list[ParamCase] = [
    ParamCase("tile=0", "a tile size of 0", "cli", ("--tile", "0"), "upscale"),
    ParamCase("tile=-64", "a negative tile size", "cli", ("--tile", "-64"), "upscale"),
    ParamCase("tile=nan", "a tile size of NaN", "cli", ("--tile", "nan"), "upscale"),
    ParamCase("tile=inf", "an infinite tile size", "cli", ("--tile", "inf"), "upscale"),
    ParamCase("tile=1e9", "a tile far larger than the image", "cli", ("--tile", "1000000000"), "upscale", IMAGE),
    # toy GAN runs are kept short (--epochs 200) in case a bad value is accepted
    ParamCase("toygan lr=nan", "toy GAN learning rate NaN", "cli", ("--epochs", "200", "--lr", "nan"), "toygan"),
    ParamCase("toygan lr=inf", "toy GAN learning rate infinite", "cli", ("--epochs", "200", "--lr", "inf"), "toygan"),
    ParamCase("toygan lr=-1", "toy GAN learning rate negative", "cli", ("--epochs", "200", "--lr", "-1"), "toygan"),
    ParamCase("toygan sigma=nan", "target sd NaN", "cli", ("--epochs", "200", "--sigma", "nan"), "toygan"),
    ParamCase("toygan mu=-inf", "target mean minus infinity", "cli", ("--epochs", "200", "--mu=-inf"), "toygan"),
    ParamCase("toygan epochs=-5", "negative epochs", "cli", ("--epochs", "-5"), "toygan"),
    ParamCase("toygan batch=0", "a batch of 0", "cli", ("--epochs", "200", "--batch-size", "0"), "toygan"),
    ParamCase("anomaly n=-3", "negative sample size", "cli", ("--noise", "beta", "--n", "-3"), "anomaly"),
    ParamCase("anomaly a=nan", "Beta a NaN", "cli", ("--noise", "beta", "--a", "nan"), "anomaly"),
    ParamCase("anomaly fraction=inf", "drift share infinite", "cli", ("--noise", "drift", "--fraction", "inf"),
              "anomaly"),
    ParamCase("anomaly alpha=nan", "significance level NaN", "cli", ("--noise", "beta", "--alpha", "nan"), "anomaly"),
    ParamCase("anomaly trials=0", "zero trials", "cli", ("--noise", "beta", "--trials", "0"), "anomaly"),
    ParamCase("epochs=nan", "toy GAN epochs NaN", "app", ("normal", NAN, 1e-3, 50, 0), "/train_toygan"),
    ParamCase("epochs=inf", "toy GAN epochs infinite", "app", ("normal", INF, 1e-3, 50, 0), "/train_toygan"),
    ParamCase("epochs=-100", "toy GAN epochs negative", "app", ("normal", -100, 1e-3, 50, 0), "/train_toygan"),
    ParamCase("lr=nan", "toy GAN learning rate NaN", "app", ("normal", 200, NAN, 50, 0), "/train_toygan"),
    ParamCase("lr=inf", "toy GAN learning rate infinite", "app", ("normal", 200, INF, 50, 0), "/train_toygan"),
    ParamCase("lr=-0.001", "toy GAN learning rate negative", "app", ("normal", 200, -1e-3, 50, 0), "/train_toygan"),
    ParamCase("hidden=-8", "toy GAN hidden units negative", "app", ("normal", 200, 1e-3, -8, 0), "/train_toygan"),
    ParamCase("seed=nan", "toy GAN seed NaN", "app", ("normal", 200, 1e-3, 50, NAN), "/train_toygan"),
    ParamCase("lr=null", "toy GAN learning rate left empty", "app", ("normal", 200, None, 50, 0), "/train_toygan"),
    ParamCase("n=nan", "KS check sample size NaN", "app", ("beta", 1, 5, 0.5, NAN, 0), "/ks_check"),
    ParamCase("n=inf", "KS check sample size infinite", "app", ("beta", 1, 5, 0.5, INF, 0), "/ks_check"),
    ParamCase("n=-50", "KS check sample size negative", "app", ("beta", 1, 5, 0.5, -50, 0), "/ks_check"),
    ParamCase("a=nan", "Beta a NaN", "app", ("beta", NAN, 5, 0.5, 100, 0), "/ks_check"),
    ParamCase("b=-1", "Beta b negative", "app", ("beta", 1, -1, 0.5, 100, 0), "/ks_check"),
    ParamCase("fraction=inf", "drift fraction infinite", "app", ("drift", 1, 5, INF, 100, 0), "/ks_check"),
    ParamCase("seed=-1", "KS check seed negative", "app", ("beta", 1, 5, 0.5, 100, -1), "/ks_check", EITHER),
    ParamCase("seed=null", "KS check seed left empty", "app", ("beta", 1, 5, 0.5, 100, None), "/ks_check", EITHER),
]


def write_corpus(folder: str | Path, max_pixels: int | None = None, max_side: int | None = None) -> list[FileCase]:
    """Write every file case into `folder` (created if needed) plus a manifest.json describing
    all cases, files and parameters; returns the file cases."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for case, make in file_cases(max_pixels, max_side):
        (folder / case.name).write_bytes(make())
        cases.append(case)
    manifest = {
        "scale": SCALE,
        "files": [asdict(c) for c in cases],
        "params": [{**asdict(p), "args": [_json_number(a) for a in p.args]} for p in PARAM_CASES],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return cases


def _json_number(value: Any) -> Any:
    """NaN and infinities as strings, so the manifest stays strict JSON."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__.strip().splitlines()[0] + "\nusage: python tests/bad_inputs.py OUT_DIR", file=sys.stderr)
        return 2
    cases = write_corpus(argv[0])
    for c in cases:
        size = (Path(argv[0]) / c.name).stat().st_size
        print(f"{c.name:<30} {size:>9,} B  {c.expect:<8} {c.what}")
    print(f"{len(cases)} files and {len(PARAM_CASES)} parameter cases; manifest.json in {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
