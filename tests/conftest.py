"""Shared fixtures. Feature-specific helpers (the loopback Hub, the app server) live in their
own modules under tests/ so each test file says what it starts."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Image sets live beside the project, never inside it; SRGAN_DATA overrides the location.
DATA = Path(os.environ.get("SRGAN_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "Set5").is_dir():
        pytest.skip(f"image sets not found at {DATA} (set SRGAN_DATA)")
    return DATA
