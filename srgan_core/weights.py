"""Weights files: a `.safetensors` tensor file plus a JSON sidecar that describes it, and the one
door through which generators are loaded.

Why this shape: loading a safetensors file cannot run code (unpickling a `.pth` can), and the
sidecar carries everything needed to rebuild the network (architecture, config, scale), where the
weights came from (training, metrics) and the sha256 that ties the two files together. So
`load_generator("weights/srgan_x4")` needs no other knowledge, and a swapped or damaged tensor
file is caught before it reaches a model. A sidecar declaring a network beyond MAX_BLOCKS,
MAX_CHANNELS or SCALES is refused before its tensors are read or any model is built.

A source is one of:
  - a local path: `NAME.safetensors`, `NAME.json` or the stem `NAME`;
  - a bundled name: `NAME` in the weights folder (`WEIGHTS_DIR`, or `$SRGAN_WEIGHTS_DIR`);
  - a Hub reference: `hf://owner/repo/path/NAME[@revision]`, fetched by `srgan_core.hub`
    (bounded in time and size, verified, cached). When the Hub fails in any way,
    `load_generator` falls back to the bundled default and says so with one `HubFallbackWarning`.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .models import Generator, GeneratorConfig

WEIGHTS_DIR: Path = Path(__file__).resolve().parent.parent / "weights"
FORMAT = "srgan-studio-weights/1"
# The bundled default: the first one present. real_x4 is trained on camera-like degradations (blur,
# noise, JPEG) and suits photos; srgan_x4 and srresnet_x4 learned clean bicubic downscaling (renders).
DEFAULT_GENERATORS = ("real_x4", "srgan_x4", "srresnet_x4")
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle")
HUB_PREFIX = "hf://"
# The largest generator a sidecar may declare: 32 blocks of 256 channels is ~152 MB of float32
# (the paper's 16 x 64 is 6 MB); anything beyond is a mistake or an attempt to exhaust memory.
MAX_BLOCKS = 32
MAX_CHANNELS = 256
MAX_IN_CHANNELS = 4
SCALES = (2, 4, 8)
MAX_SIDECAR_BYTES = 1_000_000  # sidecars are a few kB; a huge one is not read


class WeightsError(ValueError):
    """A weights source that cannot be used; the message says which file and why."""


class HubFallbackWarning(UserWarning):
    """The Hub could not supply the weights asked for; the bundled default is used instead."""


@dataclass
class LoadedGenerator:
    model: Generator
    meta: dict
    path: Path  # the .safetensors file the tensors were read from
    source: str  # what was asked for (after a fallback: still the original request)
    fallback_reason: str | None = None  # set when `source` failed and the bundled default was used
    revision: str | None = None  # the Hub commit the files came from, for hf:// sources

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.stem))


# ---------------------------------------------------------------------------------------------
# Saving


def _stem(path: str | Path) -> Path:
    """NAME for NAME, NAME.safetensors and NAME.json; other suffixes are part of the name."""
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights(tensors: dict[str, torch.Tensor], path: str | Path, sidecar: dict) -> Path:
    """Write NAME.safetensors and NAME.json (with "format", "name" and "sha256" filled in).

    Both files are written to temporary names first and renamed into place, so a crash never
    leaves a new tensor file beside an old sidecar.
    """
    from safetensors.torch import save_file

    stem = _stem(path)
    if Path(path).suffix in PICKLE_SUFFIXES:
        raise WeightsError(f"{path}: weights are saved as safetensors, not {Path(path).suffix}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    st_path = stem.with_name(stem.name + ".safetensors")
    json_path = stem.with_name(stem.name + ".json")
    tmp_st = st_path.with_name(st_path.name + ".tmp")
    tmp_json = json_path.with_name(json_path.name + ".tmp")
    # safetensors wants contiguous CPU tensors that share no storage
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, str(tmp_st), metadata={"format": "pt"})
    meta = {"format": FORMAT, "name": stem.name, **sidecar}
    meta["sha256"] = sha256_file(tmp_st)
    tmp_json.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_st, st_path)
    os.replace(tmp_json, json_path)
    return st_path


def save_generator(model: Generator, path: str | Path, **sidecar_fields: Any) -> Path:
    """Save a generator with the sidecar that rebuilds it; extra fields (description, training,
    metrics, ...) go into the sidecar as given."""
    sidecar = {
        "kind": "generator",
        "name": _stem(path).name,
        "architecture": "srresnet",
        "config": model.config.to_dict(),
        "scale": model.scale,
        **sidecar_fields,
    }
    return save_weights(model.state_dict(), path, sidecar)


# ---------------------------------------------------------------------------------------------
# Reading local files


def weights_dir() -> Path:
    """The folder of bundled weights; `$SRGAN_WEIGHTS_DIR` replaces the repository's weights/."""
    override = os.environ.get("SRGAN_WEIGHTS_DIR")
    return Path(override) if override else WEIGHTS_DIR


