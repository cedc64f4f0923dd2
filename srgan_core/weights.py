"""Weights files: a `.safetensors` tensor file plus a JSON sidecar that describes it.

Why this shape: loading a safetensors file cannot run code (unpickling a `.pth` can), and the
sidecar carries everything needed to rebuild the network (architecture, config, scale), where the
weights came from (training, metrics) and the sha256 that ties the two files together. So
`load_generator("weights/srgan_x4")` needs no other knowledge, and a swapped or damaged tensor
file is caught before it reaches a model.

A source is one of:
  - a local path: `NAME.safetensors`, `NAME.json` or the stem `NAME`;
  - a bundled name: `NAME` in the weights folder (`WEIGHTS_DIR`, or `$SRGAN_WEIGHTS_DIR`);
  - a Hub reference: `hf://owner/repo/path/NAME[@revision]` (revision: a commit hash, tag or
    branch; `main` when none is given). Use a commit hash to pin exact bytes: a pinned file that
    is already cached is used without touching the network.

Hub downloads go through `huggingface_hub.hf_hub_download` and its cache. `HF_ENDPOINT` and
`HF_HUB_CACHE` are read when a download starts (huggingface_hub reads them once, at import), so
they can be changed at run time. Every wait is bounded: one metadata request per file with a
short timeout, then the whole fetch under an overall deadline. When the Hub fails in any way,
`load_generator` falls back to the bundled default and says so with one `HubFallbackWarning`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from .models import Generator, GeneratorConfig

WEIGHTS_DIR: Path = Path(__file__).resolve().parent.parent / "weights"
FORMAT = "srgan-studio-weights/1"
DEFAULT_GENERATORS = ("srgan_x4", "srresnet_x4")  # the bundled default: first one present
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle")
HUB_PREFIX = "hf://"
DEFAULT_HUB_REVISION = "main"  # used only when a reference names no revision
HUB_TIMEOUT_S = 60.0  # overall deadline for fetching one weights file pair from the Hub
HUB_REQUEST_TIMEOUT_S = 10.0  # each metadata request (HEAD); at most half the overall deadline

log = logging.getLogger(__name__)
T = TypeVar("T")


class WeightsError(ValueError):
    """A weights source that cannot be used; the message says which file and why."""


class HubError(WeightsError):
    """Weights could not be had from the Hub (network, HTTP status, damaged download)."""


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


def _sha256(path: Path) -> str:
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
    meta["sha256"] = _sha256(tmp_st)
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


def _read_sidecar(json_path: Path) -> dict:
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
    return meta


def _sniff_pickle(path: Path) -> str:
    """A hint when a tensor file is really a PyTorch checkpoint under another name."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return " It looks like a pickled PyTorch checkpoint renamed to .safetensors; convert it instead."
    return ""


def _read_tensors(st_path: Path, meta: dict) -> dict[str, torch.Tensor]:
    """The tensors of a file whose sha256 matches its sidecar; checked before parsing anything."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    digest = _sha256(st_path)
    if digest != meta["sha256"].lower():
        raise WeightsError(
            f"{st_path}: sha256 {digest[:12]}... does not match the sidecar's {meta['sha256'][:12]}...; "
            "the tensor file is damaged or is not the one this sidecar describes."
        )
    try:
        return load_file(str(st_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{st_path}: not a valid safetensors file ({e}).{_sniff_pickle(st_path)}") from None


def _local_pair(source: str | Path) -> tuple[Path, Path]:
    """Find NAME.safetensors + NAME.json for a path or a bundled name."""
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


def read_weights(source: str | Path, *, timeout: float = HUB_TIMEOUT_S) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and sidecar of a local path, bundled name or hf:// reference, sha256 verified.

    Raises WeightsError (HubError for Hub failures); never falls back (that is load_generator's
    policy, for the app's sake).
    """
    tensors, meta, _, _ = _read_any(source, timeout=timeout)
    return tensors, meta


def _read_any(source: str | Path, *, timeout: float) -> tuple[dict[str, torch.Tensor], dict, Path, str | None]:
    _refuse_pickle(source)
    if isinstance(source, str) and source.startswith(HUB_PREFIX):
        return _read_hub(source, timeout=timeout)
    st_path, json_path = _local_pair(source)
    meta = _read_sidecar(json_path)
    return _read_tensors(st_path, meta), meta, st_path, None


# ---------------------------------------------------------------------------------------------
# The Hub


@dataclass(frozen=True)
class HubRef:
    repo_id: str  # owner/repo
    stem: str  # path inside the repo, without suffix
    revision: str

    @property
    def files(self) -> tuple[str, str]:
        return self.stem + ".json", self.stem + ".safetensors"


