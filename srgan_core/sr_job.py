"""One super-resolution request as a web page serves it: estimate, stream, score, save.

The app is a thin layer over this module, which needs no web framework:

- `RateMeter` says about how long a job will take before it starts (from the jobs this process
  has run, per model), so a visitor with a large image knows whether to wait.
- `stream_upscale` runs the Upscaler in a worker thread and hands out the picture as it grows:
  the bicubic enlargement with the finished rows of the model's output pasted over it, as soon
  as the first rows are done and then every `every_s` seconds, then the finished image. The
  first rows reach the page seconds before the last ones are computed.
- `score` puts bicubic and the models against the original (Simulate).
- `write_image` saves a result under a name no other request uses and renames it into place:
  two identical requests at once each get a whole file, never one the other is rewriting.
  The download and the zoomed crops are PNG: lossless, since their fine detail is what is
  compared. The slider's two full-size views are JPEG at quality 95 without chroma
  subsampling: no visible difference at 100 %, ~20x faster to encode and ~4x smaller to send,
  so showing a result (or a job's progress) costs little next to computing it.
"""
from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from PIL import Image

from srgan_core import compare, degrade, interpolate, weights
from srgan_core.data import modcrop
from srgan_core.metrics import psnr, ssim
from srgan_core.upscale import MAX_INPUT_PIXELS, MAX_INPUT_SIDE, Upscaler, bicubic, load_image

PNG_LEVEL = 1  # zlib level: a 1024x1024 photo in ~40 ms instead of ~300 ms at Pillow's 6, ~10 % larger
JPEG_QUALITY = 95  # the slider's views (with 4:4:4 colour): no visible loss, a fraction of a PNG's cost
FIRST_ROWS_POLL_S = 0.2  # how often a running job looks for its first finished rows
PREVIEW_SIDE = 1280  # partial results are sent at most this large: they are looked at, not downloaded
MIN_MEASURED_PIXELS = 128 * 128  # smaller runs do not teach the RateMeter anything
KEEP_S = 3600  # results are kept this long: a long-running server must not fill its disk
SWEEP_EVERY_S = 60  # how often the results folder is swept
# what the Upscale tab says above its buttons
HELP = f"""**Upscale ×4** makes your image four times larger. **Simulate ×4** shrinks it four times first, upscales it
back and scores each method against the original. Inputs up to {MAX_INPUT_SIDE:,} px a side and {MAX_INPUT_PIXELS / 1e6:.1f} MP.
Which model: **Real-photo SR** (the default) for camera and web photos, JPEG and noise included; **SRGAN** (sharp texture,
with a GAN-strength slider) and **SRResNet** (the most faithful) for clean renders, screenshots and lossless images."""


def open_upload(payload: dict | str | Path | None) -> tuple[Image.Image, str]:
    """An uploaded file (a path, or a {path, orig_name} dict as web forms send it) as a checked
    image (`load_image`: format, size limits, decompression bombs) and the stem of the name the
    visitor knows it by, which also replaces the server's path in any message."""
    if payload is None:
        raise ValueError("Upload an image first: drag and drop, paste, or pick an example.")
    path = payload.get("path") if isinstance(payload, dict) else payload
    name = (payload.get("orig_name") if isinstance(payload, dict) else None) or Path(str(path)).name
    try:
        return load_image(path), Path(name).stem
    except ValueError as exc:
        raise ValueError(str(exc).replace(str(path), name)) from None