def _refuse_pickle(source: str | Path) -> None:
    """Decided by name alone: a pickle is refused before a byte of it is read or downloaded."""
    text = str(source)
    if text.startswith(HUB_PREFIX):
        text = text.partition("@")[0]
    suffix = Path(text).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise WeightsError(
            f"{source}: refusing to load a {suffix} file. Pickled checkpoints can run arbitrary code "
            "when loaded, so they are never unpickled here. Convert it once, in an environment you "
            "trust, to safetensors plus a JSON sidecar: build the model, load_state_dict(...) from "
            "the checkpoint, then srgan_core.weights.save_generator(model, 'NAME')."
        )


def read_sidecar(json_path: Path) -> dict:
    """The sidecar as a dict, refused unless it is ours, names the tensor file's sha256, and (for a
    generator) declares a network within the sanity limits: so an absurd config is refused before
    its tensor file is read or downloaded and before any model is built."""
    size = json_path.stat().st_size
    if size > MAX_SIDECAR_BYTES:
        raise WeightsError(f"{json_path}: sidecar is {size:,} bytes; the limit is {MAX_SIDECAR_BYTES:,}")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{json_path}: sidecar is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise WeightsError(f"{json_path}: sidecar must be a JSON object")
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{json_path}: unknown sidecar format {meta.get('format')!r} (expected {FORMAT!r})")
    if not isinstance(meta.get("sha256"), str):
        raise WeightsError(f"{json_path}: sidecar has no sha256 of the tensor file")
    if meta.get("kind", "generator") == "generator":
        generator_config(meta, json_path)
    return meta


def generator_config(meta: dict, where: Path) -> GeneratorConfig:
    """The sidecar's generator config, refused when its size is beyond the sanity limits (checked
    on the raw numbers, before a model, or a tensor of it, exists)."""
    config = meta.get("config", {})
    if not isinstance(config, dict):
        raise WeightsError(f"{where}: sidecar config must be a JSON object, got {config!r}")
    limits = {"blocks": (0, MAX_BLOCKS), "channels": (1, MAX_CHANNELS), "in_channels": (1, MAX_IN_CHANNELS)}
    for field, (low, high) in limits.items():
        value = config.get(field, low)
        if type(value) is not int or not low <= value <= high:
            raise WeightsError(f"{where}: sidecar declares {field}={value!r}, beyond the limit "
                               f"(allowed: {low} to {high})")
    scale = config.get("scale", 4)
    if type(scale) is not int or scale not in SCALES:
        raise WeightsError(f"{where}: sidecar declares scale={scale!r}; the scale must be one of "
                           f"{', '.join(map(str, SCALES))}")
    try:
        return GeneratorConfig(**config)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{where}: sidecar config {config} is not a generator config ({e})") from None


