"""Training: a few steps through the real CLI, exact resume after a kill,
2-process data-parallel training, and learning on a learnable task."""

import json
import os
import socket
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from vocalsep.checkpoint import load_checkpoint
from vocalsep.errors import ConfigError
from vocalsep.training import Augment, TrainConfig, fit
from vocalsep.training.features import PatchSampler, load_cached
from vocalsep.training.loop import make_preset

from train_support import train_cli

from test_data import make_mir1k

TINY = ["--channels", "4,8,16", "--batch-size", "2", "--valid-seconds", "6", "--threads", "1"]


@pytest.fixture(scope="module")
def mir(tmp_path_factory):
    # songs of 2 x 7 s, longer than one 12 s patch
    return make_mir1k(tmp_path_factory.mktemp("data") / "mir", singers=("ann", "bob", "cat"), songs=2, clips=2, seconds=7.0)



def test_train_cli_few_steps(mir, tmp_path):
    out = tmp_path / "run"
    r = train_cli("--data", mir, "--out", out, "--steps", "4", "--steps-per-epoch", "2", "--valid-groups", "cat", *TINY)
    assert r.returncode == 0, r.stderr
    for name in ("best.safetensors", "last.safetensors", "state.pt", "metrics.csv", "split.json", "config.json", "summary.json"):
        assert (out / name).is_file(), name
    split = json.loads((out / "split.json").read_text())
    assert split["valid_groups"] == ["cat"] and "cat" not in split["train_groups"]
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("step,epoch,train_loss,valid_loss,valid_nsdr")
    ck = load_checkpoint(out / "best.safetensors")
    assert ck.target == "vocals" and ck.preset.unet.channels == (4, 8, 16)
    assert ck.training["split"]["valid_groups"] == ["cat"] and ck.training["step"] in (2, 4)
    # a second run into the same folder needs --resume
    r = train_cli("--data", mir, "--out", out, "--steps", "4", *TINY)
    assert r.returncode == 2 and "--resume" in r.stderr


def test_train_config_file(mir, tmp_path):
    """--config FILE.json sets any setting by its config.json name; an option given on the command
    line wins over the file; unknown settings and unreadable files are one-line usage errors."""
    cfg = tmp_path / "more.json"
    cfg.write_text(json.dumps({"warmup_steps": 3, "lr": 0.01, "seed": 5, "epochs": 1.0}))
    out = tmp_path / "run"
    r = train_cli("--data", mir, "--out", out, "--steps", "2", "--lr", "0.002", "--config", cfg, *TINY)
    assert r.returncode == 0, r.stderr
    saved = json.loads((out / "config.json").read_text())
    assert (saved["warmup_steps"], saved["lr"], saved["seed"], saved["epochs"]) == (3, 0.002, 5, 1.0)
    cfg.write_text(json.dumps({"warmup": 3}))
    r = train_cli("--data", mir, "--out", tmp_path / "bad", "--steps", "2", "--config", cfg, *TINY)
    assert r.returncode == 2 and "unknown settings warmup" in r.stderr and "Traceback" not in r.stderr
    r = train_cli("--data", mir, "--out", tmp_path / "bad", "--steps", "2", "--config", tmp_path / "none.json", *TINY)
    assert r.returncode == 2 and "none.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_resume_after_a_kill_gives_the_same_weights(mir, tmp_path):
    common = ["--data", mir, "--steps", "6", "--steps-per-epoch", "2", "--valid-groups", "cat", "--target", "accompaniment", "--no-skip", *TINY]
    r = train_cli(*common, "--out", tmp_path / "straight")
    assert r.returncode == 0, r.stderr
    r = train_cli(*common, "--out", tmp_path / "killed", kill_at=5)
    assert r.returncode == 137
    assert not (tmp_path / "killed" / "summary.json").exists()  # it died before the end
    r = train_cli(*common, "--out", tmp_path / "killed", "--resume")
    assert r.returncode == 0, r.stderr
    a = load_file(tmp_path / "straight" / "last.safetensors")
    b = load_file(tmp_path / "killed" / "last.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k
    assert load_checkpoint(tmp_path / "killed" / "last.safetensors").preset.unet.skip is False


def test_resume_with_only_out_takes_the_runs_settings(mir, tmp_path):
    """`vocalsep train --out DIR --resume` continues a killed run with the options of its config.json, to the
    same weights as one straight run; --stop-after still applies; without --data and --resume, or without a run
    in DIR, it is a one-line usage error."""
    common = ["--data", mir, "--steps", "6", "--steps-per-epoch", "2", "--valid-groups", "cat", "--lr", "0.002", *TINY]
    assert train_cli(*common, "--out", tmp_path / "straight").returncode == 0
    r = train_cli(*common, "--out", tmp_path / "killed", kill_at=3)
    assert r.returncode == 137
    # an option typed equal to its default still counts: batch 8 is not the run's batch 2
    r = train_cli("--out", tmp_path / "killed", "--resume", "--batch-size", "8")
    assert r.returncode == 2 and "batch_size differs from the interrupted run" in r.stderr, r.stderr
    r = train_cli("--out", tmp_path / "killed", "--resume", "--stop-after", "4")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "killed" / "summary.json").read_text())["steps"] == 4
    r = train_cli("--out", tmp_path / "killed", "--resume")
    assert r.returncode == 0, r.stderr
    a = load_file(tmp_path / "straight" / "last.safetensors")
    b = load_file(tmp_path / "killed" / "last.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    for args, said in ((["--out", tmp_path / "new"], "--data is required"),
                       (["--out", tmp_path / "nothing", "--resume"], "no run to continue")):
        r = train_cli(*args)
        assert r.returncode == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / "nothing").exists()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_data_parallel(mir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "vocalsep", "train", "--data", str(mir), "--out", str(out), "--steps", "3",
           "--steps-per-epoch", "3", "--valid-groups", "cat", *TINY]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3
    assert load_checkpoint(out / "last.safetensors").training["world_size"] == 2


