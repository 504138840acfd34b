"""Removed options: the command line refuses them as argparse does any unknown option or
choice, and configurations stored with their settings (checkpoints, interrupted runs) still
read, or are refused with a clear reason where they cannot be honoured."""

import json

import pytest
import torch

from vocalsep.cli import main
from vocalsep.training import Augment, TrainConfig, fit
from vocalsep.training.config import removed_settings

from test_data import make_mir1k

TRAIN = ["train", "--data", "d", "--out", "o", "--steps", "1"]

REMOVED_TRAIN = [
    (["--input-norm", "max_sqrt"], "unrecognized arguments: --input-norm max_sqrt"),
    (["--pitch", "1"], "unrecognized arguments: --pitch 1"),
    (["--gain-db", "6"], "unrecognized arguments: --gain-db 6"),
    (["--ema", "0.999"], "unrecognized arguments: --ema 0.999"),
    (["--schedule", "constant"], "unrecognized arguments: --schedule constant"),
    (["--schedule", "cosine"], "unrecognized arguments: --schedule cosine"),
    (["--wrap-short", "0.5"], "unrecognized arguments: --wrap-short 0.5"),
    (["--silence", "0.1"], "unrecognized arguments: --silence 0.1"),
    (["--loss", "l2"], "argument --loss: invalid choice: 'l2'"),
]


