"""Hugging Face Hub transport for weights: bounded, verified, with the cache as offline fallback.

`hf://owner/repo/path/NAME[@revision]` names NAME.json + NAME.safetensors in a Hub model repo
(revision: a commit hash, tag or branch; `main` when none is given). `read_hub(ref)` hands back
the verified tensors and sidecar. It never builds a model and never falls back to other weights:
that policy is `weights.load_generator`'s, the one loading door.

Why not plain `hf_hub_download`: it cannot be told to stop. It retries and resumes on its own for
minutes, so bounding it meant a worker thread left running after the caller gave up, one that
could go on writing into the cache. Here the caller's thread reads every byte itself:

  - one metadata request (HEAD) per file, with a short timeout, gives the commit, the ETag and
    the size; a file larger than HUB_MAX_BYTES (a sidecar: HUB_MAX_SIDECAR_BYTES) is refused
    before anything is downloaded, and a sidecar declaring an absurd generator is refused before
    the tensor file is asked for (`weights.read_sidecar` checks the config);
  - the body is streamed one network chunk at a time into a temporary file; the size limit and
    the overall deadline are checked at every chunk, and the temporary file is removed whatever
    goes wrong, so a stalled or trickling server cannot fill the disk or outlive the call;
  - at most one download runs at a time in a process (a lock, waited for within the deadline);
  - the bytes are checked (the ETag's sha256, then the sidecar, or the sidecar's sha256 of the
    tensor file) before they enter the cache, which keeps huggingface_hub's layout (blobs/,
    snapshots/, refs/) under `HF_HUB_CACHE`, so the Hub's own tools see the same files;
  - when the Hub cannot be reached, the cached copy of that revision is used; a pinned commit
    already cached is used with no network access at all.

`HF_ENDPOINT` and `HF_HUB_CACHE` are read at every call (huggingface_hub reads them once, at import).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlparse

import torch

from .weights import HUB_PREFIX, MAX_SIDECAR_BYTES, WeightsError, read_sidecar, read_tensors

DEFAULT_HUB_REVISION = "main"  # used only when a reference names no revision
HUB_TIMEOUT_S = 60.0  # overall deadline for fetching one weights pair
HUB_REQUEST_TIMEOUT_S = 10.0  # each request's connect/read timeout; at most half the overall deadline
# The bundled tensor files are ~3 MB; the largest generator a sidecar may declare (weights.MAX_BLOCKS
# blocks of weights.MAX_CHANNELS channels) is ~152 MB of float32, so 200 MB refuses nothing legitimate.
HUB_MAX_BYTES = 200_000_000
HUB_MAX_SIDECAR_BYTES = MAX_SIDECAR_BYTES  # sidecars are a few kB

log = logging.getLogger(__name__)
T = TypeVar("T")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_DOWNLOAD_LOCK = threading.Lock()  # one Hub download at a time in this process


class HubError(WeightsError):
    """Weights could not be had from the Hub (network, HTTP status, size, damaged download)."""


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
    stem = re.sub(r"\.(safetensors|json)$", "", "/".join(parts[2:]))
    return HubRef("/".join(parts[:2]), stem, revision or DEFAULT_HUB_REVISION)


def read_hub(ref_text: str, *, timeout: float = HUB_TIMEOUT_S) -> tuple[dict[str, torch.Tensor], dict, Path, str]:
    """(tensors, sidecar, cached tensor file, commit) of an hf:// reference, within `timeout` s.

    The tensor file is fetched at the very commit the sidecar came from, even if a branch moves
    in between. Every failure raises HubError with one line saying what went wrong.
    """
    ref = parse_hub_ref(ref_text)
    transfer = _Transfer(ref, ref_text, timeout)
    json_name, st_name = ref.files
    try:
        json_path, meta, commit = transfer.file(json_name, ref.revision, read_sidecar)
        st_path, tensors, _ = transfer.file(st_name, commit, lambda path: read_tensors(path, meta))
        return tensors, meta, st_path, commit
    except HubError:
        raise
    except Exception as e:
        raise HubError(f"{ref_text}: {_describe(e, transfer.endpoint)}") from e


class _Transfer:
    """The fetch of one reference: where from, which cache folder, and the deadline its requests share."""

    def __init__(self, ref: HubRef, text: str, timeout: float) -> None:
        from huggingface_hub import constants

        self.ref, self.text, self.timeout = ref, text, timeout
        self.endpoint = (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
        self.cache_dir = Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)
        self.repo_dir = self.cache_dir / ("models--" + ref.repo_id.replace("/", "--"))
        self.deadline = time.monotonic() + timeout
        self.request_cap = min(HUB_REQUEST_TIMEOUT_S, timeout / 2)  # leaves time for the cache after a stall

    def left(self) -> float:
        """Seconds left before the deadline; past it, the whole fetch fails."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise HubError(f"{self.text}: no complete answer from the Hub within {self.timeout:g} s")
        return left

    def file(self, filename: str, revision: str, check: Callable[[Path], T]) -> tuple[Path, T, str]:
        """(cached path, check(path), commit) for one file of the repo at `revision`."""
        from huggingface_hub import errors as hf_errors

        if _COMMIT.fullmatch(revision):  # pinned bytes already cached: no network at all
            hit = self.cached(filename, revision, check)
            if hit:
                return (*hit, revision)
        try:
            meta = self.metadata(filename, revision)
        except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError, hf_errors.EntryNotFoundError):
            raise  # the Hub answered: the file is not there, and a cached copy must not pretend otherwise
        except Exception:
            hit = self.cached(filename, revision, check)  # the Hub is unreachable: the last copy of this revision
            if hit is None:
                raise
            return (*hit, hit[0].parents[len(Path(filename).parts) - 1].name)
        limit = HUB_MAX_SIDECAR_BYTES if filename.endswith(".json") else HUB_MAX_BYTES
        if meta.size is not None and meta.size > limit:
            raise HubError(f"{self.text}: {filename} is {_mb(meta.size)} on the Hub; the limit is {_mb(limit)}, "
                           "so nothing was downloaded")
        commit = meta.commit_hash
        if not commit or not _COMMIT.fullmatch(commit):
            raise HubError(f"{self.text}: the Hub named no commit for {filename}")
        hit = self.cached(filename, commit, check)
        if hit is None:
            if not _DOWNLOAD_LOCK.acquire(timeout=self.left()):
                raise HubError(f"{self.text}: another Hub download was still running after {self.timeout:g} s")
            try:
                hit = self.cached(filename, commit, check)  # fetched while we waited, perhaps
                if hit is None:
                    hit = self.download(filename, commit, meta, limit, check)
            finally:
                _DOWNLOAD_LOCK.release()
        self.note_ref(revision, commit)
        return (*hit, commit)

    def metadata(self, filename: str, revision: str):
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(self.ref.repo_id, filename, revision=revision, endpoint=self.endpoint)
        return get_hf_file_metadata(url, timeout=min(self.request_cap, self.left()), endpoint=self.endpoint)

    def cached(self, filename: str, revision: str, check: Callable[[Path], T]) -> tuple[Path, T] | None:
        """The cached copy, if there is one and it passes `check`; a copy that fails is removed,
        so the next download replaces it instead of re-linking the same bad bytes."""
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(self.ref.repo_id, filename, cache_dir=self.cache_dir, revision=revision)
        if not isinstance(found, str):
            return None
        path = Path(found)
        try:
            return path, check(path)
        except WeightsError as e:
            log.info("%s: cached %s failed its check and was removed (%s)", self.text, filename, e)
            _evict(path)
            return None

    def download(self, filename: str, commit: str, meta, limit: int, check: Callable[[Path], T]) -> tuple[Path, T]:
        """Stream the file into a temporary file, check it, then move it into the cache.

        The deadline and the size limit are checked at every network chunk (not every 64 KiB: a
        trickling server must not hold the call), and the temporary file never outlives a failure.
        """
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        blobs = self.repo_dir / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=blobs, suffix=".incomplete")
        tmp = Path(tmp_name)
        expected = meta.size if meta.size is not None else limit
        # the token goes to the Hub only, never to the storage host a file may be redirected to
        on_hub = urlparse(meta.location).netloc == urlparse(self.endpoint).netloc
        headers = {**(build_hf_headers() if on_hub else {}), "Accept-Encoding": "identity"}
        try:
            sha256, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out, get_session().stream(
                "GET", meta.location, headers=headers, timeout=min(self.request_cap, self.left()), follow_redirects=True
            ) as response:
                hf_raise_for_status(response)
                for chunk in response.iter_bytes():  # as the network delivers them
                    size += len(chunk)
                    if size > expected:
                        raise HubError(f"{self.text}: {filename} sent more than {_mb(expected)} "
                                       f"({'its advertised size' if meta.size is not None else 'the limit'}); stopped")
                    out.write(chunk)
                    sha256.update(chunk)
                    self.left()
            if meta.size is not None and size != meta.size:
                raise HubError(f"{self.text}: the connection was cut mid-download ({filename}: {size} of "
                               f"{meta.size} bytes)")
            digest = sha256.hexdigest()
            etag = (meta.etag or "").lower()
            if len(etag) == 64 and etag != digest:  # LFS files: the ETag is the sha256 of the content
                raise HubError(f"{self.text}: {filename} rejected: its sha256 {digest[:12]}... does not match the "
                               f"Hub's ETag {etag[:12]}... (damaged in transit)")
            try:
                value = check(tmp)
            except WeightsError as e:
                raise HubError(f"{self.text}: {filename} rejected: {str(e).removeprefix(f'{tmp}: ')}") from None
            blob = blobs / (etag if re.fullmatch(r"[0-9a-f]{40,64}", etag) else digest)
            os.replace(tmp, blob)
            return self.link(filename, commit, blob), value
        finally:
            tmp.unlink(missing_ok=True)

    def link(self, filename: str, commit: str, blob: Path) -> Path:
        """snapshots/COMMIT/FILENAME -> blobs/ETAG, as huggingface_hub lays out its cache."""
        pointer = self.repo_dir / "snapshots" / commit / filename
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.unlink(missing_ok=True)
        try:
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        except OSError:  # no symlinks here (Windows without developer mode): a copy
            shutil.copyfile(blob, pointer)
        return pointer

    def note_ref(self, revision: str, commit: str) -> None:
        """refs/BRANCH holds the commit a branch or tag pointed at, for offline use later."""
        if revision != commit:
            ref_file = self.repo_dir / "refs" / revision
            ref_file.parent.mkdir(parents=True, exist_ok=True)
            ref_file.write_text(commit)  # no newline: huggingface_hub reads the file verbatim


def _mb(n: int) -> str:
    """A byte count for people: 44.4 kB, 200.0 MB, 10.0 GB."""
    return f"{n / 1e3:,.1f} kB" if n < 1e6 else f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.1f} GB"


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
    if names & {"RemoteProtocolError", "ChunkedEncodingError", "IncompleteRead"}:
        return "the connection was cut mid-download"
    return f"{type(error).__name__}: {first_line}"


def _evict(pointer: Path) -> None:
    """Remove a cached file: the snapshot entry and its blob."""
    try:
        blob = pointer.resolve()
        pointer.unlink(missing_ok=True)
        if blob != pointer and blob.parent.name == "blobs":
            blob.unlink(missing_ok=True)
    except OSError as e:
        log.warning("could not remove damaged cache entry %s: %s", pointer, e)
