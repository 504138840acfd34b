"""``vocalsep web``: a page where anyone separates songs and sings along, served by one command.

- :func:`create_app` / :func:`serve` (:mod:`.server`): the Flask app on waitress, its page and its API;
- :class:`JobStore` (:mod:`.store`): the jobs' state in SQLite and their files under the data folder;
- :class:`JobPool` (:mod:`.jobs`): the in-process queue and its worker threads.

Names are resolved lazily so that ``import vocalsep.web`` imports neither Flask nor PyTorch.
"""

from __future__ import annotations

__all__ = ["JobPool", "JobStore", "create_app", "serve"]

_WHERE = {"create_app": "server", "serve": "server", "JobStore": "store", "JobPool": "jobs"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        module = importlib.import_module(f".{_WHERE[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'vocalsep.web' has no attribute {name!r}")