@pytest.mark.parametrize("args,message", REMOVED_TRAIN, ids=[" ".join(a) for a, _ in REMOVED_TRAIN])
def test_removed_train_options_are_refused(args, message, capsys):
    assert main([*TRAIN, *args]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err


@pytest.mark.parametrize("loss", ["l1", "sdr"])
def test_kept_loss_choices_parse(loss):
    from vocalsep.cli import build_parser

    assert build_parser().parse_args([*TRAIN, "--loss", loss]).loss == loss


def _stored_config(**changes):
    """A training configuration as an earlier version stored it (the shipped models' own form)."""
    d = {"augment": {"gain_db": 0.0, "pitch": 0.0, "remix": 0.5, "silence": 0.0, "wrap_short": 0.0}, "batch_size": 8,
         "cache_dir": None, "channels": None, "data": "mir1k", "dataset": "mir1k", "device": "cpu", "dropout": None, "ema": 0.0,
         "epochs": None, "init": None, "input_norm": None, "loss": "sdr", "lr": 0.0001, "lr_min": 1e-06, "out": "runs/x",
         "precision": "bf16", "preset": "jansson2017", "progress": False, "resume": False, "schedule": "cosine", "seed": 0,
         "skip": True, "steps": 2000, "steps_per_epoch": 500, "target": "vocals", "target_rule": "magnitude", "threads": 1,
         "time_budget": None, "valid_every": None, "valid_fraction": 0.2, "valid_groups": ["abjones", "tammy"],
         "valid_seconds": 60.0, "warmup_steps": 100, "workers": 0}
    d.update(changes)
    return d


def test_stored_configs_with_removed_settings_still_read():
    cfg = TrainConfig.from_dict(_stored_config())
    assert cfg.loss == "sdr" and cfg.augment == Augment(remix=0.5) and cfg.valid_groups == ("abjones", "tammy")
    assert not hasattr(cfg, "ema") and not hasattr(cfg, "input_norm") and not hasattr(cfg.augment, "gain_db")
    assert removed_settings(_stored_config()) == {}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # today's form reads back as it is
    # settings that were on are named
    on = _stored_config(ema=0.999, input_norm="max_sqrt", schedule="constant", loss="l2",
                        augment={"remix": 0.5, "gain_db": 6.0, "pitch": 1.0, "silence": 0.1, "wrap_short": 0.5})
    assert removed_settings(on) == {"ema": 0.999, "input_norm": "max_sqrt", "schedule": "constant", "loss": "l2",
                                    "augment.gain_db": 6.0, "augment.pitch": 1.0, "augment.silence": 0.1, "augment.wrap_short": 0.5}
    # keys that never existed are still an error
    with pytest.raises(TypeError):
        TrainConfig.from_dict(_stored_config(bogus=1))


def test_shipped_models_training_configs_read():
    from vocalsep.checkpoint import load_checkpoint
    from vocalsep.models import available_models

    seen = 0
    for files in available_models().values():
        for f in files:
            stored = load_checkpoint(f).training.get("config")
            if stored:
                cfg = TrainConfig.from_dict(stored)
                assert cfg.target == stored["target"] and removed_settings(stored) == {}
                seen += 1
    if not seen:
        pytest.skip("no installed model records a training configuration")


def test_resume_of_a_run_with_a_removed_setting(tmp_path):
    """An interrupted run of an earlier version resumes when its removed settings were off, and is
    refused, naming them, when they were on (it trained differently from what this version does)."""
    mir = make_mir1k(tmp_path / "mir", singers=("ann", "cat"), songs=1, clips=1, seconds=4.0)
    common = dict(data=str(mir), valid_groups=("cat",), channels=(4, 8, 16), batch_size=2, valid_seconds=2, threads=1,
                  progress=False, steps_per_epoch=1)
    fit(TrainConfig(out=str(tmp_path / "run"), steps=1, **common))
    state_path = tmp_path / "run" / "state.pt"
    state = torch.load(state_path, weights_only=True)
    old = json.loads(state["config"])
    old.update(ema=0.0, schedule="cosine", input_norm=None)
    old["augment"].update(gain_db=0.0, pitch=0.0, silence=0.0, wrap_short=0.0)
    torch.save({**state, "config": json.dumps(old)}, state_path)
    assert fit(TrainConfig(out=str(tmp_path / "run"), steps=2, resume=True, **common))["steps"] == 2
    state = torch.load(state_path, weights_only=True)
    old = json.loads(state["config"])
    old.update(ema=0.999)
    old["augment"].update(pitch=1.0)
    torch.save({**state, "config": json.dumps(old)}, state_path)
    with pytest.raises(ValueError, match=r"no longer has \(ema 0.999, augment.pitch 1.0\)"):
        fit(TrainConfig(out=str(tmp_path / "run"), steps=3, resume=True, **common))


REMOVED_SEPARATION = [
    (["separate", "x.wav", "--pad", "zero"], "argument --pad: invalid choice: 'zero'"),
    (["separate", "x.wav", "--high-band", "one"], "argument --high-band: invalid choice: 'one'"),
    (["evaluate", "--data", "d", "--system", "a=b", "--out", "o", "--pad", "zero"], "argument --pad: invalid choice: 'zero'"),
]


@pytest.mark.parametrize("args,message", REMOVED_SEPARATION, ids=[" ".join(a) for a, _ in REMOVED_SEPARATION])
def test_removed_separation_choices_are_refused(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err


def test_kept_separation_choices_parse():
    from vocalsep.cli import build_parser

    a = build_parser().parse_args(["separate", "x.wav", "--pad", "wrap", "--high-band", "zero", "--combine", "ratio2"])
    assert (a.pad, a.high_band, a.combine) == ("wrap", "zero", "ratio2")
    assert build_parser().parse_args(["separate", "x.wav", "--high-band", "edge", "--combine", "ratio"]).high_band == "edge"
    a = build_parser().parse_args(["evaluate", "--data", "d", "--system", "a=b", "--out", "o", "--pad", "wrap"])
    assert a.pad == "wrap"


def test_a_recipe_with_the_removed_coherent_remixes_is_refused():
    """Coherent remixes (docs/experiments/coherent-remixes.md) were deleted: a recipe asking for them
    is refused, naming the key, rather than trained without them."""
    from vocalsep.data.recipe import Recipe
    from vocalsep.errors import ConfigError

    good = {"sources": [{"name": "x", "layout": "stems", "path": "p", "true": 1, "vocals": 1, "accompaniment": 1}]}
    Recipe.from_dict(good)
    for key in ("coherent", "coherent_semitones", "coherent_tempo"):
        with pytest.raises(ConfigError, match=f"unknown keys.*{key}"):
            Recipe.from_dict({**good, key: 1.0})
