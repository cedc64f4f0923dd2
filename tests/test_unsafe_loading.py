"""Nothing is ever unpickled, and tensors that do not fit their sidecar never reach a model.

The pickles here are real `torch.save` files carrying a payload that would create a marker file
if anything unpickled them; the marker must never appear.
"""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch

from hub_server import HubServer
from srgan_core import weights as W
from srgan_core.models import Generator, GeneratorConfig

pytestmark = pytest.mark.timeout(60)
TINY = GeneratorConfig(channels=8, blocks=1)


class Booby:
    """Unpickling this touches a file: proof that something called pickle.load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def booby_trapped_checkpoint(path: Path, marker: Path) -> Path:
    state = Generator(TINY).state_dict()
    torch.save({"state_dict": state, "trap": Booby(marker)}, path)
    return path


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".ckpt", ".pkl"])
def test_pickles_refused_without_reading(tmp_path, suffix):
    marker = tmp_path / "unpickled"
    path = booby_trapped_checkpoint(tmp_path / f"model{suffix}", marker)
    for call in (W.load_generator, W.read_weights):
        with pytest.raises(W.WeightsError) as info:
            call(path)
        message = str(info.value)
        assert suffix in message and "safetensors" in message and "Convert" in message
    assert not marker.exists(), "the checkpoint was unpickled"


def test_pickle_on_the_hub_refused_before_any_request(tmp_path, monkeypatch):
    with HubServer() as hub:
        hub.add_file("model.pth", pickle.dumps({"w": 1}))
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
        with pytest.raises(W.WeightsError, match="refusing to load a .pth file"):
            W.load_generator(f"hf://{hub.repo_id}/model.pth@main")
        assert hub.requests == []


def test_pickle_renamed_to_safetensors_is_not_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    path = booby_trapped_checkpoint(tmp_path / "model.safetensors", marker)
    # a sidecar whose sha256 matches, so the file gets as far as the safetensors parser
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "model.json").write_text(json.dumps({"format": W.FORMAT, "kind": "generator", "sha256": sha}))
    with pytest.raises(W.WeightsError, match="not a valid safetensors file.*pickled PyTorch checkpoint"):
        W.load_generator(path)
    assert not marker.exists()


def test_booby_trap_works(tmp_path):
    """The trap must spring when unpickled, or the tests above could not fail. This is the one
    deliberate unpickling in the project: of a file this test has just written itself."""
    marker = tmp_path / "unpickled"
    path = booby_trapped_checkpoint(tmp_path / "model.pth", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_shapes_not_matching_sidecar_refused(tmp_path):
    W.save_generator(Generator(TINY), tmp_path / "g")
    sidecar = json.loads((tmp_path / "g.json").read_text())
    sidecar["config"]["channels"] = 16  # the sidecar now describes a wider network than the tensors hold
    (tmp_path / "g.json").write_text(json.dumps(sidecar))
    with pytest.raises(W.WeightsError) as info:
        W.load_generator(tmp_path / "g")
    message = str(info.value)
    assert "do not match the sidecar's config" in message and "[8, 3, 9, 9]" in message and "[16, 3, 9, 9]" in message


def test_missing_and_extra_tensors_refused(tmp_path):
    state = Generator(TINY).state_dict()
    state.pop("tail.weight")
    state["extra"] = torch.zeros(1)
    W.save_weights(state, tmp_path / "g", {"kind": "generator", "architecture": "srresnet", "config": TINY.to_dict()})
    with pytest.raises(W.WeightsError, match="missing tail.weight; unexpected extra"):
        W.load_generator(tmp_path / "g")


def test_wrong_kind_refused(tmp_path):
    W.save_weights({"w": torch.zeros(2)}, tmp_path / "toy", {"kind": "toygan", "architecture": "toygan-mlp"})
    with pytest.raises(W.WeightsError, match="not an SRResNet generator"):
        W.load_generator(tmp_path / "toy")


def test_unknown_config_field_refused(tmp_path):
    W.save_generator(Generator(TINY), tmp_path / "g")
    sidecar = json.loads((tmp_path / "g.json").read_text())
    sidecar["config"]["depth"] = 3
    (tmp_path / "g.json").write_text(json.dumps(sidecar))
    with pytest.raises(W.WeightsError, match="is not a generator config"):
        W.load_generator(tmp_path / "g")


# -- sanity limits on what a sidecar may declare ----------------------------------------------------

SANE_LIMITS = {"blocks": f"0 to {W.MAX_BLOCKS}", "channels": f"1 to {W.MAX_CHANNELS}",
               "in_channels": f"1 to {W.MAX_IN_CHANNELS}", "scale": "2, 4, 8"}


@pytest.mark.parametrize("field, value", [
    ("blocks", 100_000), ("blocks", -1), ("blocks", True), ("blocks", 2.5), ("channels", 100_000),
    ("channels", 0), ("channels", "64"), ("in_channels", 1000), ("scale", 3), ("scale", 1024), ("scale", None),
])
def test_absurd_generator_sidecar_refused_before_any_tensor(tmp_path, monkeypatch, field, value):
    """The sidecar's numbers are checked first: neither the tensor file nor a Generator is touched."""
    W.save_generator(Generator(TINY), tmp_path / "g")
    sidecar = json.loads((tmp_path / "g.json").read_text())
    sidecar["config"][field] = value
    (tmp_path / "g.json").write_text(json.dumps(sidecar))
    touched = []
    monkeypatch.setattr(W, "Generator", lambda *a, **k: touched.append("Generator"))
    monkeypatch.setattr(W, "read_tensors", lambda *a, **k: touched.append("read_tensors"))
    for call in (W.load_generator, W.read_weights):
        with pytest.raises(W.WeightsError) as info:
            call(tmp_path / "g")
        message = str(info.value)
        assert f"{field}={value!r}" in message and SANE_LIMITS[field] in message and "g.json" in message, message
    assert touched == []


def test_largest_sane_generator_is_accepted_and_fits_the_hub_limit(tmp_path):
    """The limits admit the largest generator they name, and its tensor file is under the Hub's
    download limit, so no legitimate sidecar points at a file the Hub transport would refuse."""
    from srgan_core.hub import HUB_MAX_BYTES

    meta = {"config": GeneratorConfig(channels=W.MAX_CHANNELS, blocks=W.MAX_BLOCKS).to_dict()}
    config = W.generator_config(meta, tmp_path / "big.json")
    with torch.device("meta"):  # shapes only, no memory
        model = Generator(config)
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert 100e6 < size < HUB_MAX_BYTES


def test_huge_sidecar_refused_unread(tmp_path):
    W.save_generator(Generator(TINY), tmp_path / "g")
    sidecar = json.loads((tmp_path / "g.json").read_text())
    sidecar["description"] = "x" * (W.MAX_SIDECAR_BYTES + 1)
    (tmp_path / "g.json").write_text(json.dumps(sidecar))
    with pytest.raises(W.WeightsError, match=r"sidecar is 1,000,\d{3} bytes; the limit is 1,000,000"):
        W.load_generator(tmp_path / "g")