def test_patches_are_a_function_of_the_step(mir, tmp_path):
    from vocalsep.config import get_preset
    from vocalsep.data import MIR1K

    preset = get_preset("jansson2017")
    tracks = [load_cached(t, 8192, tmp_path) for t in MIR1K(mir).tracks]
    s = PatchSampler(tracks, preset, "vocals", Augment(remix=1.0))
    X1, Y1, w1 = s.batch(3, 2)
    X2, Y2, w2 = s.batch(3, 2)
    assert X1.shape == (2, 1, 512, 128) and w1.shape == (2, 1, 1, 128)
    assert (X1 == X2).all() and (Y1 == Y2).all()
    assert not (s.batch(4, 2)[0] == X1).all()
    # songs of 14 s fill a 12 s patch: no padding
    assert (w1 == 1).all()
    assert len(list(tmp_path.glob("*.npz"))) == len(tracks)  # the cache


def test_loss_decreases_on_a_learnable_task(mir, tmp_path):
    cfg = TrainConfig(data=str(mir), out=str(tmp_path / "learn"), steps=60, valid_every=30, valid_groups=("cat",),
                      channels=(8, 16, 32), batch_size=4, lr=3e-3, warmup_steps=5, valid_seconds=6, threads=2, progress=False,
                      augment=Augment(remix=0.5))
    fit(cfg)
    rows = (tmp_path / "learn" / "metrics.csv").read_text().strip().splitlines()[1:]
    first, last = (dict(zip(["step", "epoch", "train_loss", "valid_loss", "valid_nsdr"], r.split(",")[:5])) for r in (rows[0], rows[-1]))
    assert float(last["train_loss"]) < 0.8 * float(first["train_loss"])
    assert float(last["valid_nsdr"]) > 1.0  # the voice is learnably separable here


