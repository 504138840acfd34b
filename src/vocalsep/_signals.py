"""A signal's exception held back over a few lines that must not be cut in two.

``vocalsep separate`` turns SIGTERM into an exception (``cli.Terminated``).  Raised between the
creation of a temporary output file and the moment its writer is known to the code that discards
it, that exception would leave the file behind; :func:`deferred_signals` holds it until the end of
such a block, where it is raised as if it had just arrived.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_STATE: dict = {"depth": 0, "pending": None}


@contextmanager
def deferred_signals() -> Iterator[None]:
    """A block during which :func:`raise_or_defer` holds its exception; it is raised at the block's end."""
    _STATE["depth"] += 1
    try:
        yield
    finally:
        _STATE["depth"] -= 1
        if _STATE["depth"] == 0 and _STATE["pending"] is not None:
            exc, _STATE["pending"] = _STATE["pending"], None
            raise exc


def raise_or_defer(exc: BaseException) -> None:
    """Raise ``exc`` now, or at the end of the :func:`deferred_signals` block the code is in."""
    if _STATE["depth"]:
        _STATE["pending"] = exc
        return
    raise exc