def write_image(image: Image.Image, folder: str | Path, name: str) -> str:
    """Save `image` as folder/<unique>/<name> (PNG, or JPEG for a name ending in .jpg) and return
    the path. An image with transparency stays PNG whatever the name says (JPEG has no alpha:
    a logo's transparent background would turn into whatever colour hides under it).

    Written under a temporary name in the same folder and renamed into place, so the file at
    the returned path is always complete. Old results are swept away on the way (`sweep`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sweep(folder)
    if name.endswith(".jpg") and (image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info):
        name = name[: -len(".jpg")] + ".png"
    target = folder / uuid.uuid4().hex / name
    target.parent.mkdir()
    partial = target.with_name(f".{target.name}.partial")
    if target.suffix == ".jpg":
        image.convert("RGB").save(partial, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    else:
        image.save(partial, format="PNG", compress_level=PNG_LEVEL)
    os.replace(partial, target)
    return str(target)


_last_sweep = {"at": float("-inf")}
_sweep_lock = threading.Lock()


def sweep(folder: str | Path, now: float | None = None, force: bool = False) -> int:
    """Remove result folders older than KEEP_S, so a long-running server does not fill its disk;
    returns how many. Runs at most once per SWEEP_EVERY_S (a busy server's folder holds thousands
    of results: scanning it for every file written would cost more than writing the file), and a
    folder that another request removes meanwhile is not an error."""
    now = time.time() if now is None else now
    with _sweep_lock:
        if not force and now - _last_sweep["at"] < SWEEP_EVERY_S:
            return 0
        _last_sweep["at"] = now
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False) and now - entry.stat().st_mtime > KEEP_S:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        except OSError:  # removed by a concurrent sweep
            pass
    return removed


# Two threads that write result files side by side: Pillow releases the GIL while it compresses,
# so the four PNGs of a finished job take about half the time. (Threads start on first use.)
ENCODER = ThreadPoolExecutor(2, thread_name_prefix="sr-encode")


class RateMeter:
    """Seconds per input pixel, per model, from the jobs already run (thread-safe).

    The first estimate for a model comes from `calibrate` (a small timed run); every finished job
    then moves it towards what was measured, so a busy server's estimates follow its load."""

    def __init__(self, weight: float = 0.5) -> None:
        self._rates: dict[str, float] = {}
        self._lock = threading.Lock()
        self.weight = weight

    def update(self, model: str, pixels: int, seconds: float) -> None:
        if pixels < MIN_MEASURED_PIXELS:  # mostly per-call overhead: it would inflate the rate
            return
        rate = seconds / pixels
        with self._lock:
            old = self._rates.get(model)
            self._rates[model] = rate if old is None else (1 - self.weight) * old + self.weight * rate

    def calibrate(self, up: Upscaler, sides: tuple[int, int] = (64, 192)) -> None:
        """Time two small squares once (after a warm-up call), unless this model has a rate:
        the difference is the cost per pixel without the per-call overhead, which would make a
        single small run predict minutes for a large image."""
        if up.name in self._rates:
            return
        times = []
        for side in (16, *sides):
            t0 = time.perf_counter()
            up.upscale(Image.new("RGB", (side, side), (128, 128, 128)))
            times.append(time.perf_counter() - t0)
        a, b = sides
        with self._lock:
            self._rates.setdefault(up.name, max(times[2] - times[1], 1e-6) / (b * b - a * a))

    def estimate(self, model: str, pixels: int) -> float | None:
        """Seconds for an input of `pixels` pixels, or None before any measurement."""
        with self._lock:
            rate = self._rates.get(model)
        return None if rate is None else rate * pixels


@dataclass
class Frame:
    """What `stream_upscale` hands out: the picture so far, the share of rows done, and the
    seconds since the start. `done` is True for the finished output (with alpha, if any)."""

    image: Image.Image
    fraction: float
    elapsed_s: float
    done: bool


def stream_upscale(up: Upscaler, image: Image.Image, base: Image.Image, every_s: float = 1.0,
                   meter: RateMeter | None = None) -> Iterator[Frame]:
    """Upscale `image`, yielding a partial Frame as soon as the first rows are done and then
    every `every_s` seconds while new rows arrive and the end is more than `every_s` away
    (`base`, the same size as the output, fills the rest), then the finished Frame.

    The model runs in a worker thread so this generator can hand out frames while it computes;
    an error in the model is raised here. `meter`, when given, learns from the finished run."""
    canvas = base.convert("RGB")  # always a new image: `base` is left as it is
    lock, finished = threading.Lock(), threading.Event()
    state: dict = {"rows": 0, "shown": 0}
    result: dict = {}

    def on_rows(y: int, x: int, block: Image.Image) -> None:
        with lock:
            canvas.paste(block, (x, y))
            state["rows"] = max(state["rows"], y + block.height)

    def work() -> None:
        try:
            result["out"] = up.upscale(image, on_rows=on_rows)
        except BaseException as exc:  # handed to the caller's thread below
            result["error"] = exc
        finally:
            finished.set()

    t0 = time.perf_counter()
    # a copied context, so whatever the caller keeps in context variables is seen by the model run
    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True)
    worker.start()
    wait = min(every_s, FIRST_ROWS_POLL_S)  # until the first rows: look often, they are the news
    while not finished.wait(wait):
        with lock:
            rows, elapsed = state["rows"], time.perf_counter() - t0
            # after the first rows, a frame the finished image would replace within the period
            # is not worth its encoding and sending: on two cores it slows the job it shows
            if rows == state["shown"] or (state["shown"] and elapsed * (canvas.height - rows) / rows < every_s):
                continue
            state["shown"] = rows
            frame = canvas.copy()
        wait = every_s
        yield Frame(frame, rows / canvas.height, elapsed, False)
    worker.join()
    if "error" in result:
        raise result["error"]
    took = time.perf_counter() - t0
    if meter is not None:
        meter.update(up.name, image.width * image.height, took)
    yield Frame(result["out"], 1.0, took, True)