def _sniff_pickle(path: Path) -> str:
    """A hint when a tensor file is really a PyTorch checkpoint under another name."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return " It looks like a pickled PyTorch checkpoint renamed to .safetensors; convert it instead."
    return ""


def read_tensors(st_path: Path, meta: dict) -> dict[str, torch.Tensor]:
    """The tensors of a file whose sha256 matches its sidecar; checked before parsing anything."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    digest = sha256_file(st_path)
    if digest != meta["sha256"].lower():
        raise WeightsError(
            f"{st_path}: sha256 {digest[:12]}... does not match the sidecar's {meta['sha256'][:12]}...; "
            "the tensor file is damaged or is not the one this sidecar describes."
        )
    try:
        return load_file(str(st_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{st_path}: not a valid safetensors file ({e}).{_sniff_pickle(st_path)}") from None


def find_local(source: str | Path) -> tuple[Path, Path]:
    """(NAME.safetensors, NAME.json) of a local path or a bundled name; pickles are refused by name."""
    _refuse_pickle(source)
    stem = _stem(source)
    candidates = [stem]
    if len(Path(source).parts) == 1:  # a bare name may also mean a bundled file
        candidates.append(weights_dir() / stem.name)
    for s in candidates:
        st_path = s.with_name(s.name + ".safetensors")
        json_path = s.with_name(s.name + ".json")
        if st_path.is_file() and json_path.is_file():
            return st_path, json_path
        if st_path.is_file() or json_path.is_file():
            missing = json_path if st_path.is_file() else st_path
            raise WeightsError(
                f"{source}: {missing.name} is missing; a weights file is NAME.safetensors plus NAME.json"
            )
    bundled = ", ".join(list_bundled(kind=None)) or "none"
    raise WeightsError(f"{source}: no such weights (looked for {stem}.safetensors; bundled names: {bundled})")


def list_bundled(kind: str | None = "generator") -> list[str]:
    """Names of the complete weights files in the bundled folder, optionally of one kind."""
    names = []
    folder = weights_dir()
    for json_path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if not json_path.with_suffix(".safetensors").is_file():
            continue
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(meta, dict) and (kind is None or meta.get("kind") == kind):
            names.append(json_path.stem)
    return names


def read_weights(source: str | Path, *, timeout: float | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and sidecar of a local path, bundled name or hf:// reference, sha256 verified.

    `timeout`: the Hub deadline in seconds (None: hub.HUB_TIMEOUT_S). Raises WeightsError
    (hub.HubError for Hub failures); never falls back (that is load_generator's policy).
    """
    tensors, meta, _, _ = _read_any(source, timeout=timeout)
    return tensors, meta


def _read_any(source: str | Path, *, timeout: float | None) -> tuple[dict[str, torch.Tensor], dict, Path, str | None]:
    _refuse_pickle(source)
    if isinstance(source, str) and source.startswith(HUB_PREFIX):
        from . import hub  # lazily: only Hub sources need huggingface_hub

        return hub.read_hub(source, **({"timeout": timeout} if timeout is not None else {}))
    st_path, json_path = find_local(source)
    meta = read_sidecar(json_path)  # the sidecar first: an absurd config is refused before any tensor
    return read_tensors(st_path, meta), meta, st_path, None


# ---------------------------------------------------------------------------------------------
# Generators


def _build_generator(tensors: dict[str, torch.Tensor], meta: dict, where: Path) -> Generator:
    """Strict: every tensor must be there with the shape the sidecar's config implies, and the
    message lists the first differences, because a silent partial load gives plausible garbage."""
    kind, arch = meta.get("kind", "generator"), meta.get("architecture", "srresnet")
    if kind != "generator" or arch != "srresnet":
        raise WeightsError(f"{where}: holds {kind}/{arch} weights, not an SRResNet generator")
    config = generator_config(meta, where)
    model = Generator(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [
        f"{k} is {list(tensors[k].shape)} but the config needs {list(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        problems = wrong[:3] + [f"missing {', '.join(missing[:3])}"] * bool(missing)
        problems += [f"unexpected {', '.join(unexpected[:3])}"] * bool(unexpected)
        raise WeightsError(
            f"{where}: tensors do not match the sidecar's config {config.to_dict()}: " + "; ".join(problems)
        )
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def default_generator_name() -> str | None:
    """The bundled default: the first of DEFAULT_GENERATORS present in the weights folder."""
    bundled = list_bundled("generator")
    return next((n for n in DEFAULT_GENERATORS if n in bundled), None)


def load_generator(source: str | Path | None = None, *, timeout: float | None = None) -> LoadedGenerator:
    """A ready generator (eval mode) from a path, bundled name or hf:// reference.

    None means the bundled default. If an hf:// source fails for any reason (Hub down, slow,
    HTTP error, damaged or mismatching download), the bundled default is loaded instead, one
    HubFallbackWarning says so, and `fallback_reason` records why: a demo should keep working
    when the network does not. Local mistakes (missing file, pickle, malformed reference) raise.
    `timeout`: the Hub deadline in seconds (None: hub.HUB_TIMEOUT_S).
    """
    if source is None:
        return _load_default()
    _refuse_pickle(source)
    if not (isinstance(source, str) and source.startswith(HUB_PREFIX)):
        tensors, meta, path, _ = _read_any(source, timeout=timeout)
        return LoadedGenerator(_build_generator(tensors, meta, path), meta, path, str(source))
    from . import hub

    hub.parse_hub_ref(source)  # a malformed reference is the caller's mistake, not the Hub's
    try:
        tensors, meta, path, commit = _read_any(source, timeout=timeout)
        return LoadedGenerator(_build_generator(tensors, meta, path), meta, path, source, None, commit)
    except WeightsError as e:
        reason = str(e)
    try:
        loaded = _load_default(source=source, fallback_reason=reason)
    except WeightsError as e:
        raise WeightsError(f"{reason}; and there is no bundled default to fall back on: {e}") from None
    warnings.warn(
        f"Hub weights unavailable, {reason}. Using the bundled default '{loaded.name}' instead.",
        HubFallbackWarning,
        stacklevel=2,
    )
    return loaded


def _load_default(source: str | None = None, fallback_reason: str | None = None) -> LoadedGenerator:
    name = default_generator_name()
    if name is None:
        raise WeightsError(
            f"no bundled generator weights in {weights_dir()} (expected one of {', '.join(DEFAULT_GENERATORS)})"
        )
    tensors, meta, path, _ = _read_any(weights_dir() / name, timeout=None)
    model = _build_generator(tensors, meta, path)
    return LoadedGenerator(model, meta, path, source or name, fallback_reason)
