"""Issue 24: the defects a bad-input and fault campaign found, one test (or more) per item.

Most run the command line in this process (``vocalsep.cli.main``) to stay fast; those that need
a real process (signals, kills, resource limits) start one.  Nothing is written into the
current directory.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import TINY, make_models, synth_song

from vocalsep.checkpoint import load_checkpoint, save_checkpoint
from vocalsep.cli import main
from vocalsep.errors import ModelError


def one_error_line(err: str, *needles: str) -> str:
    """The single 'vocalsep: error:' line of ``err`` that holds every needle (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("vocalsep: error:") and all(n in line for n in needles)]
    assert len(lines) == 1, err
    return lines[0]


def _with_tensors(src, dst, change) -> None:
    """Copy the model file ``src`` to ``dst`` with its tensors passed through ``change``."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: change(k, v) for k, v in load_file(str(src)).items()}, str(dst), metadata=meta)


# -- 13: a model file with integer tensors of the right shapes; 10: non-finite weights

def test_item13_integer_weights_are_refused_with_one_line(tmp_path, tiny_model_dir, song_wav, capsys):
    bad = tmp_path / "int-model"
    for t in ("vocals", "accompaniment"):
        _with_tensors(tiny_model_dir / f"{t}.safetensors", bad / f"{t}.safetensors",
                      lambda k, v: v.to(torch.int32) if v.is_floating_point() else v)
    with pytest.raises(ModelError, match="holds int32 values, the model needs floating-point ones"):
        load_checkpoint(bad / "vocals.safetensors")
    for argv in (["separate", str(song_wav), "-o", str(tmp_path / "o"), "-m", str(bad)], ["info", str(bad)]):
        assert main(argv) == 2
        one_error_line(capsys.readouterr().err, ".safetensors", "int32")
    assert not (tmp_path / "o").exists()


def test_item10_nan_weights_are_refused(tmp_path, tiny_model_dir):
    bad = tmp_path / "nan-model" / "vocals.safetensors"
    _with_tensors(tiny_model_dir / "vocals.safetensors", bad, lambda k, v: v * float("nan") if v.is_floating_point() else v)
    with pytest.raises(ModelError, match="NaN or infinite"):
        load_checkpoint(bad)


# -- 22: model files follow the umask like every other output

def test_item22_model_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "m.safetensors", make_models(TINY)["vocals"], target="vocals", preset=TINY)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
