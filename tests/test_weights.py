"""Weights files: safetensors + sidecar round trip, bundled names, sha256 checks, and downloads
from a real Hub-shaped HTTP server on 127.0.0.1 through huggingface_hub."""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path

import pytest
import torch

from hub_server import HubServer
from srgan_core import hub as H
from srgan_core import weights as W
from srgan_core.models import Generator, GeneratorConfig

pytestmark = pytest.mark.timeout(60)
TINY = GeneratorConfig(channels=8, blocks=1)


def tiny_generator(seed: int, config: GeneratorConfig = TINY) -> Generator:
    torch.manual_seed(seed)
    return Generator(config).eval()


def same_output(a: Generator, b: Generator) -> bool:
    x = torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return torch.equal(a(x), b(x))


@pytest.fixture
def bundled(tmp_path, monkeypatch) -> Path:
    """A weights folder with a tiny bundled default, and a Hub cache of this test's own."""
    folder = tmp_path / "bundled"
    W.save_generator(tiny_generator(1, GeneratorConfig(channels=4, blocks=1)), folder / "srresnet_x4")
    monkeypatch.setenv("SRGAN_WEIGHTS_DIR", str(folder))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return folder


@pytest.fixture
def hub(tmp_path, monkeypatch, bundled):
    """A running loopback Hub serving hf://srgan-test/tiny-sr/tiny, with HF_ENDPOINT pointed at it."""
    model = tiny_generator(2)
    W.save_generator(model, tmp_path / "upload" / "tiny", description="tiny test model")
    server = HubServer()
    server.add_weights(tmp_path / "upload" / "tiny")
    server.model = model
    with server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def load_quietly(source, **kw):
    """load_generator, returning the loaded generator and every warning it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = W.load_generator(source, **kw)
    return loaded, caught


# -- local files ---------------------------------------------------------------------------------


def test_roundtrip_generator(tmp_path):
    model = tiny_generator(0)
    path = W.save_generator(model, tmp_path / "g", description="d", metrics={"Set5": {"psnr": 1.0}})
    assert path == tmp_path / "g.safetensors"
    meta = json.loads((tmp_path / "g.json").read_text())
    assert meta["format"] == W.FORMAT and meta["kind"] == "generator" and meta["architecture"] == "srresnet"
    assert meta["config"] == TINY.to_dict() and meta["scale"] == 4 and meta["name"] == "g"
    assert meta["metrics"] == {"Set5": {"psnr": 1.0}} and meta["description"] == "d"
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    for source in (tmp_path / "g", tmp_path / "g.safetensors", str(tmp_path / "g.json")):
        loaded = W.load_generator(source)
        assert loaded.name == "g" and loaded.path == path and loaded.fallback_reason is None
        assert not loaded.model.training and loaded.model.config == TINY
        assert same_output(loaded.model, model)


def test_roundtrip_raw_tensors(tmp_path):
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    path = W.save_weights(tensors, tmp_path / "raw.safetensors", {"kind": "toygan", "config": {"hidden": 5}})
    got, meta = W.read_weights(path)
    assert set(got) == {"a", "b"} and all(torch.equal(got[k], tensors[k]) for k in tensors)
    assert meta["kind"] == "toygan" and meta["name"] == "raw" and len(meta["sha256"]) == 64


def test_bundled_names_and_default(bundled):
    W.save_generator(tiny_generator(3), bundled / "tiny")
    W.save_weights({"w": torch.zeros(2)}, bundled / "toy", {"kind": "toygan"})
    assert W.list_bundled() == ["srresnet_x4", "tiny"]
    assert W.list_bundled("toygan") == ["toy"]
    assert W.load_generator("tiny").path == bundled / "tiny.safetensors"
    default = W.load_generator()
    assert default.name == "srresnet_x4" and default.fallback_reason is None
    W.save_generator(tiny_generator(4), bundled / "srgan_x4")  # the GAN model is preferred when present
    assert W.load_generator(None).name == "srgan_x4"


def test_unknown_name_lists_bundled(bundled):
    with pytest.raises(W.WeightsError, match="no such weights.*srresnet_x4"):
        W.load_generator("nope")


def test_sha_mismatch_refused(tmp_path):
    path = W.save_generator(tiny_generator(0), tmp_path / "g")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit of the last weight
    path.write_bytes(bytes(data))
    with pytest.raises(W.WeightsError, match=r"g\.safetensors: sha256 .* does not match"):
        W.read_weights(tmp_path / "g")


def test_missing_sidecar_refused(tmp_path):
    W.save_generator(tiny_generator(0), tmp_path / "g")
    (tmp_path / "g.json").unlink()
    with pytest.raises(W.WeightsError, match=r"g\.json is missing"):
        W.load_generator(tmp_path / "g.safetensors")


def test_real_bundled_default_loads(monkeypatch):
    monkeypatch.delenv("SRGAN_WEIGHTS_DIR", raising=False)
    present = [n for n in W.DEFAULT_GENERATORS if (W.WEIGHTS_DIR / f"{n}.safetensors").is_file()]
    if not present:
        pytest.skip("no bundled default weights yet (weights/srgan_x4 or weights/srresnet_x4)")
    loaded = W.load_generator()
    assert loaded.name == present[0] and loaded.model.scale == loaded.meta["scale"]
    with torch.inference_mode():
        out = loaded.model(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 8 * loaded.model.scale, 8 * loaded.model.scale)


# -- the Hub ---------------------------------------------------------------------------------------


def test_hub_download_then_cache_with_server_stopped(hub):
    ref = f"hf://{hub.repo_id}/tiny"
    loaded, caught = load_quietly(ref, timeout=20)
    assert not caught and loaded.fallback_reason is None
    assert loaded.name == "tiny" and loaded.revision == hub.commit and loaded.source == ref
    assert "hf-cache" in str(loaded.path) and same_output(loaded.model, hub.model)
    assert ("GET", f"/{hub.repo_id}/resolve/{hub.commit}/tiny.safetensors") in hub.requests

    hub.stop()
    t0 = time.monotonic()
    again, caught = load_quietly(ref, timeout=20)
    assert time.monotonic() - t0 < 5
    assert not caught and again.fallback_reason is None and again.revision == hub.commit
    assert same_output(again.model, hub.model)


def test_hub_pinned_commit_cached_needs_no_network(hub):
    pinned = f"hf://{hub.repo_id}/tiny.safetensors@{hub.commit}"
    first, _ = load_quietly(pinned, timeout=20)
    assert first.revision == hub.commit and first.fallback_reason is None
    seen = len(hub.requests)
    second, caught = load_quietly(pinned, timeout=20)
    assert not caught and second.fallback_reason is None
    assert len(hub.requests) == seen, "a pinned, cached file must not touch the network"


def test_hub_404_falls_back(hub):
    loaded, caught = load_quietly(f"hf://{hub.repo_id}/missing", timeout=20)
    assert loaded.name == "srresnet_x4" and "404" in loaded.fallback_reason
    assert len(caught) == 1 and issubclass(caught[0].category, W.HubFallbackWarning)
    assert "srresnet_x4" in str(caught[0].message) and "missing" in str(caught[0].message)


def test_hub_unknown_revision_falls_back(hub):
    loaded, caught = load_quietly(f"hf://{hub.repo_id}/tiny@v9", timeout=20)
    assert loaded.name == "srresnet_x4" and "RevisionNotFound" in loaded.fallback_reason and len(caught) == 1


def test_hub_wrong_hash_falls_back_and_is_evicted(hub):
    hub.fault = "wrong_sha"
    loaded, caught = load_quietly(f"hf://{hub.repo_id}/tiny", timeout=20)
    assert loaded.name == "srresnet_x4" and "sha256" in loaded.fallback_reason and len(caught) == 1
    hub.fault = None
    good, caught = load_quietly(f"hf://{hub.repo_id}/tiny", timeout=20)
    assert not caught and good.name == "tiny" and same_output(good.model, hub.model)


def test_hub_truncated_body_falls_back(hub):
    hub.fault = "truncate"
    t0 = time.monotonic()
    loaded, caught = load_quietly(f"hf://{hub.repo_id}/tiny", timeout=20)
    assert time.monotonic() - t0 < 20
    assert loaded.name == "srresnet_x4" and "cut" in loaded.fallback_reason and len(caught) == 1
    hub.fault = None
    assert load_quietly(f"hf://{hub.repo_id}/tiny", timeout=20)[0].name == "tiny"


def test_read_weights_from_hub_raises_instead_of_falling_back(hub):
    tensors, meta = W.read_weights(f"hf://{hub.repo_id}/tiny", timeout=20)
    assert meta["name"] == "tiny" and meta["description"] == "tiny test model"
    with pytest.raises(H.HubError, match="404"):
        W.read_weights(f"hf://{hub.repo_id}/missing", timeout=20)


def test_no_bundled_default_says_both(hub, monkeypatch, tmp_path):
    monkeypatch.setenv("SRGAN_WEIGHTS_DIR", str(tmp_path / "empty"))
    with pytest.raises(W.WeightsError, match="404.*no bundled default"):
        W.load_generator(f"hf://{hub.repo_id}/missing", timeout=20)


@pytest.mark.parametrize("ref", ["hf://owner", "hf://owner/repo", "hf://owner/repo/x@", "hf://o/r/../x"])
def test_malformed_hub_reference_raises(ref, bundled):
    with pytest.raises(W.WeightsError, match="expected hf://owner/repo/path"):
        W.load_generator(ref)


def test_parse_hub_ref():
    assert H.parse_hub_ref("hf://a/b/sub/m.safetensors@abc") == H.HubRef("a/b", "sub/m", "abc")
    assert H.parse_hub_ref("hf://a/b/m").revision == H.DEFAULT_HUB_REVISION