def run_to_end(frames: Iterator[Frame]) -> Frame:
    """The last Frame of a stream (for callers that do not show progress)."""
    last = None
    for last in frames:
        pass
    assert last is not None and last.done
    return last


def score(outputs: dict[str, Image.Image], hr: Image.Image, scale: int,
          seconds: dict[str, float] | None = None) -> list[list]:
    """[method, PSNR (dB), SSIM, seconds] for each output against the original `hr`: PSNR and SSIM
    on the Y channel with a `scale`-pixel border ignored, as in the SRGAN paper."""
    seconds = seconds or {}
    return [[name, round(psnr(out, hr, scale), 2), round(ssim(out, hr, scale), 4), round(seconds.get(name, 0.0), 2)]
            for name, out in outputs.items()]


def column_widths(columns: int, first: int = 34) -> list[str]:
    """Table column widths in percent: the first (names) `first`, the rest sharing what is left, so
    a table of numbers fits a phone's width instead of scrolling sideways."""
    return [f"{first}%"] + [f"{(100 - first) / max(1, columns - 1):.1f}%"] * (columns - 1)


def _slug(name: str) -> str:
    """A method's name as part of a file name: "SRGAN at strength 0.50" -> "srgan_at_strength_0_50"."""
    return re.sub(r"\W+", "_", name.lower()).strip("_")