def test_bf16_and_dropout_options(mir, tmp_path):
    common = dict(data=str(mir), steps=3, valid_every=3, valid_groups=("cat",), channels=(4, 8, 16), batch_size=2,
                  valid_seconds=6, threads=1, progress=False)
    fp32 = fit(TrainConfig(out=str(tmp_path / "fp32"), dropout=0.0, **common))
    bf16 = fit(TrainConfig(out=str(tmp_path / "bf16"), precision="bf16", dropout=0.0, **common))
    ck = load_checkpoint(tmp_path / "bf16" / "last.safetensors")
    assert ck.preset.unet.dropout == 0.0 and ck.training["config"]["precision"] == "bf16"
    assert make_preset(TrainConfig(out="x", **common)).unet.dropout == 0.5  # the paper's, unless overridden
    # bfloat16 convolutions change the numbers a little, not the training
    a, b = fp32["last"]["train_loss"], bf16["last"]["train_loss"]
    assert abs(a - b) < 0.1 * a
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(out=str(tmp_path / "x"), precision="fp16", **common)


def test_l1_loss(mir, tmp_path):
    """The L1 loss: the mean absolute error of mask x X against Y, both divided by each item's max of X;
    a resumed run checks the loss it trained with."""
    import torch

    from vocalsep.training.losses import masked_l1

    X = torch.rand(2, 1, 4, 3) + 0.5
    Y, m, w = torch.rand(2, 1, 4, 3), torch.rand(2, 1, 4, 3), torch.ones(2, 1, 1, 3)
    e = (m * X - Y) / X.amax(dim=(1, 2, 3), keepdim=True)
    assert torch.isclose(masked_l1(m, X, Y, w), e.abs().mean())
    w[1] = 0  # frames of weight 0 do not count
    assert torch.isclose(masked_l1(m, X, Y, w), e[0].abs().mean())
    common = ["--data", mir, "--steps", "2", "--steps-per-epoch", "2", "--valid-groups", "cat", *TINY]
    r = train_cli(*common, "--out", tmp_path / "l1")
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(tmp_path / "l1" / "last.safetensors").training["config"]["loss"] == "l1"
    r = train_cli(*common, "--steps", "4", "--loss", "sdr", "--out", tmp_path / "l1", "--resume")
    assert r.returncode == 2 and "loss differs" in r.stderr
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(data=str(mir), out=str(tmp_path / "x"), steps=1, loss="l2")


def test_sdr_loss_option(mir, tmp_path):
    """--loss sdr: minus each patch's SDR in dB over its valid frames, floored 30 dB below the mixture,
    the same for a patch at any loudness, so a quiet patch weighs as much as a loud one."""
    import math

    import torch

    from vocalsep.training.losses import masked_sdr, training_loss

    g = torch.Generator().manual_seed(0)
    X = torch.rand(2, 1, 4, 3, generator=g) + 0.5
    Y, m = torch.rand(2, 1, 4, 3, generator=g) * X, torch.rand(2, 1, 4, 3, generator=g)
    w = torch.ones(2, 1, 1, 3)
    w[1, ..., 2] = 0  # the second item's last frame is padding
    per = []
    for k, t in enumerate((3, 2)):
        x, y, mk = X[k, ..., :t], Y[k, ..., :t], m[k, ..., :t]
        floor = 1e-3 * (x**2).sum()
        per.append(-10 * math.log10(((y**2).sum() + floor) / (((mk * x - y) ** 2).sum() + floor)))
    assert math.isclose(masked_sdr(m, X, Y, w).item(), sum(per) / 2, rel_tol=1e-5)
    assert torch.equal(training_loss("sdr", m, X, Y, w), masked_sdr(m, X, Y, w))
    # scale-free: a patch 40 dB quieter has the same loss, and the same pull on the mask
    loud, quiet = (m.clone().requires_grad_() for _ in range(2))
    masked_sdr(loud, X, Y, w).backward()
    masked_sdr(quiet, X * 0.01, Y * 0.01, w).backward()
    assert torch.allclose(loud.grad, quiet.grad, rtol=1e-4)
    # the perfect mask scores the floor's SDR; a silent target is bounded by the floor
    perfect = masked_sdr(Y / X, X, Y, w).item()
    assert perfect < -20 and perfect < masked_sdr(m, X, Y, w).item() - 10
    assert masked_sdr(torch.ones_like(m), X, torch.zeros_like(Y), w).item() == pytest.approx(30.0, abs=0.01)
    common = ["--data", mir, "--steps", "2", "--steps-per-epoch", "2", "--valid-groups", "cat", *TINY]
    r = train_cli(*common, "--loss", "sdr", "--out", tmp_path / "sdr")
    assert r.returncode == 0, r.stderr
    row = dict(zip(*(line.split(",") for line in (tmp_path / "sdr" / "metrics.csv").read_text().split()[:2])))
    assert float(row["train_loss"]) < 5 and float(row["valid_loss"]) > 0  # dB against the L1 validation loss
    assert load_checkpoint(tmp_path / "sdr" / "last.safetensors").training["config"]["loss"] == "sdr"


