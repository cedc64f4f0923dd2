"""Every way the Hub can fail ends the same way: the bundled default, one clear warning, no
broken file left in the cache, and the next good download succeeds. And Hub use is bounded: a
file advertised as too large or a sidecar declaring an absurd generator is refused before it is
downloaded, one download runs at a time, and a download past its deadline is really stopped.

The Hub is a real HTTP server on 127.0.0.1 (tests/hub_server.py) reached through
huggingface_hub with HF_ENDPOINT pointed at it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

from hub_server import BLOAT_BYTES, HUGE_BYTES, HubServer
from srgan_core import hub as H
from srgan_core import weights as W
from srgan_core.models import Generator, GeneratorConfig

pytestmark = pytest.mark.timeout(90)
TIMEOUT = 3.0  # the loader's overall Hub deadline in these tests (the app's default is larger)
FAST, BOUNDED = TIMEOUT, 2 * TIMEOUT  # answered without waiting for the deadline / cut off by it

# fault -> (words the fallback reason must contain (any of), longest the fallback may take)
CASES = {
    "down": (["cannot connect"], FAST),
    "slow": (["did not answer in time", "within"], BOUNDED),
    "slow_body": (["did not answer in time", "within"], BOUNDED),
    "404": (["404"], FAST),
    "500": (["HTTP 500"], FAST),
    "corrupt": (["tiny.json rejected", "not valid JSON"], FAST),
    "corrupt_tensors": (["tiny.safetensors rejected", "sha256"], FAST),
    "wrong_sha": (["sha256"], FAST),
    "truncate": (["cut mid-download", "within"], BOUNDED),
    "trickle": (["within"], BOUNDED),
}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    torch.manual_seed(7)
    model = Generator(GeneratorConfig(channels=8, blocks=1)).eval()
    W.save_generator(model, tmp_path / "upload" / "tiny")
    W.save_generator(Generator(GeneratorConfig(channels=4, blocks=1)), tmp_path / "bundled" / "srresnet_x4")
    monkeypatch.setenv("SRGAN_WEIGHTS_DIR", str(tmp_path / "bundled"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    server = HubServer()
    server.add_weights(tmp_path / "upload" / "tiny")
    server.model = model
    server.cache = tmp_path / "hf-cache"
    with server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def broken_cache_files(cache: Path, good: set[bytes]) -> list[Path]:
    """Cached files (blobs and snapshot entries) whose bytes are not a file the repo really holds.
    Unfinished downloads (*.incomplete) are never handed out by huggingface_hub, so they don't count."""
    if not cache.exists():
        return []
    files = [p for p in cache.rglob("*") if p.is_file() and (p.parent.name == "blobs" or "snapshots" in p.parts)]
    return [p for p in files if not p.name.endswith(".incomplete") and p.read_bytes() not in good]


