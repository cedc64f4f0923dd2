"""Start the real Gradio app (`python app.py`) as a subprocess on a free loopback port.

Tests talk to it the way users do: over HTTP with gradio_client, or through a browser. Running
it in its own process also proves that `python app.py` is all a Space needs to serve the app.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from srgan_core.models import Generator, GeneratorConfig
from srgan_core.weights import WEIGHTS_DIR, save_generator

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 180.0  # importing torch + gradio on a busy 2-core machine takes a while
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/config", timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


class AppURL(str):
    """The app's base URL; `.log` is the file the server's output goes to (read it with
    `.log_text()` to check what the server printed)."""

    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_app(
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> Iterator[AppURL]:
    """Run `python app.py` until the block ends; yields its base URL (http://127.0.0.1:PORT) as an
    AppURL, which also knows the server's log file.

    `env` adds to (or, with value "", removes from) the inherited environment. The server's
    output goes to a log file whose tail is shown if it fails to start.
    """
    port = free_port()
    child_env = dict(os.environ)
    child_env.update(
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",  # the app must start without the network
        PYTHONUNBUFFERED="1",
    )
    for key, value in (env or {}).items():
        if value == "":
            child_env.pop(key, None)
        else:
            child_env[key] = value
    url = AppURL(f"http://127.0.0.1:{port}")
    with tempfile.TemporaryDirectory(prefix="app-server-") as tmp:
        log_path = url.log = Path(tmp) / "app.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), *(args or [])],
                cwd=ROOT,
                env=child_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so stopping it also stops anything it started
            )
            try:
                deadline = time.monotonic() + timeout
                while not _answers(url):
                    if proc.poll() is not None:
                        raise RuntimeError(f"app.py exited with {proc.returncode}:\n{_log_tail(log_path)}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"app.py did not answer on {url} within {timeout:.0f} s:\n{_log_tail(log_path)}")
                    time.sleep(0.5)
                yield url
            finally:
                _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)


TINY = GeneratorConfig(channels=8, blocks=1)  # tests check behaviour, not picture quality


def make_weights(folder: Path) -> Path:
    """Tiny random-init SRGAN and SRResNet under the bundled names, plus the real toy default."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(("srgan_x4", "srresnet_x4")):
        torch.manual_seed(seed)
        # the GAN model carries perception-distortion points, as `evaluate --strengths` writes them
        points = {"data": "Set5", "degradation": "bicubic", "points": [
            {"method": "HR", "psnr": None, "niqe": 5.0}, {"method": "bicubic", "psnr": 19.0, "niqe": 12.0},
            {"method": "strength 0", "psnr": 21.0, "niqe": 10.0}, {"method": "strength 1", "psnr": 20.0, "niqe": 8.0}]}
        save_generator(Generator(TINY), folder / name, description=f"tiny random-init {name} (test)",
                       metrics={"Set5": {"psnr": 20.0 + seed, "ssim": 0.5}},
                       **({"perception_distortion": points} if name == "srgan_x4" else {}))
    for f in WEIGHTS_DIR.glob("toygan_default.*"):
        shutil.copy(f, folder / f.name)
    # a training log beside the weights, for the model card's curves (train.py's metrics.jsonl format)
    log = [{"iteration": i, "validation": {"Set5": {"psnr": 20 + i / 100, "ssim": 0.5}}} for i in (100, 200, 300)]
    (folder / "srgan_x4.metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return folder