def test_import_only_presets_are_refused_for_training(tmp_path):
    from vocalsep.errors import ConfigError

    with pytest.raises(ConfigError, match="spleeter"):
        TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), preset="spleeter")


def test_worker_processes_draw_the_same_batches(mir, tmp_path):
    common = dict(data=str(mir), steps=5, valid_every=5, valid_groups=("cat",), channels=(4, 8, 16), batch_size=2,
                  valid_seconds=6, threads=1, progress=False, dropout=0.0, augment=Augment(remix=0.5))
    fit(TrainConfig(out=str(tmp_path / "inline"), **common))
    fit(TrainConfig(out=str(tmp_path / "workers"), workers=2, **common))
    a = load_file(tmp_path / "inline" / "last.safetensors")
    b = load_file(tmp_path / "workers" / "last.safetensors")
    for k in a:
        assert (a[k] == b[k]).all(), k
    with pytest.raises(ValueError, match="workers"):
        TrainConfig(out=str(tmp_path / "x"), workers=-1, **common)


needs_cuda = pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (PyTorch sees none here)")


def test_device_is_checked(mir, tmp_path):
    import torch

    from vocalsep.errors import ConfigError

    with pytest.raises(ValueError, match="device"):
        TrainConfig(data=str(mir), out=str(tmp_path / "x"), steps=1, device="gpu")
    if not torch.cuda.is_available():
        r = train_cli("--data", mir, "--out", tmp_path / "nogpu", "--steps", "1", "--device", "cuda", *TINY)
        assert r.returncode != 0 and "sees no CUDA GPU" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            fit(TrainConfig(data=str(mir), out=str(tmp_path / "nogpu2"), steps=1, device="cuda", progress=False))


@needs_cuda
def test_cuda_training_resumes_exactly_and_matches_cpu_closely(mir, tmp_path):
    common = ["--data", mir, "--steps", "6", "--steps-per-epoch", "2", "--valid-groups", "cat", "--dropout", "0", *TINY]
    r = train_cli(*common, "--out", tmp_path / "straight", "--device", "cuda")
    assert r.returncode == 0, r.stderr
    r = train_cli(*common, "--out", tmp_path / "killed", "--device", "cuda", kill_at=5)
    assert r.returncode == 137
    r = train_cli(*common, "--out", tmp_path / "killed", "--device", "cuda", "--resume")
    assert r.returncode == 0, r.stderr
    a = load_file(tmp_path / "straight" / "last.safetensors")
    b = load_file(tmp_path / "killed" / "last.safetensors")
    for k in a:
        assert (a[k] == b[k]).all(), k
    ck = load_checkpoint(tmp_path / "straight" / "last.safetensors")
    assert ck.training["config"]["device"] == "cuda" and ck.training["device"] != "cpu"
    # the same run on the CPU: the same draws, float rounding apart
    r = train_cli(*common, "--out", tmp_path / "cpu")
    assert r.returncode == 0, r.stderr
    c = load_file(tmp_path / "cpu" / "last.safetensors")
    for k in a:
        if a[k].is_floating_point():
            assert (a[k] - c[k]).abs().max() <= 1e-3 * max(1.0, c[k].abs().max().item()), k