@pytest.mark.parametrize("fault", list(CASES))
def test_fault_falls_back_once_and_leaves_no_broken_file(hub, fault, caplog):
    words, bound = CASES[fault]
    ref = f"hf://{hub.repo_id}/tiny"
    if fault == "down":
        hub.stop()
    elif fault == "corrupt_tensors":
        hub.fault, hub.fault_only = "corrupt", ".safetensors"
    else:
        hub.fault = fault

    caplog.set_level(logging.WARNING)
    t0 = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = W.load_generator(ref, timeout=TIMEOUT)
    elapsed = time.monotonic() - t0

    assert elapsed < bound, f"{fault}: took {elapsed:.1f} s"
    assert loaded.name == "srresnet_x4" and loaded.source == ref and loaded.revision is None
    assert loaded.fallback_reason and any(w in loaded.fallback_reason for w in words), loaded.fallback_reason
    assert [w.category for w in caught] == [W.HubFallbackWarning], [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert ref in message and "srresnet_x4" in message
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy, f"log warnings besides the one warning: {[r.getMessage() for r in noisy]}"

    good = set(hub.files.values())
    assert broken_cache_files(hub.cache, good) == []

    # the Hub recovers: the next load downloads good files, whatever the failure left behind
    if fault == "down":
        hub.start()
    hub.fault, hub.fault_only = None, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recovered = W.load_generator(ref, timeout=20)
    assert not caught, [str(w.message) for w in caught]
    assert recovered.name == "tiny" and recovered.fallback_reason is None and recovered.revision == hub.commit
    assert hashlib.sha256(recovered.path.read_bytes()).hexdigest() == recovered.meta["sha256"]
    assert torch.equal(recovered.model.tail.weight, hub.model.tail.weight)
    assert broken_cache_files(hub.cache, good) == []


def test_shape_mismatch_on_the_hub_falls_back(hub, tmp_path):
    """A Hub file that downloads fine but does not fit its own sidecar is a Hub failure too."""
    import json

    sidecar = json.loads(hub.files["tiny.json"])
    sidecar["config"]["channels"] = 16
    hub.add_file("tiny.json", json.dumps(sidecar).encode())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = W.load_generator(f"hf://{hub.repo_id}/tiny", timeout=20)
    assert loaded.name == "srresnet_x4" and "do not match the sidecar's config" in loaded.fallback_reason
    assert len(caught) == 1


def test_stale_broken_blob_in_cache_is_replaced(hub):
    """A bad copy already in the cache (say from an interrupted older run) is replaced, not trusted."""
    ref = f"hf://{hub.repo_id}/tiny"
    first = W.load_generator(ref, timeout=20)
    blob = first.path.resolve()
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")  # damage it behind the library's back
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = W.load_generator(ref, timeout=20)
    assert not caught and again.name == "tiny" and again.fallback_reason is None
    assert broken_cache_files(hub.cache, set(hub.files.values())) == []


# -- bounded Hub use ---------------------------------------------------------------------------------


def cache_files(cache: Path) -> dict[Path, int]:
    """Every file under the cache with its size (symlinks not followed)."""
    return {p: p.lstat().st_size for p in cache.rglob("*") if not p.is_dir()} if cache.exists() else {}


def gets(hub, suffix: str) -> list[str]:
    return [path for method, path in hub.requests if method == "GET" and path.endswith(suffix)]


def test_huge_file_refused_before_download(hub):
    """A tensor file advertised at 10 GB is refused from its metadata alone: no GET is sent."""
    hub.fault, hub.fault_only = "huge", ".safetensors"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = W.load_generator(f"hf://{hub.repo_id}/tiny", timeout=20)
    assert loaded.name == "srresnet_x4" and len(caught) == 1
    reason = loaded.fallback_reason
    assert "tiny.safetensors" in reason and f"{HUGE_BYTES / 1e9:.1f} GB" in reason, reason
    assert f"{H.HUB_MAX_BYTES / 1e6:.1f} MB" in reason and "nothing was downloaded" in reason, reason
    assert ("HEAD", f"/{hub.repo_id}/resolve/{hub.commit}/tiny.safetensors") in hub.requests
    assert gets(hub, ".safetensors") == [], "the huge file was requested"
    assert not [p for p in cache_files(hub.cache) if p.name.endswith(".incomplete")]


def test_huge_sidecar_refused_before_download(hub):
    hub.fault, hub.fault_only = "huge", ".json"
    with pytest.raises(H.HubError, match=r"tiny\.json is 10\.0 GB on the Hub; the limit is 1\.0 MB"):
        W.read_weights(f"hf://{hub.repo_id}/tiny", timeout=20)
    assert gets(hub, ".json") == [] and gets(hub, ".safetensors") == []


def test_oversized_generator_in_sidecar_refused_before_its_tensors(hub, monkeypatch):
    """A sidecar declaring 100,000 blocks is refused on its numbers: the tensor file is never asked
    for, and no Generator is ever built."""
    from srgan_core import weights

    sidecar = json.loads(hub.files["tiny.json"])
    sidecar["config"]["blocks"] = 100_000
    hub.add_file("tiny.json", json.dumps(sidecar).encode())
    built = []
    real_generator = weights.Generator
    monkeypatch.setattr(weights, "Generator", lambda config: built.append(config) or real_generator(config))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = W.load_generator(f"hf://{hub.repo_id}/tiny", timeout=20)
    assert loaded.name == "srresnet_x4" and len(caught) == 1
    assert "blocks=100000" in loaded.fallback_reason and f"0 to {W.MAX_BLOCKS}" in loaded.fallback_reason
    assert [c.blocks for c in built] == [1], "only the bundled default may be built"
    assert not [r for r in hub.requests if r[1].endswith(".safetensors")], "the tensor file was requested"


def test_concurrent_loads_download_one_at_a_time(hub, tmp_path):
    """Two loads started together, each needing its own download: their requests may overlap,
    their downloads may not (the server counts bodies in flight)."""
    W.save_generator(Generator(GeneratorConfig(channels=8, blocks=1)), tmp_path / "upload" / "tiny2")
    hub.add_weights(tmp_path / "upload" / "tiny2")
    hub.fault, hub.fault_only = "trickle", ".safetensors"
    hub.trickle_chunk = max(1, len(hub.files["tiny.safetensors"]) // 10)  # ten pieces, ~0.2 s a file
    results, spans = {}, {}
    start = threading.Barrier(2)

    def load(name: str) -> None:
        start.wait()
        t0 = time.monotonic()
        results[name] = W.load_generator(f"hf://{hub.repo_id}/{name}", timeout=60)
        spans[name] = (t0, time.monotonic())

    threads = [threading.Thread(target=load, args=(n,)) for n in ("tiny", "tiny2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert {n: r.name for n, r in results.items()} == {"tiny": "tiny", "tiny2": "tiny2"}
    assert all(r.fallback_reason is None for r in results.values())
    assert len(gets(hub, ".safetensors")) == 2
    (a0, a1), (b0, b1) = spans.values()
    assert a0 < b1 and b0 < a1, "the two loads did not run at the same time; the test proves nothing"
    assert hub.max_bodies == 1, f"{hub.max_bodies} downloads ran at once"


def test_download_past_deadline_is_stopped_and_leaves_nothing(hub):
    """A server trickling the tensor file far slower than the deadline allows: the call returns
    at the deadline, the connection is closed (the server sees its client go), no partial file is
    left in the cache, nothing keeps writing there, and no thread is left behind."""
    hub.fault, hub.fault_only = "trickle", ".safetensors"
    hub.trickle_chunk = 16  # 800 bytes/s: the tiny tensor file (~44 kB) would take about a minute
    deadline_s = 2.0
    assert len(hub.files["tiny.safetensors"]) > 10 * deadline_s * hub.trickle_chunk / hub.trickle_interval
    before = set(threading.enumerate())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = W.load_generator(f"hf://{hub.repo_id}/tiny", timeout=deadline_s)
    assert loaded.name == "srresnet_x4" and f"within {deadline_s:g} s" in loaded.fallback_reason and len(caught) == 1
    assert len(gets(hub, ".safetensors")) == 1

    deadline = time.monotonic() + 20  # the server notices at its next write
    while hub.aborted == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.aborted == 1 and hub.bodies == 0, "the download's connection was left open"
    first = cache_files(hub.cache)
    assert not [p for p in first if p.name.endswith(".incomplete")], "a partial download was left in the cache"
    assert not [p for p in first if p.name == "tiny.safetensors"]
    time.sleep(3 * hub.trickle_interval)
    assert cache_files(hub.cache) == first, "something is still writing into the cache"
    left = [t for t in set(threading.enumerate()) - before if "process_request" not in t.name]
    assert left == [], f"threads left running: {left}"


def test_body_longer_than_advertised_is_cut_at_the_advertised_size(hub):
    """A server that says 44 kB and then streams 50 MB: reading stops at the advertised size,
    the connection is dropped, and nothing of it stays on disk."""
    hub.fault, hub.fault_only = "bloat", ".safetensors"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = W.load_generator(f"hf://{hub.repo_id}/tiny", timeout=20)
    size = len(hub.files["tiny.safetensors"])
    assert loaded.name == "srresnet_x4" and len(caught) == 1
    assert f"tiny.safetensors sent more than {size / 1e3:.1f} kB (its advertised size); stopped" in loaded.fallback_reason
    deadline = time.monotonic() + 20
    while hub.aborted == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.aborted == 1, "the client read the whole bloated body"
    assert sum(cache_files(hub.cache).values()) < BLOAT_BYTES / 100
    assert not [p for p in cache_files(hub.cache) if p.name.endswith(".incomplete")]
