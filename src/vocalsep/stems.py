"""The stems vocalsep separates, named once: every module that lists them imports :data:`STEMS`."""

from __future__ import annotations

STEMS = ("vocals", "accompaniment")
"""The two stems (targets, sources) in their fixed order: each model is trained for one of them,
the separator writes them, the evaluation scores them, in this order."""
