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


def test_module_docstrings_are_short():
    """A module's docstring says what it does in about 25 lines; formats, APIs and rules in detail
    belong in docs/."""
    import ast

    long = {}
    for path in sorted(SRC.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False)
        if doc and len(doc.splitlines()) > 30:
            long[path.relative_to(SRC).as_posix()] = len(doc.splitlines())
    assert not long, f"module docstrings over 30 lines (move the detail to docs/): {long}"