def about(seconds: float) -> str:
    """A duration as people say it: "about 5 s", "about 2 min"."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"



# ============================================================================ the app's two buttons


@dataclass
class Update:
    """One refresh of the page's SR outputs; None leaves an output as it is.

    `pair` is the slider's (bicubic, model) files, `table` a {headers, data} dict, `crops` and
    `download` PNG files; `warning` is a note to pop up (a model that could not be loaded)."""

    status: str
    pair: tuple[str, str] | None = None
    table: dict | None = None
    crops: str | None = None
    download: str | None = None
    warning: str | None = None


class Studio:
    """Upscale and Simulate as the web page runs them, for any number of visitors.

    Holds the loaded models (at most `cache`, shared: inference keeps no state), the RateMeter
    and the folder results are written to. `labels` names bundled models on the page. Only
    bundled names and hf:// references are loaded: a visitor must not make the server open
    arbitrary local paths."""

    def __init__(self, out_dir: str | Path, labels: dict[str, str], scale: int = 4, crop: int = 96, zoom: int = 3,
                 slow_s: float = 2.0, preview_every_s: float = 1.5, cache: int = 4) -> None:
        self.out_dir, self.labels, self.scale, self.crop, self.zoom = Path(out_dir), labels, scale, crop, zoom
        self.slow_s, self.preview_every_s, self.cache = slow_s, preview_every_s, cache
        self.meter = RateMeter()
        self._models: dict[str, Upscaler] = {}
        self._lock = threading.Lock()

    def label(self, name: str) -> str:
        return self.labels.get(name, name)

    def bundled(self) -> list[str]:
        """Generators in the weights folder, labelled ones first (read on every call)."""
        order = list(self.labels)
        return sorted(weights.list_bundled("generator"), key=lambda n: (order.index(n) if n in order else len(order), n))

    def default(self) -> str | None:
        """The model a request without one gets: the first bundled generator (None when there is none)."""
        bundled = self.bundled()
        return bundled[0] if bundled else None

    def load(self, source: str | None, strength: float | None = None) -> tuple[Upscaler | None, str]:
        """The Upscaler for a model choice, and a note ("" when it is the one asked for).

        No choice (None or ""), as a page sends before its model menu is filled in, means the
        default model: a click that comes early is served, not refused.

        `strength` below 1 with the GAN model of the bundled interpolation pair blends its
        weights with the PSNR model's (interpolate.load_interpolated): 0 is the PSNR model, 1 the
        GAN. With any other model it is ignored: there is nothing to blend with."""
        source = source or self.default()
        if source is None:
            return None, "No model in the weights folder yet, so bicubic is on both sides of the slider."
        if source not in self.bundled() and not str(source).startswith(weights.HUB_PREFIX):
            raise ValueError(f"Unknown model {source!r}: choose a bundled model or an hf://owner/repo/name reference.")
        blend = strength is not None and source == interpolate.INTERPOLATION_PAIR[1] and \
            interpolate.check_strength(strength) < 1 and interpolate.INTERPOLATION_PAIR[0] in self.bundled()
        key = f"{source}@{interpolate.check_strength(strength):.2f}" if blend else source
        with self._lock:
            if key in self._models:
                return self._models[key], ""
        try:
            up = Upscaler(None, strength=strength) if blend else Upscaler(weights.load_generator(source))
        except (ValueError, OSError) as exc:
            return None, f"Could not load {source} ({exc}), so bicubic is on both sides of the slider."
        if blend:
            up.display_name = f"{self.label(source)} at strength {interpolate.check_strength(strength):.2f}"
        if up.loaded is not None and getattr(up.loaded, "fallback_reason", None):  # the Hub failed: not cached
            return up, (f"{source} is unavailable ({up.loaded.fallback_reason}); the bundled "
                        f"{self.name(up)} was used instead.")
        with self._lock:
            if len(self._models) >= self.cache:
                self._models.pop(next(iter(self._models)))
            self._models[key] = up
        return up, ""

    def choices(self, hub_default: str) -> list[tuple[str, str]]:
        """(label, value) for the model menu: the bundled generators, then a Hub reference."""
        return [(f"{self.label(n)} ×{self.scale} (bundled)", n) for n in self.bundled()] + \
            [(f"{hub_default} (Hugging Face Hub)", hub_default)]

    def notice(self) -> str:
        """What the page says when the weights folder has no generator yet ("" when it has)."""
        return "" if self.bundled() else (
            "⚠️ **No bundled super-resolution weights in `weights/` yet.** Bicubic still works, and a Hub "
            "reference (`hf://owner/repo/name`) is downloaded when the network allows.")

    def name(self, up: Upscaler) -> str:
        """How the page names a model's output."""
        return getattr(up, "display_name", None) or self.label(up.name)

    def _side(self, image: Image.Image, name: str, side: str, box: compare.Box, preview: bool = False) -> str:
        """One side of the slider as a JPEG file: named in its corner, the crops' region outlined;
        a preview is shrunk by a whole factor to at most PREVIEW_SIDE (a 10 MP picture every
        second would cost more than the model)."""
        image = compare.label(compare.mark(image, box), name, side)
        factor = -(-max(image.size) // PREVIEW_SIDE)
        return write_image(image.reduce(factor) if preview and factor > 1 else image, self.out_dir, f"{side}.jpg")

    def upscale(self, image: Image.Image, stem: str, source: str | None, strength: float | None = None) -> Iterator[Update]:
        """Bicubic and the chosen model, `scale` times larger. Before a slow job: an estimate;
        while it runs: the output growing band by band; then the summary, timings, crops of the
        most detailed region and the output file."""
        s = self.scale
        up, note = self.load(source, strength)
        t0 = time.perf_counter()
        bic = bicubic(image, s)
        box = compare.scale_box(compare.detail_box(image, self.crop // s), s)
        times, outputs, name, left = {"Bicubic": time.perf_counter() - t0}, {"Bicubic": bic}, "Bicubic", None
        size = f"{image.width}×{image.height} → {image.width * s}×{image.height * s}"
        if up is not None:
            name = self.name(up)
            self.meter.calibrate(up)
            guess = self.meter.estimate(up.name, image.width * image.height) or 0.0
            if guess > self.slow_s or note:
                yield Update(f"**{name}**: {size}, {about(guess)}…", warning=note or None)
            for frame in stream_upscale(up, image, bic, self.preview_every_s, self.meter):
                if not frame.done:
                    left = left or self._side(bic, "Bicubic", "left", box, preview=True)
                    rest = frame.elapsed_s * (1 - frame.fraction) / frame.fraction  # the rows so far tell best
                    yield Update(f"**{name}**: {frame.fraction:.0%} done" + (f", {about(rest)} left" if rest > 1 else "")
                                 + " (the part not done yet shows bicubic)",
                                 (left, self._side(frame.image, name, "right", box, preview=True)))
            outputs[name], times[name] = frame.image, frame.elapsed_s
        elif note:
            yield Update("Bicubic only.", warning=note)
        summary = f"**{name}**: {size} in {times.get(name, 0.0):.2f} s. " + (note or f"Slider: bicubic left, {name} right.")
        yield self._finish(summary, outputs, times, box, name, f"{stem}_x{s}_{_slug(name)}", None)

    def simulate(self, image: Image.Image, stem: str, source: str | None, strength: float | None = None,
                 preset: str = "bicubic") -> Iterator[Update]:
        """Shrink the image `scale` times with the degradation `preset` (degrade.PRESETS: clean
        bicubic as in training, or a phone's noise and JPEG, or heavy JPEG), upscale it back with
        bicubic and every bundled model, and score each against the original."""
        s = self.scale
        hr = modcrop(image.convert("RGB"), s)
        if min(hr.size) < 4 * s:
            raise ValueError(f"Simulate needs at least {4 * s}×{4 * s} px; this image is {image.width}×{image.height}.")
        if preset not in degrade.PRESETS:
            raise ValueError(f"Unknown degradation {preset!r}: choose one of {', '.join(degrade.PRESETS)}.")
        lr = degrade.make_lr(hr, s, preset, seed=0)
        source = source or self.default()
        chosen, note = self.load(source, strength)
        ups = [u for u in [chosen, *(self.load(n)[0] for n in self.bundled() if n != source)] if u is not None]
        guess = sum(self.meter.estimate(u.name, lr.width * lr.height) or 0.0 for u in ups)
        if guess > self.slow_s or note:
            yield Update(f"Simulating: {hr.width}×{hr.height} → {lr.width}×{lr.height} → back, {about(guess)}…",
                         warning=note or None)
        t0 = time.perf_counter()
        outputs, times = {"Bicubic": bicubic(lr, s)}, {"Bicubic": time.perf_counter() - t0}
        for up in ups:
            if self.name(up) not in outputs:
                frame = run_to_end(stream_upscale(up, lr, outputs["Bicubic"], 3600, self.meter))
                outputs[self.name(up)], times[self.name(up)] = frame.image, frame.elapsed_s
        name = self.name(chosen) if chosen is not None else "Bicubic"
        shrunk = "shrunk" if preset == "bicubic" else f"shrunk ({degrade.PRESET_LABELS.get(preset, preset)})"
        summary = (f"Original {hr.width}×{hr.height} → {shrunk} to {lr.width}×{lr.height} → upscaled back. Higher PSNR / "
                   "SSIM is closer to the original; SRGAN gives up a little PSNR for sharper texture. "
                   + (note or f"Slider: bicubic left, {name} right."))
        box = compare.detail_box(hr, self.crop, s)
        yield self._finish(summary, outputs, times, box, name, f"{stem}_simulated_{_slug(name)}", hr)

    def _finish(self, summary: str, outputs: dict[str, Image.Image], times: dict[str, float], box: compare.Box,
                name: str, stem: str, original: Image.Image | None) -> Update:
        models = [self.label(n) for n in self.bundled()]
        ordered = {k: outputs[k] for k in compare.order(list(outputs), models)}
        if original is None:
            table = {"headers": ["method", "time (s)"], "data": [[m, round(times[m], 2)] for m in ordered]}
            tiles = compare.crops(ordered, box, self.zoom, models)
        else:
            table = {"headers": ["method", "PSNR (dB)", "SSIM", "time (s)"], "data": score(ordered, original, self.scale, times)}
            tiles = compare.crops({**ordered, "Original": original}, box, self.zoom, models)
        summary += f" Zoomed ×{self.zoom} below, the yellow box: " + ", ".join(n for _, n in tiles) + "."
        files = [ENCODER.submit(self._side, outputs["Bicubic"], "Bicubic", "left", box),
                 ENCODER.submit(self._side, outputs[name], name, "right", box),
                 ENCODER.submit(write_image, outputs[name], self.out_dir, f"{stem}.png"),
                 ENCODER.submit(write_image, compare.sheet(tiles), self.out_dir, "crops.png")]
        left, right, download, sheet = (f.result() for f in files)
        return Update(summary, (left, right), table, sheet, download)
