"""Training loop: resumption is exact, torchrun splits a batch exactly, the CLI maps onto the config."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from srgan_core.cli import main
from srgan_core.data import PatchDataset, edge_energy
from srgan_core.flags import config_to_flags
from srgan_core.train import TrainConfig, learning_rate, train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A few real image files with structure (gradients + noise), one too small, one broken."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(6):
        yy, xx = np.mgrid[0:64, 0:80]
        base = (np.sin(xx / (3 + i)) + np.cos(yy / (4 + i))) * 60 + 128
        img = np.clip(base[..., None] + rng.normal(0, 10, (64, 80, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
    Image.new("RGB", (20, 20)).save(folder / "tiny.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def tiny(images: Path, out: Path, **kw) -> TrainConfig:
    base = dict(train_data=[str(images)], val_data=[str(images)], out=str(out), channels=8, blocks=2,
                d_channels=4, patch=32, batch_size=4, iterations=4, lr=1e-3, lr_min=1e-4, log_every=1,
                val_every=2, val_max_images=1, ckpt_every=2, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def trains_with(images: Path, out: Path, loss: str, weight: float) -> None:
    """A tiny real run with `{loss}_weight` set: every G step logs a positive `{loss}_loss`, and
    config.json records the weight (so the flag reproduces the run)."""
    train(tiny(images, out, **{f"{loss}_weight": weight}))
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(line[f"{loss}_loss"] > 0 for line in lines if "g_loss" in line)
    assert json.loads((out / "config.json").read_text())[f"{loss}_weight"] == weight


def test_dataset_skips_small_and_unreadable_files_with_a_warning(images):
    with pytest.warns(UserWarning) as record:
        data = PatchDataset([images], scale=4, patch=32)
    messages = " ".join(str(w.message) for w in record)
    assert "tiny.png" in messages and "smaller than the 32 px crop" in messages
    assert "broken.png" in messages and "unreadable" in messages
    assert len(data) == 6
    lr, hr = data[3]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32)
    again = data[3]
    assert (again[1] == hr).all()  # item i of an epoch is fixed
    data.set_epoch(1)
    assert not (data[3][1] == hr).all()  # and changes from epoch to epoch


def test_texture_tries_picks_the_most_textured_crop(tmp_path):
    """One image, flat on the left half and noise on the right: with many tries nearly every
    patch lands in the noise; with one try (the default) crops stay uniform, as before."""
    rng = np.random.default_rng(1)
    img = np.full((64, 256, 3), 128, np.uint8)
    img[:, 128:] = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "half.png")
    uniform = PatchDataset([tmp_path], scale=4, patch=32, seed=0, repeat=64)
    picky = PatchDataset([tmp_path], scale=4, patch=32, seed=0, repeat=64, texture_tries=8)
    energy = lambda data: [edge_energy((data[i][1].permute(1, 2, 0).numpy() * 255)) for i in range(len(data))]
    flat = lambda values: sum(v < 1.0 for v in values)  # patches wholly in the flat half
    assert flat(energy(uniform)) >= 10  # about 3/8 of 64 uniform crops fall in the flat part
    assert flat(energy(picky)) == 0
    assert np.mean(energy(picky)) > 1.5 * np.mean(energy(uniform))
    assert (picky[5][1] == picky[5][1]).all() and (picky[5][0] == picky[5][0]).all()  # still deterministic
    with pytest.raises(ValueError, match="texture_tries"):
        PatchDataset([tmp_path], scale=4, patch=32, texture_tries=0)
    with pytest.raises(ValueError, match="texture_tries"):
        TrainConfig(texture_tries=0)
    with pytest.raises(ValueError, match="texture_tries must be from 1 to 64, got 1000000"):
        TrainConfig(texture_tries=1_000_000)  # absurd: refused up front, not a run that crawls


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("stage", ["srresnet", "srgan"])
def test_resumed_run_equals_a_straight_run(images, tmp_path, stage):
    straight = tiny(images, tmp_path / "straight", stage=stage)
    train(straight)
    first = tiny(images, tmp_path / "resumed", stage=stage, iterations=4, max_minutes=1e-9)
    train(first)  # stops after its first iteration with a checkpoint ...
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert state["iteration"] == 1
    first.max_minutes = 0.0
    train(first, resume=True)  # ... and continues to 4
    a = load_file(str(tmp_path / "straight" / "generator.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "generator.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k
    if stage == "srgan":
        da = load_file(str(tmp_path / "straight" / "checkpoint" / "discriminator.safetensors"))
        db = load_file(str(tmp_path / "resumed" / "checkpoint" / "discriminator.safetensors"))
        assert all((da[k] == db[k]).all() for k in da)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_run_folder_contents(images, tmp_path):
    cfg = tiny(images, tmp_path / "run", stage="srgan")
    result = train(cfg)
    run = tmp_path / "run"
    assert {"config.json", "metrics.jsonl", "samples", "checkpoint", "generator.safetensors", "generator.json"} <= {p.name for p in run.iterdir()}
    assert TrainConfig.from_json(run / "config.json") == cfg
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [line for line in lines if "g_loss" in line]
    assert [line["iteration"] for line in losses] == [1, 2, 3, 4]
    assert all({"d_loss", "adv_loss", "content_loss"} <= line.keys() for line in losses)
    assert any("validation" in line for line in lines)
    assert set(result) == {images.name} and result[images.name]["psnr"] > 5
    sidecar = json.loads((run / "generator.json").read_text())
    assert sidecar["config"]["channels"] == 8 and sidecar["training"]["iterations"] == 4
    assert sidecar["training"]["command"].startswith("python -m srgan_core train ")
    # the recipe names data folders as DATA/NAME, not where they were on the training machine
    assert f"--train-data DATA/{images.name}" in sidecar["training"]["command"] and str(images) not in json.dumps(sidecar)
    assert len(list((run / "samples").iterdir())) == 2


def test_learning_rate_schedule_is_cosine_and_ends_at_lr_min():
    cfg = TrainConfig(iterations=101, lr=1e-3, lr_min=1e-5)
    assert learning_rate(cfg, 0) == pytest.approx(1e-3)
    assert learning_rate(cfg, 50) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(cfg, 100) == pytest.approx(1e-5)


def test_every_config_field_is_a_documented_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    from dataclasses import fields

    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in text
    assert "--resume" in text and "torchrun" in text


def test_flags_round_trip_through_the_cli():
    cfg = TrainConfig(train_data=["a", "b"], channels=32, batch_norm=False, lr=2e-4)
    flags = config_to_flags(cfg)
    assert "--no-batch-norm" in flags and "--train-data a b" in flags
    from srgan_core.cli import build_parser

    args = build_parser().parse_args(["train", *flags.split()])
    from srgan_core.flags import config_from_args

    assert config_from_args(TrainConfig, args) == cfg


def test_bad_train_flags_give_one_line(capsys, tmp_path):
    assert main(["train", "--train-data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing" in err and "Traceback" not in err
    assert main(["train", "--train-data", "x", "--iterations", "0"]) == 2
    assert main(["train", "--resume", str(tmp_path)]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_two_gloo_processes_equal_one_process_at_the_same_global_batch(images, tmp_path):
    """torchrun --nproc_per_node 2 at global batch 2b gives the weights of one process at batch 2b."""
    common = ["--train-data", str(images), "--channels", "8", "--blocks", "2", "--patch", "32",
              "--batch-size", "4", "--iterations", "2", "--lr", "1e-3", "--threads", "1",
              "--no-batch-norm", "--log-every", "1", "--val-every", "100", "--ckpt-every", "100"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, "-m", "srgan_core", "train", *common, "--out", str(tmp_path / "one")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    multi = subprocess.run([*launcher, "-m", "srgan_core", "train", *common, "--out", str(tmp_path / "two")],
                           env=env, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-2000:]
    a = load_file(str(tmp_path / "one" / "generator.safetensors"))
    b = load_file(str(tmp_path / "two" / "generator.safetensors"))
    for k in a:
        assert np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6, rtol=1e-5), k
    start = load_file(str(tmp_path / "one" / "generator.safetensors"))
    assert any(v.abs().sum() > 0 for v in start.values())
    # only rank 0 wrote: one metrics line per iteration
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 2


# ----------------------------------------------------------------------------- faults


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_folder_with_fewer_images_than_the_batch_trains(images, tmp_path):
    cfg = tiny(images, tmp_path / "small", batch_size=16, iterations=2, val_data=[])
    train(cfg)  # 6 usable images, batch 16: each batch spans several epochs of the folder
    assert (tmp_path / "small" / "generator.safetensors").exists()


def test_train_step_updates_d_then_g_with_the_papers_weighting():
    import torch

    from srgan_core.models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
    from srgan_core.train import Models, train_step

    torch.manual_seed(0)
    g = Generator(GeneratorConfig(channels=8, blocks=1))
    d = Discriminator(DiscriminatorConfig(base_channels=4, dense=8))
    opts = {"g": torch.optim.Adam(g.parameters(), 1e-3), "d": torch.optim.Adam(d.parameters(), 1e-3)}
    g0, d0 = [p.clone() for p in g.parameters()], [p.clone() for p in d.parameters()]
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    log = train_step(Models(g, d, opts, g, d), lr, hr, TrainConfig(stage="srgan"))
    assert log["g_loss"] == pytest.approx(log["content_loss"] + 1e-3 * log["adv_loss"], rel=1e-5)
    assert all(not torch.equal(a, b) for a, b in zip(g0, g.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, d.parameters()))
    only_g = train_step(Models(g, None, {"g": opts["g"]}, g, None), lr, hr, TrainConfig(stage="srresnet"))
    assert set(only_g) == {"content_loss", "g_loss"} and only_g["g_loss"] == only_g["content_loss"]


def _straight_and_resumed_equal(a_dir: Path, b_dir: Path) -> None:
    a = load_file(str(a_dir / "generator.safetensors"))
    b = load_file(str(b_dir / "generator.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_leaves_a_checkpoint_and_resume_continues_exactly(images, tmp_path, sig):
    """Stop a long run with a signal, then finish it two iterations later: equal to a straight run."""
    import signal
    import time

    run = tmp_path / "signalled"
    code = ("import sys, warnings; warnings.simplefilter('ignore')\n"
            "from srgan_core.train import TrainConfig, train\n"
            f"train(TrainConfig(train_data=[{str(images)!r}], out={str(run)!r}, channels=8, blocks=2, patch=32, "
            "batch_size=4, iterations=100000, lr=1e-3, lr_min=1e-3, log_every=1, ckpt_every=100000, threads=1))\n"
            "print('clean exit')")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 2):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(0.1)
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0 and "clean exit" in out, err[-2000:]
    assert "stopped by a signal" in err
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    k = state["iteration"]
    assert 2 <= k < 100000
    resumed = TrainConfig.from_json(run / "config.json")
    resumed.iterations = k + 2  # a constant learning rate: the schedule does not depend on the length
    train(resumed, resume=True)
    straight = tiny(images, tmp_path / "straight", iterations=k + 2, lr=1e-3, lr_min=1e-3, val_data=[],
                    ckpt_every=100000, log_every=1)
    train(straight)
    _straight_and_resumed_equal(tmp_path / "straight", run)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_crash_at_any_point_of_a_checkpoint_write_leaves_a_usable_checkpoint(images, tmp_path, monkeypatch):
    import shutil

    import torch

    from srgan_core import checkpoint as ck
    from srgan_core.models import Generator, GeneratorConfig

    g = Generator(GeneratorConfig(channels=8, blocks=1))
    opts = {"g": torch.optim.Adam(g.parameters(), 1e-3)}
    g(torch.rand(1, 3, 8, 8)).mean().backward()
    opts["g"].step()
    base = tmp_path / "base"
    ck.save_checkpoint(base, 1, g, None, None, opts)

    calls = {"n": 0, "fail_at": None}

    class Crash(Exception):
        pass

    def crashing(fn):
        def wrapped(*a, **kw):
            calls["n"] += 1
            if calls["n"] == calls["fail_at"]:
                raise Crash(f"crash at step {calls['n']}")
            return fn(*a, **kw)
        return wrapped

    for name, fn in (("save_file", ck.save_file), ("_fsync", ck._fsync)):
        monkeypatch.setattr(ck, name, crashing(fn))
    monkeypatch.setattr(ck.os, "replace", crashing(os.replace))
    monkeypatch.setattr(ck.shutil, "rmtree", crashing(shutil.rmtree))
    monkeypatch.setattr(Path, "symlink_to", crashing(Path.symlink_to))
    run = tmp_path / "count"
    shutil.copytree(base, run, symlinks=True)
    ck.save_checkpoint(run, 2, g, None, None, opts)  # count the steps of a whole write
    steps = calls["n"]
    assert steps >= 6
    seen = set()
    for fail_at in range(1, steps + 1):
        run = tmp_path / f"crash{fail_at}"
        shutil.copytree(base, run, symlinks=True)
        calls.update(n=0, fail_at=fail_at)
        with pytest.raises(Crash):
            ck.save_checkpoint(run, 2, g, None, None, opts)
        calls["fail_at"] = None
        found = ck.latest_checkpoint(run)
        assert found is not None, f"no checkpoint after a crash at step {fail_at}"
        fresh = Generator(GeneratorConfig(channels=8, blocks=1))
        fresh_opts = {"g": torch.optim.Adam(fresh.parameters(), 1e-3)}
        assert ck.load_checkpoint(found, fresh, None, None, fresh_opts) == found.iteration
        seen.add(found.iteration)
    assert seen == {1, 2}  # early crashes keep the old one, late ones already have the new one


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_resuming_a_finished_run_changes_nothing(images, tmp_path):
    cfg = tiny(images, tmp_path / "done", iterations=2)
    train(cfg)
    run = tmp_path / "done"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert json.loads(before["generator.json"])["metrics"]
    result = train(TrainConfig.from_json(run / "config.json"), resume=True)
    assert result == json.loads(before["generator.json"])["metrics"]
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_resume_without_a_checkpoint_says_so(images, tmp_path):
    cfg = tiny(images, tmp_path / "never")
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        train(cfg, resume=True)


def test_config_files_with_unknown_keys_are_refused_by_name(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"iterations": 5, "learning_rate": 1e-3}))
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_json(path)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_under_torchrun_every_rank_stops_at_the_same_iteration_on_the_time_limit(images, tmp_path):
    """Rank 0 validates on every iteration, so its clock runs ahead; both must still stop together."""
    common = ["--train-data", str(images), "--val-data", str(images), "--channels", "8", "--blocks", "2",
              "--patch", "32", "--batch-size", "4", "--iterations", "100000", "--threads", "1",
              "--no-batch-norm", "--log-every", "1", "--val-every", "1", "--ckpt-every", "100000",
              "--max-minutes", "0.15", "--out", str(tmp_path / "two")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    multi = subprocess.run([*launcher, "-m", "srgan_core", "train", *common], env=env, capture_output=True,
                           text=True, timeout=400)
    assert multi.returncode == 0, multi.stderr[-3000:]
    import re

    stops = dict((int(r), int(i)) for i, r in re.findall(r"at iteration (\d+) \(rank (\d)\)", multi.stderr))
    assert set(stops) == {0, 1}, multi.stderr[-3000:]
    assert stops[0] == stops[1]
    state = json.loads((tmp_path / "two" / "checkpoint" / "state.json").read_text())
    assert state["iteration"] == stops[0]


def test_d_shift_shows_d_crops_at_random_offsets_within_the_output_grid():
    import torch

    from srgan_core.train import grid_shift

    torch.manual_seed(0)
    x = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32)
    offsets = set()
    for _ in range(64):
        crop = grid_shift(4)(x)
        assert crop.shape[-2:] == (28, 28)
        first = int(crop[0, 0, 0, 0])
        offsets.add(divmod(first, 32))
    assert offsets == {(dy, dx) for dy in range(4) for dx in range(4)}


def test_ema_moves_towards_the_generator_by_one_minus_decay():
    import torch

    from srgan_core.models import Generator, GeneratorConfig
    from srgan_core.train import update_ema

    torch.manual_seed(0)
    g, ema = Generator(GeneratorConfig(channels=4, blocks=1)), Generator(GeneratorConfig(channels=4, blocks=1))
    before = [p.clone() for p in ema.parameters()]
    update_ema(ema, g, 0.9)
    for e, b, p in zip(ema.parameters(), before, g.parameters()):
        assert torch.allclose(e, 0.9 * b + 0.1 * p, atol=1e-6)
    for e, b in zip(ema.buffers(), g.buffers()):
        assert torch.equal(e, b)  # BatchNorm statistics are copied, not averaged


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_freeze_upsampler_trains_the_trunk_and_keeps_the_init_upsampler(images, tmp_path):
    train(tiny(images, tmp_path / "base", iterations=2))
    init = load_file(str(tmp_path / "base" / "generator.safetensors"))
    train(tiny(images, tmp_path / "gan", stage="srgan", init=str(tmp_path / "base" / "generator"),
               freeze_upsampler=True, ema=0.9))
    tuned = load_file(str(tmp_path / "gan" / "generator.safetensors"))
    frozen = [k for k in init if k.startswith(("upsample.", "tail."))]
    assert frozen and all(torch_equal(tuned[k], init[k]) for k in frozen)
    trunk = [k for k in init if k.startswith(("head.", "body.")) and "running" not in k and "num_batches" not in k]
    assert sum(not torch_equal(tuned[k], init[k]) for k in trunk) == len(trunk)  # every trunk weight moved
    with pytest.raises(ValueError, match="give --init"):
        tiny(images, tmp_path / "none", stage="srgan", freeze_upsampler=True)


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_d_shift_each_crops_every_patch_at_its_own_offset():
    import torch

    from srgan_core.train import grid_shift

    torch.manual_seed(0)
    x = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32).repeat(64, 1, 1, 1)
    crop = grid_shift(4, each=True)(x)
    assert crop.shape == (64, 1, 28, 28)
    offsets = {divmod(int(c[0, 0, 0]), 32) for c in crop}
    assert offsets == {(dy, dx) for dy in range(4) for dx in range(4)}  # all 16 phases within one call
    for c in crop:  # each is a plain crop of its patch
        dy, dx = divmod(int(c[0, 0, 0]), 32)
        assert torch.equal(c[0], x[0, 0, dy : dy + 28, dx : dx + 28])
    with pytest.raises(ValueError, match="give --d-shift"):
        TrainConfig(d_shift_each=True)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_feature_matching_is_logged_and_pulls_g_towards_the_hr_in_ds_features(images, tmp_path):
    import torch

    from srgan_core import losses
    from srgan_core.models import Discriminator, DiscriminatorConfig

    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(base_channels=4, spectral_norm=True)).eval()  # no power iteration per call
    hr = torch.rand(2, 3, 32, 32)
    logits, feats = d.forward_with_features(hr)
    assert torch.equal(logits, d(hr)) and len(feats) == 8
    assert losses.feature_matching_loss(feats, feats).item() == 0.0
    sr = hr.clone().requires_grad_(True)
    noisy = sr + 0.1 * torch.randn_like(sr)
    fm = losses.feature_matching_loss(d.forward_with_features(noisy)[1], feats)
    assert fm.item() > 0
    fm.backward()
    assert sr.grad.abs().sum() > 0

    train(tiny(images, tmp_path / "fm", stage="srgan", fm_weight=1.0))
    lines = [json.loads(line) for line in (tmp_path / "fm" / "metrics.jsonl").read_text().splitlines()]
    assert all(line["fm_loss"] > 0 for line in lines if "g_loss" in line)
    with pytest.raises(ValueError, match="d_shift_each"):
        tiny(images, tmp_path / "x", stage="srgan", fm_weight=1.0, d_shift=True, d_shift_each=True)


def test_grid_peak_loss_sees_a_grid_and_not_noise_or_content():
    import torch

    from srgan_core import losses

    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    hr = (0.5 + 0.2 * torch.sin(xx / 7) * torch.cos(yy / 5) + 0.05 * torch.rand(2, 3, 96, 96)).clamp(0, 1)
    grid = 0.02 * ((yy % 4 == 0) & (xx % 4 == 0)).float()
    assert losses.grid_peak_loss(hr, hr, 4).item() == 0.0
    noisy = losses.grid_peak_loss(hr + 0.02 * torch.randn_like(hr), hr, 4).item()
    blurred = losses.grid_peak_loss(torch.nn.functional.avg_pool2d(hr, 3, 1, 1, count_include_pad=False), hr, 4).item()
    gridded = losses.grid_peak_loss(hr + grid, hr, 4).item()
    assert gridded > 20 * max(noisy, blurred, 1e-3)  # the grid costs, noise and blur (content errors) hardly
    sr = (hr + grid).requires_grad_(True)
    losses.grid_peak_loss(sr, hr, 4).backward()
    assert sr.grad.abs().sum() > 0


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_gradient_loss_asks_for_the_photos_edge_strength_wherever_its_edges_fall(images, tmp_path):
    import torch

    from srgan_core import losses

    torch.manual_seed(0)
    hr = torch.rand(2, 3, 64, 64)  # texture everywhere
    shifted = torch.roll(hr, shifts=(1, 2), dims=(2, 3))  # the same texture, a pixel or two off
    blurred = torch.nn.functional.avg_pool2d(hr, 5, 1, 2, count_include_pad=False)
    assert losses.gradient_loss(hr, hr).item() == 0.0
    # pooled, the wrongly placed texture is nearly free and the blur costs; a pixel loss says the opposite
    assert losses.gradient_loss(shifted, hr).item() < 0.1 * losses.gradient_loss(blurred, hr).item()
    assert torch.nn.functional.l1_loss(shifted, hr) > torch.nn.functional.l1_loss(blurred, hr)
    # per pixel (pool=1, SPSR's form) the same shift is no longer free
    assert losses.gradient_loss(shifted, hr, pool=1).item() > 0.5 * losses.gradient_loss(blurred, hr, pool=1).item()
    flat = torch.full_like(hr, 0.5)
    assert losses.gradient_loss(flat + 0.02 * torch.randn_like(flat), flat).item() > 0  # noise on flat costs
    sr = flat.clone().requires_grad_(True)
    losses.gradient_loss(sr, hr).backward()
    assert torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0  # finite where the input is flat

    trains_with(images, tmp_path / "grad", "gradient", 0.5)
    with pytest.raises(ValueError, match="gradient_weight"):
        tiny(images, tmp_path / "x", gradient_weight=float("nan"))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_spectrum_loss_asks_for_the_photos_texture_and_not_any_pattern_of_its_edge_strength(images, tmp_path):
    import torch

    from srgan_core import losses

    torch.manual_seed(0)
    hr = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 64, 64), 3, 1, 1, count_include_pad=False)  # a fine grain
    flat = torch.full_like(hr, 0.5)
    shifted = torch.roll(hr, shifts=(1, 2), dims=(2, 3))
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    mesh = torch.sin(2 * torch.pi * xx / 5) * torch.sin(2 * torch.pi * yy / 5)  # one period, the cross-hatch
    # scaled to the grain's edge strength, so the gradient loss finds the mesh nearly as good as the photo
    mesh = (0.5 + mesh * losses.gradient_loss(hr, flat) / losses.gradient_loss(0.5 + mesh.expand_as(hr), flat)).expand_as(hr)
    assert losses.spectrum_loss(hr, hr).item() == 0.0
    assert losses.gradient_loss(mesh, hr).item() < 0.2 * losses.gradient_loss(flat, hr).item()
    # the spectrum loss charges the mesh as much as no texture at all; the shifted grain, a fraction of that
    assert losses.spectrum_loss(mesh, hr).item() > 0.9 * losses.spectrum_loss(flat, hr).item()
    assert losses.spectrum_loss(shifted, hr).item() < 0.5 * losses.spectrum_loss(flat, hr).item()
    assert torch.nn.functional.l1_loss(shifted, hr) > torch.nn.functional.l1_loss(flat, hr) * 0.5
    sr = flat.clone().requires_grad_(True)
    losses.spectrum_loss(sr, hr).backward()
    assert torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0

    trains_with(images, tmp_path / "spec", "spectrum", 20.0)
    with pytest.raises(ValueError, match="spectrum_weight"):
        tiny(images, tmp_path / "x", spectrum_weight=-1.0)
    with pytest.raises(ValueError, match="16x16"):
        tiny(images, tmp_path / "x", spectrum_weight=1.0, patch=12)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_shift_loss_charges_a_pattern_locked_to_the_output_grid_and_not_texture_that_moves_with_the_photo(images, tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from srgan_core import losses

    torch.manual_seed(0)
    hr = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 64, 64), 3, 1, 1, count_include_pad=False)
    # the pair's LR is Pillow's bicubic (within a grey level of rounding) of the two crops
    dy, dx = 1, 2
    lr = losses.shift_pair(hr, 4, dy, dx)
    assert lr.shape == (4, 3, 15, 15)
    for crop, got in ((hr[0, :, :60, :60], lr[0]), (hr[0, :, dy : dy + 60, dx : dx + 60], lr[2])):
        pil = Image.fromarray((crop.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).resize((15, 15), Image.BICUBIC)
        assert np.abs(np.asarray(pil) / 255 - got.permute(1, 2, 0).numpy()).max() < 1.5 / 255

    def output(texture: torch.Tensor, locked: torch.Tensor | None = None) -> torch.Tensor:
        """What an upscaler that drew `texture` (in the photo's coordinates) would give for the pair."""
        a, b = texture[..., :60, :60], texture[..., dy : dy + 60, dx : dx + 60]
        if locked is not None:  # the same 4 x 4 pattern on every output block, wherever the content is
            a, b = a + locked.repeat(1, 1, 15, 15), b + locked.repeat(1, 1, 15, 15)
        return torch.cat([a, b])

    pattern = 0.02 * torch.randn(1, 3, 4, 4)
    grain = hr + 0.05 * torch.randn_like(hr)  # detail the photo does not have, but drawn on the photo
    assert losses.shift_loss(output(hr), dy, dx).item() == 0.0
    assert losses.shift_loss(output(grain), dy, dx).item() == 0.0
    locked = losses.shift_loss(output(hr, pattern), dy, dx).item()
    assert locked > 0.5 * pattern.abs().mean().item()
    # the same offset on every phase is not a grid: it moves with anything, and costs nothing
    assert losses.shift_loss(output(hr, torch.full((1, 3, 4, 4), 0.02)), dy, dx).item() < 1e-7
    with pytest.raises(ValueError, match="too small"):
        losses.shift_loss(torch.zeros(2, 3, 18, 18), 3, 3)
    sr = output(hr).clone().requires_grad_(True)
    losses.shift_loss(sr + output(torch.zeros_like(hr), pattern), dy, dx).backward()
    assert torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0

    trains_with(images, tmp_path / "shift", "shift", 2.0)
    with pytest.raises(ValueError, match="shift_weight"):
        tiny(images, tmp_path / "x", shift_weight=float("inf"))
    with pytest.raises(ValueError, match="patch 24 is too small"):
        tiny(images, tmp_path / "x", shift_weight=1.0, patch=24)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_weight_average_ships_the_mean_of_the_snapshots_and_resumes_exactly(images, tmp_path):
    import torch

    flat = dict(lr=1e-3, lr_min=1e-3)  # a constant schedule: a run of 2 iterations is the first 2 of a run of 4
    snapshots = []
    for n in (2, 3, 4):
        train(tiny(images, tmp_path / f"plain{n}", iterations=n, **flat))
        snapshots.append(load_file(str(tmp_path / f"plain{n}" / "generator.safetensors")))
    train(tiny(images, tmp_path / "avg", iterations=4, average_from=2, average_every=1, **flat))
    averaged = load_file(str(tmp_path / "avg" / "generator.safetensors"))
    for k, v in averaged.items():
        if v.is_floating_point():
            want = (sum(s[k].double() for s in snapshots) / 3).float()
            assert torch.equal(v, want), k
    assert not torch.equal(averaged["tail.weight"], snapshots[-1]["tail.weight"])

    first = tiny(images, tmp_path / "resumed", iterations=4, average_from=2, average_every=1, ckpt_every=1,
                 max_minutes=1e-9, **flat)
    train(first)  # stops after iteration 1 ...
    train(first, resume=True)  # ... after 2 (one snapshot in the checkpoint) ...
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert state["iteration"] == 2 and (tmp_path / "resumed" / "checkpoint" / "average.safetensors").exists()
    first.max_minutes = 0.0
    train(first, resume=True)  # ... and to the end
    resumed = load_file(str(tmp_path / "resumed" / "generator.safetensors"))
    assert all(torch.equal(resumed[k], averaged[k]) for k in averaged)
