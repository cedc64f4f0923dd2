import os
import subprocess
import sys

import pytest
import torch
from torchvision.models import vgg19

from srgan_core import losses


@pytest.fixture(scope="module")
def random_vgg():
    torch.manual_seed(0)
    return vgg19(weights=None)


@pytest.mark.parametrize("layer, channels, stride", [("vgg22", 128, 2), ("vgg54", 512, 16)])
def test_vgg_cut_ends_after_the_named_relu(random_vgg, layer, channels, stride):
    feats = losses.VGGFeatures(layer, vgg=random_vgg)
    last = list(feats.features.children())[-1]
    assert isinstance(last, torch.nn.ReLU)
    convs = [m for m in feats.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == {"vgg22": 4, "vgg54": 16}[layer]
    out = feats(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, channels, 64 // stride, 64 // stride)
    assert not any(p.requires_grad for p in feats.parameters())


def test_vgg_content_loss_is_rescaled_and_passes_gradients(random_vgg):
    feats = losses.VGGFeatures("vgg22", vgg=random_vgg)
    sr = torch.rand(2, 3, 32, 32, requires_grad=True)
    hr = torch.rand(2, 3, 32, 32)
    loss = losses.content_loss(sr, hr, "vgg22", feats)
    expected = torch.mean((feats(sr) / 12.75 - feats(hr) / 12.75) ** 2)
    assert torch.allclose(loss, expected)
    loss.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0


def test_content_and_adversarial_terms_are_the_papers():
    sr, hr = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    logits = torch.tensor([0.3, -1.0, 2.0, 0.0])
    assert torch.isclose(losses.content_loss(sr, hr, "mse"), torch.mean((sr - hr) ** 2))
    assert torch.isclose(losses.content_loss(sr, hr, "l1"), torch.mean((sr - hr).abs()))
    assert torch.isclose(losses.adversarial_loss(logits), -torch.log(torch.sigmoid(logits)).mean())
    assert losses.ADVERSARIAL_WEIGHT == 1e-3
    with pytest.raises(ValueError, match="VGG"):
        losses.content_loss(sr, hr, "vgg54")


def test_relativistic_losses_compare_with_the_other_kinds_mean():
    real, fake = torch.tensor([2.0, 1.0]), torch.tensor([-1.0, 0.5])
    sp = torch.nn.functional.softplus  # -log sigmoid(x) = softplus(-x)
    d = (sp(-(real - fake.mean())).mean() + sp(fake - real.mean()).mean()) / 2
    g = (sp(real - fake.mean()).mean() + sp(-(fake - real.mean())).mean()) / 2
    assert torch.isclose(losses.discriminator_loss(real, fake, "relativistic"), d)
    assert torch.isclose(losses.adversarial_loss(fake, real, "relativistic"), g)
    # shifting every logit by the same amount changes nothing: only the relation counts
    assert torch.isclose(losses.discriminator_loss(real + 5, fake + 5, "relativistic"), d)


def test_discriminator_loss_labels_real_one_fake_zero():
    confident = losses.discriminator_loss(torch.full((4,), 10.0), torch.full((4,), -10.0))
    fooled = losses.discriminator_loss(torch.full((4,), -10.0), torch.full((4,), 10.0))
    assert confident < 1e-3 < 10 < fooled


def test_missing_vgg_weights_fail_fast_with_a_remedy(tmp_path):
    """Offline, asking for a VGG loss must say what is missing and how to provide it."""
    code = "from srgan_core.losses import load_vgg19\nload_vgg19()"
    env = dict(os.environ, TORCH_HOME=str(tmp_path))
    env.setdefault("PYTHONPATH", os.getcwd())
    probe = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    if probe.returncode == 0:
        pytest.skip("VGG19 weights could be downloaded here; the offline message cannot be exercised")
    assert "VGG19 ImageNet weights" in probe.stderr
    assert "--content-loss mse" in probe.stderr and "vgg19-dcbb9e9d.pth" in probe.stderr


def test_grid_loss_sees_a_pattern_locked_to_the_output_grid_and_not_plain_noise():
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 96, 96)
    tile = torch.randn(1, 3, 4, 4) * 0.02
    grid = hr + tile.repeat(1, 1, 24, 24)  # the same 4x4 error everywhere: a checkerboard-like pattern
    noise = hr + torch.randn_like(hr) * 0.02  # as much error, but not periodic
    assert losses.grid_loss(hr, hr, 4) == 0
    assert losses.grid_loss(grid, hr, 4) > 20 * losses.grid_loss(noise, hr, 4)
    flat_shift = hr + 0.05  # an error shared by every sub-pixel phase is not a grid pattern
    assert losses.grid_loss(flat_shift, hr, 4) < 1e-12