@needs_cuda
def test_cuda_two_process_data_parallel(mir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "vocalsep", "train", "--data", str(mir), "--out", str(out), "--steps", "3",
           "--steps-per-epoch", "3", "--valid-groups", "cat", "--device", "cuda", "--precision", "bf16", *TINY]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3


def test_phase_sensitive_target(mir, tmp_path):
    """The phase-sensitive target is |Y| cos(angle(Y) - angle(X)) in [0, |X|], computed from the STFTs
    of the same draw: it never exceeds the magnitude target, equals it where Y is in phase with X, and the
    two targets' sum (vocals + accompaniment) is |X|."""
    import numpy as np
    import torch

    from vocalsep.config import get_preset
    from vocalsep.data import open_dataset
    preset = get_preset("jansson2017")
    tracks = [load_cached(t, preset.sample_rate, tmp_path / "cache") for t in open_dataset(mir).tracks]
    aug = Augment(remix=0.5)
    mag = PatchSampler(tracks, preset, "vocals", aug, seed=3)
    psa = PatchSampler(tracks, preset, "vocals", aug, seed=3, target_rule="phase-sensitive")
    psa_acc = PatchSampler(tracks, preset, "accompaniment", aug, seed=3, target_rule="phase-sensitive")
    X, Ym, w = mag.batch(5, 3)
    X2, Yp, w2 = psa.batch(5, 3)
    _, Ap, _ = psa_acc.batch(5, 3)
    assert torch.equal(X, X2) and torch.equal(w, w2)  # the same draw
    assert (Yp >= 0).all() and (Yp <= X + 1e-6).all() and (Yp <= Ym + 1e-5).all()
    assert (Yp < Ym - 1e-3).any()  # out-of-phase parts are removed
    # Re(V X*) + Re(A X*) = |X|^2, so the two truncated targets add up to |X|
    torch.testing.assert_close(Yp + Ap, X, rtol=1e-3, atol=1e-3 * float(X.max()))
    # a track whose accompaniment is silent: the voice is the mixture, the target is |X|
    t = tracks[0]
    from dataclasses import replace

    solo = replace(t, accompaniment=np.zeros_like(t.accompaniment), mixture=t.vocals.copy())
    s = PatchSampler([solo], preset, "vocals", Augment(remix=0.0), target_rule="phase-sensitive")
    Xs, Ys, _ = s.batch(0, 2)
    torch.testing.assert_close(Ys, Xs, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="target_rule"):
        TrainConfig(data=str(mir), out=str(tmp_path / "x"), steps=1, target_rule="phase")


