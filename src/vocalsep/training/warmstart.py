"""``--init``: start a training run from the weights of a model file, and record where they came from."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Preset
from ..errors import ConfigError
from ..model import UNet

log = logging.getLogger(__name__)


def resolve_init(spec: str, target: str) -> str:
    """The model file that ``--init`` names for ``target``: a file as it is; a folder or a registered
    name (``spleeter:2stems``) gives its checkpoint of ``target``."""
    from ..checkpoint import read_metadata
    from ..errors import ModelError
    from ..models import resolve_model

    if Path(spec).is_file():
        return spec
    try:
        _, files = resolve_model(spec)
    except ModelError as exc:
        raise ConfigError(f"--init {spec}: {exc}") from None
    for f in files:
        if read_metadata(f).get("vocalsep.target") == target:
            return str(f)
    raise ConfigError(f"--init {spec}: it holds no model of the target {target!r}")


def load_initial_weights(model: UNet, path: str, preset: Preset) -> None:
    """Copy the weights of the model file ``path`` (``TrainConfig.init``) into ``model``; the
    file's network must be the one being trained."""
    from ..checkpoint import load_checkpoint
    from ..errors import ModelError

    try:
        ckpt = load_checkpoint(path)
    except (OSError, ModelError) as exc:
        raise ConfigError(f"--init {path}: {exc}") from None
    if replace(ckpt.preset.unet, dropout=preset.unet.dropout) != preset.unet:
        raise ConfigError(f"--init {path}: its network ({ckpt.preset.unet}) is not the one being trained ({preset.unet})")
    current = model.state_dict()
    model.load_state_dict({k: v.to(current[k].dtype) for k, v in ckpt.model.state_dict().items()}, strict=True)
    log.info("starting from the weights of %s (target %s)", path, ckpt.target)


def init_facts(path: str) -> dict[str, Any]:
    """What a fine-tuned model records of the model file it started from (``TrainConfig.init``):
    its path and SHA-256, and its own training facts (steps, seconds, configuration), so that the
    whole lineage, and the whole training time, stay readable after the file itself is replaced."""
    import hashlib

    from ..checkpoint import read_metadata

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    training = json.loads(read_metadata(path).get("vocalsep.training", "{}"))
    keep = ("step", "train_seconds", "config", "valid", "init")
    return {"path": str(path), "sha256": digest, **{k: training[k] for k in keep if k in training}}
