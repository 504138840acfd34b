"""The base install separates: separating, listing and describing models import none of the optional
extras' libraries, and a command whose extra is missing says in one line what to install (exit code 2).

Each case runs in a fresh interpreter whose import system can refuse the extras' libraries (as if they
were not installed), then reports which of them were imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# the libraries of the extras: none of them may be imported by separating
EXTRA_LIBRARIES = ("matplotlib", "mir_eval", "scipy", "rapidfuzz", "mutagen", "flask", "waitress", "pyloudnorm", "norbert", "ray")

RUNNER = r"""
import json, sys

blocked = set(json.loads(sys.argv[1]))
watched = json.loads(sys.argv[2])


class NotInstalled:
    "Refuse the blocked top-level packages, as if they were not installed."

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
argv = sys.argv[3:]
if argv == ["--import-separator"]:
    import vocalsep

    vocalsep.Separator, vocalsep.SeparationOptions
    rc = 0
else:
    from vocalsep.cli import main

    rc = main(argv)
print("IMPORTED " + json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(watched))))
sys.exit(rc)
"""


def run_blocked(*argv, blocked=EXTRA_LIBRARIES, timeout=300):
    """(returncode, stdout without the report line, stderr, the watched libraries that were imported)."""
    r = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(list(blocked)), json.dumps(list(EXTRA_LIBRARIES)), *map(str, argv)],
                       capture_output=True, text=True, timeout=timeout)
    lines = r.stdout.splitlines()
    imported = json.loads(lines[-1][len("IMPORTED "):]) if lines and lines[-1].startswith("IMPORTED ") else None
    return r.returncode, "\n".join(lines[:-1]), r.stderr, imported


def test_separate_info_models_and_the_api_need_no_extra(tmp_path, song_wav, tiny_model_dir):
    out = tmp_path / "out"
    rc, _, err, imported = run_blocked("separate", song_wav, "-o", out, "-m", tiny_model_dir, "-q")
    assert rc == 0, err
    assert imported == [] and sorted(p.name for p in (out / "song").iterdir()) == ["accompaniment.wav", "vocals.wav"]
    rc, stdout, err, imported = run_blocked("models")
    assert rc == 0 and imported == [], err
    rc, stdout, err, imported = run_blocked("info", tiny_model_dir / "vocals.safetensors")
    assert rc == 0 and "target:        vocals" in stdout and imported == [], err
    rc, _, err, imported = run_blocked("--import-separator")
    assert rc == 0 and imported == [], err


def test_separate_imports_none_of_them_even_when_installed(tmp_path, song_wav, tiny_model_dir):
    rc, _, err, imported = run_blocked("separate", song_wav, "-o", tmp_path / "out", "-m", tiny_model_dir, "-q", blocked=())
    assert rc == 0 and imported == [], (err, imported)


@pytest.mark.parametrize("argv, extra, blocked", [
    (["evaluate", "--data", "DATA", "--system", "mixture", "--out", "OUT"], "eval", ("mir_eval",)),
    (["evaluate", "--data", "DATA", "--system", "mixture", "--out", "OUT"], "eval", ("matplotlib", "scipy")),
    (["train", "--data", "DATA", "--out", "OUT"], "train", ("scipy",)),
    (["mine", "DATA", "--out", "OUT"], "mine", ("rapidfuzz",)),
    (["mine", "DATA", "--out", "OUT"], "mine", ("mutagen",)),
])
def test_a_missing_extra_is_one_line_and_exit_code_2(tmp_path, argv, extra, blocked):
    argv = [str(tmp_path / a) if a in ("DATA", "OUT") else a for a in argv]
    (tmp_path / "DATA").mkdir()
    rc, stdout, err, imported = run_blocked(*argv, blocked=blocked)
    command = argv[0]
    assert rc == 2 and stdout == ""
    assert err == (f"vocalsep: error: 'vocalsep {command}' needs the [{extra}] extra ({', '.join(blocked)} not installed): "
                   f'pip install "vocalsep[{extra}]"\n')
    assert not (tmp_path / "OUT").exists()


@pytest.mark.parametrize("step, blocked", [("prepare", "scipy"), ("report", "matplotlib")])
def test_listen_names_its_extra(tmp_path, step, blocked):
    argv = (["prepare", "--system", f"a={tmp_path}", "--mixtures", str(tmp_path), "-o", str(tmp_path / "study")]
            if step == "prepare" else ["report", str(tmp_path), "-o", str(tmp_path / "report")])
    rc, _, err, _ = run_blocked("listen", *argv, blocked=(blocked,))
    assert rc == 2 and err == f"vocalsep: error: 'vocalsep listen {step}' needs {blocked}: pip install 'vocalsep[listen]'\n"


def test_the_extras_of_pyproject_match_the_commands_checks():
    """pyproject.toml's extras hold the modules the commands check for, and [test] pulls in every extra the suite needs."""
    import re
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")
    from vocalsep._cli_base import EXTRAS

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]

    def names(reqs):
        return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower().replace("-", "_") for r in reqs}

    base = names(project["dependencies"])
    assert not base & {lib.lower() for lib in EXTRA_LIBRARIES}, "the base install must not need an extra's library"
    for extra, modules in EXTRAS.items():
        assert names(extras[extra]) >= {m.lower() for m in modules}, extra
    assert names(extras["listen"]) >= {"flask", "waitress", "pyloudnorm", "scipy", "matplotlib"}
    test = extras["test"]
    included = next(r for r in test if r.startswith("vocalsep["))
    assert set(included[len("vocalsep["):-1].split(",")) == {"eval", "train", "mine", "listen", "web"}


def test_train_with_a_recipe_needs_no_extra(tmp_path):
    """A recipe's validation scores with a plain SDR: no scipy, so no [train] extra."""
    import numpy as np
    import soundfile as sf

    rate = 44100
    t = np.arange(3 * rate) / rate
    for i, name in enumerate(["a", "b", "c"]):
        for stem, freq in (("vocals", 900 + 50 * i), ("accompaniment", 200 + 10 * i)):
            path = tmp_path / "data" / "stems" / name / f"{stem}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            x = 0.2 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(i).standard_normal(t.size)
            sf.write(path, np.stack([x, x]).T.astype(np.float32), rate, subtype="FLOAT")
    recipe = {"true_share": 1.0, "sources": [{"name": "st", "layout": "stems", "path": "stems", "valid": ["c"], "true": 1}]}
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    rc, _, err, imported = run_blocked(
        "train", "--data", tmp_path / "data", "--recipe", tmp_path / "recipe.json", "--preset", "jansson2017-44k",
        "--channels", "4,8,16", "--patch-frames", "64", "--batch-size", "2", "--steps", "2", "--steps-per-epoch", "2",
        "--threads", "1", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run", "-q")
    assert rc == 0, err
    assert imported == [] and (tmp_path / "run" / "last.safetensors").is_file()