def test_init_starts_from_a_model_file(mir, tmp_path):
    """--init: fine-tuning starts from another run's weights (the same network), with a fresh
    schedule; a different network is refused with one clear line; --resume ignores it."""
    import torch

    from vocalsep.training.warmstart import load_initial_weights

    common = ["--data", mir, "--steps-per-epoch", "2", "--valid-groups", "cat", *TINY]
    r = train_cli(*common, "--steps", "2", "--out", tmp_path / "first")
    assert r.returncode == 0, r.stderr
    first = tmp_path / "first" / "last.safetensors"
    cfg = TrainConfig(data=str(mir), out=str(tmp_path / "x"), channels=(4, 8, 16), steps=1, init=str(first))
    from vocalsep.model import UNet

    model = UNet(make_preset(cfg).unet)
    load_initial_weights(model, str(first), make_preset(cfg))
    for k, v in load_checkpoint(first).model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    # one step at a tiny rate moves the trained weights only a little (the BatchNorm statistics move more)
    r = train_cli(*common, "--steps", "1", "--lr", "1e-9", "--lr-min", "0", "--init", first, "--out", tmp_path / "ft")
    assert r.returncode == 0, r.stderr
    a, b = load_file(first), load_file(tmp_path / "ft" / "last.safetensors")
    params = [k for k in a if a[k].is_floating_point() and "running_" not in k]
    assert params and max((a[k] - b[k]).abs().max().item() for k in params) < 1e-6
    # the lineage is kept: the file it started from, by hash, and that file's own training
    import hashlib

    lineage = load_checkpoint(tmp_path / "ft" / "last.safetensors").training["init"]
    assert lineage["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest() and lineage["step"] == 2
    assert lineage["config"]["out"] == str(tmp_path / "first")
    fresh = load_file(tmp_path / "first" / "last.safetensors")  # against a run from random weights: far
    r = train_cli(*common, "--steps", "1", "--lr", "1e-9", "--lr-min", "0", "--seed", "1", "--out", tmp_path / "scratch")
    assert r.returncode == 0, r.stderr
    c = load_file(tmp_path / "scratch" / "last.safetensors")
    assert max((fresh[k] - c[k]).abs().max().item() for k in params) > 1e-2
    r = train_cli(*common, "--steps", "1", "--channels", "4,8,32", "--init", first, "--out", tmp_path / "other")
    assert r.returncode == 2 and "--init" in r.stderr and "not the one being trained" in r.stderr
    # the same network under another preset (half the hop: the "fine" model's fine-tune)
    r = train_cli(*common, "--steps", "1", "--preset", "jansson2017-hop384", "--init", first, "--out", tmp_path / "hop384")
    assert r.returncode == 0, r.stderr
    ck = load_checkpoint(tmp_path / "hop384" / "last.safetensors")
    assert (ck.preset.name, ck.preset.hop, ck.preset.fullband) == ("jansson2017-hop384", 384, "bandlimited")
    assert ck.training["init"]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()


# -- issue 24: bad --data leaves nothing behind (item 9); --resume of a damaged or finished run (item 14)

def test_item09_bad_data_leaves_no_empty_folders(tmp_path, capsys):
    from vocalsep.cli import main

    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a dataset")
    for data in ("missing", "empty", "notes.txt"):
        out = tmp_path / "runs" / "run"
        assert main(["train", "--data", str(tmp_path / data), "--out", str(out), "--steps", "2", *TINY]) == 2
        assert capsys.readouterr().err.count("vocalsep: error:") == 1
        assert not (tmp_path / "runs").exists(), data  # neither --out nor the cache beside it


def test_item14_resume_of_a_damaged_or_finished_run(mir, tmp_path, capsys):
    from vocalsep.cli import main

    out = tmp_path / "run"
    common = ["train", "--data", str(mir), "--out", str(out), "--steps", "2", "--steps-per-epoch", "2", "--valid-groups", "cat", *TINY]
    assert main(common) == 0
    capsys.readouterr()
    summary = (out / "summary.json").read_bytes()
    # a finished run: nothing to do, its summary kept, its real score printed
    assert main([*common, "--resume"]) == 0
    err = capsys.readouterr().err
    assert (out / "summary.json").read_bytes() == summary and "NSDR nan" not in err
    assert f"NSDR {json.loads(summary)['last']['valid_nsdr']:.2f} dB" in err
    # a damaged state file: one line naming it
    state = (out / "state.pt").read_bytes()
    for damaged in (state[: len(state) // 2], b"garbage", b""):
        (out / "state.pt").write_bytes(damaged)
        assert main([*common, "--resume", "--steps", "4"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"vocalsep: error: {out / 'state.pt'}: cannot resume from it") and "Traceback" not in err


def test_settings_of_the_wrong_kind_and_unusable_init_weights(mir, tmp_path):
    for bad, said in (({"warmup_steps": "abc"}, "warmup_steps must be a whole number"), ({"lr": "fast"}, "lr must be a number"),
                      ({"valid_seconds": -1}, "valid_seconds must be > 0"), ({"threads": 0}, "threads must be >= 1")):
        with pytest.raises(ConfigError, match=said):
            TrainConfig(data=str(mir), out=str(tmp_path / "x"), steps=1, **bad)
    r = train_cli("--data", mir, "--out", tmp_path / "new" / "run", "--steps", "1", "--init", tmp_path / "none.safetensors", *TINY)
    assert r.returncode == 2 and "none.safetensors" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "new" / "run").exists()
