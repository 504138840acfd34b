"""Exceptions raised by vocalsep.

Every error meant for a user carries one clear line: the file (when there is
one) and the reason.  The command line prints ``str(error)`` and nothing else.
"""

from __future__ import annotations

import os


class VocalsepError(Exception):
    """Base class of every error vocalsep raises on purpose."""


class AudioError(VocalsepError):
    """An input file cannot be used: unreadable, empty, silent, NaN, unknown format..."""

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    def __reduce__(self):  # rebuilt from its two fields, so that it crosses from a worker process intact
        return type(self), (self.path, self.reason)


class ModelError(VocalsepError):
    """A model or checkpoint cannot be found or loaded."""


class ConfigError(VocalsepError, ValueError):
    """A configuration value is invalid."""


class OutputError(VocalsepError):
    """An output path is refused (exists, escapes the output folder, is an input...)."""
