"""Self-describing model files: one ``.safetensors`` file per trained model.

The file holds the weights (and BatchNorm statistics) as safetensors tensors
and, in the safetensors header metadata, everything needed to use them:

- ``vocalsep.format``: ``"vocalsep-checkpoint"``, ``vocalsep.format_version``: ``"1"``
- ``vocalsep.target``: the stem the mask estimates (``vocals``, ``accompaniment``)
- ``vocalsep.preset``: the preset and U-Net configuration (JSON)
- ``vocalsep.training``: training facts (JSON: data, split, steps, validation score...)
- ``vocalsep.version``: the vocalsep version that wrote it

Loading is strict: a missing or unexpected tensor, or a wrong shape, is an
error, never a silent partial load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._atomic import follow_umask, publish, temp_beside
from ._version import __version__
from .config import Preset
from .errors import ConfigError, ModelError
from .model import UNet
from .stems import STEMS

FORMAT = "vocalsep-checkpoint"
FORMAT_VERSION = "1"


@dataclass
class Checkpoint:
    """A loaded model file: the model (in eval mode), its target, preset and training facts."""

    model: UNet
    target: str
    preset: Preset
    training: dict[str, Any] = field(default_factory=dict)
    version: str = __version__
    path: str | None = None


def save_checkpoint(
    path: str | os.PathLike,
    model: UNet,
    *,
    target: str,
    preset: Preset,
    training: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model`` to ``path`` atomically (temporary file, then rename).

    ``dtype`` (e.g. ``torch.float16``) stores floating-point weights at that
    precision; they are turned back into float32 on loading.
    """
    from safetensors.torch import save_file

    if target not in STEMS:
        raise ConfigError(f"unknown target {target!r}; known: {', '.join(STEMS)}")
    if model.config != preset.unet:
        raise ConfigError("the model's configuration differs from the preset's U-Net configuration")
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    metadata = {
        "vocalsep.format": FORMAT,
        "vocalsep.format_version": FORMAT_VERSION,
        "vocalsep.target": target,
        "vocalsep.preset": preset.to_json(),
        "vocalsep.training": json.dumps(training or {}, sort_keys=True, default=str),
        "vocalsep.version": __version__,
    }
    path = Path(path)
    tmp = temp_beside(path)
    try:
        save_file(tensors, os.fspath(tmp), metadata=metadata)
        follow_umask(tmp)
        return publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    from safetensors import safe_open

    path = os.fspath(path)
    if not Path(path).is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: not a safetensors model file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if meta.get("vocalsep.format") != FORMAT:
        raise ModelError(f"{path}: not a vocalsep checkpoint (no vocalsep metadata)")
    if meta.get("vocalsep.format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: checkpoint format version {meta.get('vocalsep.format_version')!r} is not supported (expected {FORMAT_VERSION})")
    return meta


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a model file strictly; the model is returned in eval mode on ``device``."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    try:
        preset = Preset.from_json(meta["vocalsep.preset"])
        training = json.loads(meta.get("vocalsep.training", "{}"))
        target = meta["vocalsep.target"]
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: invalid checkpoint metadata ({exc})") from None
    if target not in STEMS:
        raise ModelError(f"{path}: unknown target {target!r}")
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        model = UNet(preset.unet)
    tensors = load_file(os.fspath(path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelError(f"{path}: weights do not match the model (missing: {missing[:5]}, unexpected: {unexpected[:5]})")
    for k, v in tensors.items():
        if v.shape != expected[k].shape:
            raise ModelError(f"{path}: tensor {k} has shape {tuple(v.shape)}, the model needs {tuple(expected[k].shape)}")
        if v.is_floating_point() != expected[k].is_floating_point():
            raise ModelError(f"{path}: tensor {k} holds {str(v.dtype).removeprefix('torch.')} values, the model needs "
                             f"{'floating-point' if expected[k].is_floating_point() else 'integer'} ones")
        if v.is_floating_point():
            if not torch.isfinite(v).all():
                raise ModelError(f"{path}: tensor {k} holds NaN or infinite values")
            tensors[k] = v.to(expected[k].dtype)
    model.load_state_dict(tensors, strict=True, assign=True)
    model.eval().to(device)
    return Checkpoint(model, target, preset, training, meta.get("vocalsep.version", "?"), os.fspath(path))
