"""Package boundaries: no import cycles among vocalsep's modules, and every module imports on its own.

The import graph is read from the source (the AST), not from a running interpreter, so that an
import inside a function counts as much as one at the top of a module: a cycle broken only by
moving an import into a function is still a cycle here.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import vocalsep

SRC = Path(vocalsep.__file__).resolve().parent  # the vocalsep package being tested
PACKAGE = "vocalsep"


def module_files(root: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """{dotted module name: file} of every module of the package (a package is its ``__init__.py``)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(module: str, path: Path, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".") if _is_package(path) else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([name] if name else []))


def _dynamic_targets(tree: ast.Module) -> set[str]:
    """Relative submodule names in module-level dicts of strings (the lazy re-exports' tables, ``_WHERE``)."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for v in node.value.values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str):
                    names.add(v.value)
    return names


def imports_of(module: str, path: Path, modules: set[str]) -> set[str]:
    """The vocalsep modules that ``module`` imports anywhere in its source (module level or in functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()

    def add(target: str) -> None:
        if target in modules and target != module:
            found.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                if sub in modules:  # from . import x, from .pkg import mod: the submodule, not the package
                    add(sub)
                else:  # from .mod import name: the module holding the name
                    add(base)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
              and node.args):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                text = arg.value
                level = len(text) - len(text.lstrip("."))
                add(_resolve(module, path, level, text.lstrip(".") or None) if level else text)
            elif _is_package(path):  # importlib.import_module(f".{table[name]}", __name__): every submodule the table names
                for name in _dynamic_targets(tree):
                    add(f"{module}.{name}")
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    names = set(files)
    return {m: imports_of(m, p, names) for m, p in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {m: WHITE for m in graph}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = GREY
        stack.append(m)
        for n in sorted(graph[m]):
            if colour[n] == GREY:
                return stack[stack.index(n):] + [n]
            if colour[n] == WHITE:
                cycle = visit(n)
                if cycle:
                    return cycle
        stack.pop()
        colour[m] = BLACK
        return None

    for m in sorted(graph):
        if colour[m] == WHITE:
            cycle = visit(m)
            if cycle:
                return cycle
    return None


def all_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with a cycle (so that a failure names them all)."""
    cycles = []
    remaining = {m: set(t) for m, t in graph.items()}
    while True:
        cycle = find_cycle(remaining)
        if not cycle:
            return cycles
        cycles.append(cycle)
        # drop the cycle's first edge and look again: another component (or another loop of this one)
        remaining[cycle[0]].discard(cycle[1])


# -- the graph reader itself, on a small made-up package


def test_graph_reader_resolves_relative_and_function_level_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '1'\ndef __getattr__(name):\n    from . import a\n    return a\n")
    (pkg / "a.py").write_text("from . import __version__\nfrom .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from .b import thing\n")
    (pkg / "sub" / "b.py").write_text("thing = 1\ndef f():\n    from ..a import x\n    import pkg.c\n")
    (pkg / "c.py").write_text("")
    files = module_files(pkg, "pkg")
    graph = {m: imports_of(m, p, set(files)) for m, p in files.items()}
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg", "pkg.sub.b"}, "pkg.sub": {"pkg.sub.b"},
                     "pkg.sub.b": {"pkg.a", "pkg.c"}, "pkg.c": set()}
    cycles = all_cycles(graph)
    assert ["pkg", "pkg.a", "pkg"] in cycles and ["pkg.a", "pkg.sub.b", "pkg.a"] in cycles


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 40 and "vocalsep.cli" in graph
    cycles = all_cycles(graph)
    assert not cycles, "import cycles among vocalsep's modules:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_every_module_imports_on_its_own():
    """Each module in a fresh interpreter: none depends on another having been imported first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC.parent), *filter(None, [env.get("PYTHONPATH")])])

    def load(module: str):
        r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, env=env, timeout=300)
        return module, r.returncode, r.stderr.strip().splitlines()[-1:] if r.returncode else []

    modules = sorted(m for m in module_files() if not m.endswith(".__main__"))  # importing __main__ runs the command
    with ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
        failed = [(m, err) for m, rc, err in pool.map(load, modules) if rc]
    assert not failed, "modules that do not import on their own: " + "; ".join(f"{m}: {' '.join(e)}" for m, e in failed)


if __name__ == "__main__":  # pragma: no cover - print the graph
    for mod, targets in sorted(import_graph().items()):
        print(mod, "->", ", ".join(sorted(targets)))
    sys.exit(pytest.main([__file__, "-q"]))
