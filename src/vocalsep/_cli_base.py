"""What every ``vocalsep`` command line module shares: the exit codes, the usage error, and the check
that an optional extra is installed.

:mod:`vocalsep.cli` (the main parser) and the sub-command modules it registers
(:mod:`vocalsep.spleeter.cli`, :mod:`vocalsep.listen.cli`, :mod:`vocalsep.web.cli`) import
these from here, so that no sub-command module imports :mod:`vocalsep.cli`.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# The optional extras of the commands (pyproject.toml's [project.optional-dependencies]): the modules
# each command imports, checked before the command starts.  The base install separates.
EXTRAS = {
    "eval": ("matplotlib", "mir_eval", "scipy"),  # vocalsep evaluate: BSS Eval, the figures
    "train": ("scipy",),  # vocalsep train without --recipe: the validation's BSS Eval
    "mine": ("rapidfuzz", "mutagen"),  # vocalsep mine: fuzzy titles, tags of audio files
}


class UsageError(Exception):
    """Wrong arguments: exit code 2."""


def missing_modules(*modules: str) -> list[str]:
    """The modules of ``modules`` that are not installed (not found, or refused by an import hook)."""
    import importlib.util

    missing = []
    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(m)
    return missing


def need_extra(command: str, extra: str) -> None:
    """Raise :class:`UsageError` (one line naming what to install) when ``extra``'s modules are not all installed."""
    missing = missing_modules(*EXTRAS[extra])
    if missing:
        raise UsageError(f"'vocalsep {command}' needs the [{extra}] extra ({', '.join(missing)} not installed): "
                         f'pip install "vocalsep[{extra}]"')
