"""What every ``vocalsep`` command line module shares: the exit codes, the usage error, and the check
that an optional extra is installed.

:mod:`vocalsep.cli` (the main parser) and the sub-command modules it registers
(:mod:`vocalsep.spleeter.cli`, :mod:`vocalsep.listen.cli`, :mod:`vocalsep.web.cli`) import
these from here, so that no sub-command module imports :mod:`vocalsep.cli`.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Wrong arguments: exit code 2."""
