"""The shape of the source tree: no module grows past what one reader keeps in mind."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vocalsep"
LIMIT = 500  # lines



def test_no_long_modules():
    long = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > LIMIT:
            long[rel] = n
    assert not long, f"modules over {LIMIT} lines (split them): {long}"


def test_the_cli_is_a_package_of_small_modules():
    cli = SRC / "cli"
    assert (cli / "__init__.py").is_file() and not (SRC / "cli.py").exists()
    for path in cli.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 300, path.name