def parse_hub_ref(ref: str) -> HubRef:
    """`hf://owner/repo/path/NAME[@revision]` -> HubRef; the path may end in .safetensors/.json."""
    if not ref.startswith(HUB_PREFIX):
        raise WeightsError(f"{ref}: a Hub reference starts with {HUB_PREFIX}")
    body, _, revision = ref[len(HUB_PREFIX):].partition("@")
    parts = [p for p in body.split("/") if p]
    if len(parts) < 3 or (revision == "" and "@" in ref) or any(p in (".", "..") for p in parts):
        raise WeightsError(f"{ref}: expected hf://owner/repo/path/NAME[@revision]")
    return HubRef("/".join(parts[:2]), str(_stem("/".join(parts[2:]))), revision or DEFAULT_HUB_REVISION)


class _QuietHubLogs(logging.Filter):
    """huggingface_hub logs a warning per retry; during our own downloads (in threads we name)
    those are demoted to debug lines of ours, so a failure reaches the user as one warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.threadName.startswith(_WORKER_PREFIX) and record.levelno <= logging.WARNING:
            log.debug("huggingface_hub: %s", record.getMessage())
            return False
        return True


_WORKER_PREFIX = "srgan-hub-fetch"
_quiet_installed = False


def _install_quiet_hub_logs() -> None:
    global _quiet_installed
    if not _quiet_installed:
        for name in ("huggingface_hub.file_download", "huggingface_hub.utils._http"):
            logging.getLogger(name).addFilter(_QuietHubLogs())
        _quiet_installed = True


def _with_deadline(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run fn in a worker thread and give up waiting after `timeout` seconds.

    huggingface_hub bounds each socket read but retries and resumes on its own, so a server that
    trickles bytes or keeps cutting the connection could hold a caller for minutes. The worker is
    left to finish or fail by itself; whatever it leaves in the cache is verified on every load.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller below
            box["error"] = e

    worker = threading.Thread(target=run, name=f"{_WORKER_PREFIX}-{what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise HubError(f"{what}: no complete answer from the Hub within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _describe(error: BaseException, endpoint: str) -> str:
    """One line for a Hub failure, whatever transport huggingface_hub happens to use."""
    from huggingface_hub import errors as hf_errors

    names = {c.__name__ for c in type(error).__mro__}
    status = getattr(getattr(error, "response", None), "status_code", None)
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if isinstance(error, (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError)) or (
        isinstance(error, hf_errors.EntryNotFoundError) and status == 404
    ):
        return f"not found on the Hub (HTTP 404: {type(error).__name__})"
    if isinstance(error, hf_errors.OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE) and the file is not in the cache"
    if status is not None:
        return f"the Hub answered HTTP {status}"
    if names & {"TimeoutException", "Timeout", "ReadTimeout", "ConnectTimeout", "TimeoutError"}:
        return f"the Hub at {endpoint} did not answer in time"
    if names & {"ConnectError", "ConnectionError", "ConnectionRefusedError"}:
        return f"cannot connect to the Hub at {endpoint}"
    if names & {"RemoteProtocolError", "ChunkedEncodingError", "IncompleteRead"} or "Consistency check" in first_line:
        return "the connection was cut mid-download"
    return f"{type(error).__name__}: {first_line}"


def _evict(pointer: Path) -> None:
    """Remove a downloaded file from the huggingface_hub cache: the snapshot entry and its blob,
    so the next request downloads it again instead of re-linking the same bad bytes."""
    try:
        blob = pointer.resolve()
        pointer.unlink(missing_ok=True)
        if blob != pointer and blob.parent.name == "blobs":
            blob.unlink(missing_ok=True)
    except OSError as e:
        log.warning("could not remove damaged cache entry %s: %s", pointer, e)


_COMMIT = re.compile(r"[0-9a-f]{40}")


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _hub_file(ref: HubRef, filename: str, revision: str, *, cache_dir: str | None, endpoint: str,
              request_timeout: float) -> Path:
    """One file through hf_hub_download, without its long retry loop when nothing is cached.

    hf_hub_download retries a failed metadata request for minutes (60 s timeouts, backoff) when
    the file is not cached. One bounded HEAD first tells us whether the Hub is usable; if it is
    not, only the cache is consulted.
    """
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    common = dict(repo_id=ref.repo_id, filename=filename, revision=revision, cache_dir=cache_dir, endpoint=endpoint)
    if _COMMIT.fullmatch(revision):  # pinned bytes already cached: no network at all
        try:
            return Path(hf_hub_download(**common, local_files_only=True))
        except hf_errors.LocalEntryNotFoundError:
            pass
    try:
        get_hf_file_metadata(hf_hub_url(ref.repo_id, filename, revision=revision, endpoint=endpoint),
                             timeout=request_timeout, endpoint=endpoint)
    except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError, hf_errors.EntryNotFoundError):
        raise  # the Hub answered: the file is not there, and a cached copy must not pretend otherwise
    except Exception as head_error:
        try:
            return Path(hf_hub_download(**common, local_files_only=True))
        except hf_errors.LocalEntryNotFoundError:
            raise head_error from None
    return Path(hf_hub_download(**common, etag_timeout=request_timeout))


def _read_hub(ref_text: str, *, timeout: float) -> tuple[dict[str, torch.Tensor], dict, Path, str]:
    ref = parse_hub_ref(ref_text)
    endpoint = _hub_endpoint()
    cache_dir = os.environ.get("HF_HUB_CACHE") or None
    request_timeout = min(HUB_REQUEST_TIMEOUT_S, timeout / 2)  # leaves time for the cache after a stall
    json_name, st_name = ref.files
    _install_quiet_hub_logs()

    def fetch(filename: str, revision: str, check: Callable[[Path], T]) -> tuple[Path, T]:
        """Download (or take from the cache) and check. A file that fails its check is removed
        from the cache, so no damaged download stays there looking like a good one, and fetched
        once more, in case the bad copy was an old one and the Hub is fine now."""
        for attempt in range(2):
            path = _hub_file(ref, filename, revision, cache_dir=cache_dir, endpoint=endpoint,
                             request_timeout=request_timeout)
            try:
                return path, check(path)
            except WeightsError as e:
                _evict(path)
                if attempt:
                    why = str(e).removeprefix(f"{path}: ")
                    raise HubError(f"{ref_text}: {filename} rejected and removed from the cache: {why}") from None
        raise AssertionError("unreachable")

    def fetch_pair() -> tuple[dict[str, torch.Tensor], dict, Path, str]:
        json_path, meta = fetch(json_name, ref.revision, _read_sidecar)
        # the tensor file comes from the very commit the sidecar came from, even if a branch moves
        commit = json_path.parents[len(Path(json_name).parts) - 1].name
        st_path, tensors = fetch(st_name, commit, lambda path: _read_tensors(path, meta))
        return tensors, meta, st_path, commit

    try:
        return _with_deadline(fetch_pair, timeout, ref_text)
    except HubError:
        raise
    except Exception as e:
        raise HubError(f"{ref_text}: {_describe(e, endpoint)}") from e


# ---------------------------------------------------------------------------------------------
# Generators


def _build_generator(tensors: dict[str, torch.Tensor], meta: dict, where: Path) -> Generator:
    """Strict: every tensor must be there with the shape the sidecar's config implies, and the
    message lists the first differences, because a silent partial load gives plausible garbage."""
    kind, arch = meta.get("kind", "generator"), meta.get("architecture", "srresnet")
    if kind != "generator" or arch != "srresnet":
        raise WeightsError(f"{where}: holds {kind}/{arch} weights, not an SRResNet generator")
    try:
        config = GeneratorConfig(**meta.get("config", {}))
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{where}: sidecar config {meta.get('config')} is not a generator config ({e})") from None
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


def load_generator(source: str | Path | None = None, *, timeout: float = HUB_TIMEOUT_S) -> LoadedGenerator:
    """A ready generator (eval mode) from a path, bundled name or hf:// reference.

    None means the bundled default. If an hf:// source fails for any reason (Hub down, slow,
    HTTP error, damaged or mismatching download), the bundled default is loaded instead, one
    HubFallbackWarning says so, and `fallback_reason` records why: a demo should keep working
    when the network does not. Local mistakes (missing file, pickle, malformed reference) raise.
    """
    if source is None:
        return _load_default()
    _refuse_pickle(source)
    if not (isinstance(source, str) and source.startswith(HUB_PREFIX)):
        tensors, meta, path, _ = _read_any(source, timeout=timeout)
        return LoadedGenerator(_build_generator(tensors, meta, path), meta, path, str(source))
    parse_hub_ref(source)  # a malformed reference is the caller's mistake, not the Hub's
    try:
        tensors, meta, path, commit = _read_hub(source, timeout=timeout)
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
    tensors, meta, path, _ = _read_any(weights_dir() / name, timeout=HUB_TIMEOUT_S)
    model = _build_generator(tensors, meta, path)
    return LoadedGenerator(model, meta, path, source or name, fallback_reason)
