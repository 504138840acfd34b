"""The paper's listening test (section 4.1): prepare a study, serve it, report it.

Three steps, each usable from Python without the command line:

1. :func:`prepare` (``vocalsep listen prepare``) cuts excerpts that contain
   singing from the mixtures and every system's separated stems, at the same
   place for every system, normalises their loudness (ITU-R BS.1770) and writes
   a study folder: ``study.json`` (questions, clip sets, hidden control
   questions with their acceptable answers, the Likert labels; editable) and
   ``audio/`` (the clips, under opaque names so that a URL does not tell which
   system made a clip).
2. :func:`create_app` / :func:`serve` (``vocalsep listen serve``) run the web
   app participants use; responses go to SQLite (``responses.sqlite`` in the
   study folder) in transactions.
3. :func:`make_report` (``vocalsep listen report``) writes the statistics per
   system and question over the participants who passed every control, paired
   Wilcoxon signed-rank tests, a bar chart like the paper's Figure 5 and the raw
   responses.

Names are resolved lazily so that ``import vocalsep.listen`` imports neither
Flask nor matplotlib.
"""

from __future__ import annotations

__all__ = [
    "PrepareConfig",
    "Store",
    "Study",
    "create_app",
    "load_study",
    "make_plan",
    "make_report",
    "prepare",
    "serve",
]

_WHERE = {
    "PrepareConfig": "prepare",
    "prepare": "prepare",
    "Study": "study",
    "load_study": "study",
    "make_plan": "study",
    "Store": "store",
    "create_app": "server",
    "serve": "server",
    "make_report": "report",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        module = importlib.import_module(f".{_WHERE[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'vocalsep.listen' has no attribute {name!r}")
