"""Shared fixtures.  Nothing here writes into the current directory, and
nothing needs the network.  Tests that use real audio find it at
``../shared/data`` (beside the repository) or at ``$VOCALSEP_DATA`` and skip
when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vocalsep.checkpoint import save_checkpoint
from vocalsep.config import Preset, UNetConfig
from vocalsep.model import UNet

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path | None:
    env = os.environ.get("VOCALSEP_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if root is None:
        pytest.skip("real audio not found: set VOCALSEP_DATA or put the shared data at ../shared/data")
    return root


TINY = Preset(name="tiny-test", unet=UNetConfig(channels=(4, 8, 16)))


@pytest.fixture(scope="session")
def tiny_preset() -> Preset:
    return TINY


def make_models(preset: Preset, seed: int = 0) -> dict[str, UNet]:
    torch.manual_seed(seed)
    return {t: UNet(preset.unet).eval() for t in ("vocals", "accompaniment")}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A folder with a randomly initialised tiny vocal and accompaniment model."""
    d = tmp_path_factory.mktemp("tiny-model")
    for target, model in make_models(TINY).items():
        save_checkpoint(d / f"{target}.safetensors", model, target=target, preset=TINY, training={"note": "random init, tests"})
    return d


def synth_song(seconds: float = 3.0, sr: int = 22050, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A deterministic 'song': a harmonic 'voice' with vibrato plus a chord and noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 220 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t) ** 2)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (130.8, 164.8, 196.0)) / 3
    noise = rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.9) * 0.3
    mono = 0.3 * voice + 0.3 * chord + 0.2 * noise
    out = np.stack([mono * (1.0 - 0.2 * c) + 0.01 * rng.standard_normal(t.size) for c in range(channels)])
    return out.astype(np.float32)


def snr(ref, est) -> float:
    """Signal-to-error ratio in dB over the common length of the last axis."""
    ref, est = np.asarray(ref, np.float64), np.asarray(est, np.float64)
    n = min(ref.shape[-1], est.shape[-1])
    ref, est = ref[..., :n], est[..., :n]
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum((ref - est) ** 2), 1e-30)))


@pytest.fixture
def song_wav(tmp_path) -> Path:
    import soundfile as sf

    path = tmp_path / "in" / "song.wav"
    path.parent.mkdir()
    sf.write(path, synth_song().T, 22050, subtype="FLOAT")
    return path
