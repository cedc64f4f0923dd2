import pytest
import torch

from srgan_core.models import (
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    count_parameters,
    generator_macs_per_lr_pixel,
)


def test_default_generator_is_the_papers_srresnet():
    g = Generator()
    assert g.config == GeneratorConfig(scale=4, channels=64, blocks=16)
    assert 1.50e6 < count_parameters(g) < 1.60e6  # the paper's ~1.55 M
    assert len(g.body) == 16 and len(g.upsample) == 2
    assert g.head[0].kernel_size == (9, 9) and g.tail.kernel_size == (9, 9)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_generator_upscales_by_its_factor(scale):
    g = Generator(GeneratorConfig(scale=scale, channels=8, blocks=2)).eval()
    with torch.no_grad():
        out = g(torch.rand(1, 3, 7, 5))
    assert out.shape == (1, 3, 7 * scale, 5 * scale)
    assert len(g.upsample) == {2: 1, 4: 2, 8: 3}[scale]


def test_generator_rejects_unsupported_scale():
    with pytest.raises(ValueError, match="scale"):
        GeneratorConfig(scale=3)


def test_batch_norm_can_be_dropped():
    g = Generator(GeneratorConfig(channels=8, blocks=2, batch_norm=False))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())


@pytest.mark.parametrize("size", [32, 96, 131])
def test_discriminator_accepts_any_size_from_32(size):
    d = Discriminator(DiscriminatorConfig(base_channels=8)).eval()
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32, 64, 64]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    with torch.no_grad():
        assert d(torch.rand(2, 3, size, size)).shape == (2,)


def test_discriminator_default_widths_and_small_input_message():
    d = Discriminator()
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].out_channels == 64 and convs[-1].out_channels == 512
    assert d.classifier[1].out_features == 1024 and d.classifier[-1].out_features == 1
    with pytest.raises(ValueError, match="at least 32"):
        d(torch.rand(1, 3, 16, 40))


def test_mac_count_matches_the_layers():
    cfg = GeneratorConfig(channels=16, blocks=3)
    g = Generator(cfg)
    counted = 0

    def hook(module, inputs, output):
        nonlocal counted
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
        counted += k * output.numel() // output.shape[0] * 1  # MACs per output element x elements

    for m in g.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        g(torch.rand(1, 3, 10, 10))
    assert counted == generator_macs_per_lr_pixel(cfg) * 100


def test_icnr_starts_every_sub_pixel_alike_so_there_is_no_checkerboard():
    import torch.nn.functional as F

    from srgan_core.models import UpsampleStage, icnr_

    torch.manual_seed(0)
    stage = UpsampleStage(8)
    x = torch.rand(1, 8, 6, 6)
    before = stage.shuffle(stage.conv(x))
    icnr_(stage.conv)
    after = stage.shuffle(stage.conv(x))
    # after ICNR the shuffled output is a nearest-neighbour upsampling of one conv's output
    nearest = F.interpolate(after[..., ::2, ::2], scale_factor=2, mode="nearest")
    assert torch.allclose(after, nearest, atol=1e-6)
    assert not torch.allclose(before, F.interpolate(before[..., ::2, ::2], scale_factor=2, mode="nearest"), atol=1e-3)


def test_spectral_norm_discriminator_keeps_its_layers_normalised():
    from srgan_core.models import Discriminator, DiscriminatorConfig

    d = Discriminator(DiscriminatorConfig(base_channels=4, dense=8, batch_norm=False, spectral_norm=True))
    assert any("parametrizations" in name for name, _ in d.named_parameters())
    assert d(torch.rand(2, 3, 32, 32)).shape == (2,)
