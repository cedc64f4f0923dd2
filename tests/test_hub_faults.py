"""Every way the Hub can fail ends the same way: the bundled default, one clear warning, no
broken file left in the cache, and the next good download succeeds.

The Hub is a real HTTP server on 127.0.0.1 (tests/hub_server.py) reached through
huggingface_hub with HF_ENDPOINT pointed at it.
"""
from __future__ import annotations

import hashlib
import logging
import time
import warnings
from pathlib import Path

import pytest
import torch

from hub_server import HubServer
from srgan_core import weights as W
from srgan_core.models import Generator, GeneratorConfig

pytestmark = pytest.mark.timeout(90)
TIMEOUT = 3.0  # the loader's overall Hub deadline in these tests (the app's default is larger)

# fault -> (words the fallback reason must contain (any of), longest the fallback may take)
CASES = {
    "down": (["cannot connect"], 2.0),
    "slow": (["did not answer in time", "within"], TIMEOUT + 1.5),
    "slow_body": (["within"], TIMEOUT + 1.5),
    "404": (["404"], 2.0),
    "500": (["HTTP 500"], 2.0),
    "corrupt": (["tiny.json rejected", "not valid JSON"], 2.0),
    "corrupt_tensors": (["tiny.safetensors rejected", "sha256"], 2.0),
    "wrong_sha": (["sha256"], 2.0),
    "truncate": (["cut mid-download", "within"], TIMEOUT + 1.5),
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
