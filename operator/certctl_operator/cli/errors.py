"""Expected failures of the plugin and the exit codes they map to.

Anything a user can cause (a missing object, an unreachable cluster, a
forbidden request) is a :class:`CliError` with a message that says what to do
next; ``main`` prints it without a traceback and exits with its code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every command, documented in docs/cli.md."""

    OK = 0
    ERROR = 1
    """The command could not do its job: missing object, API error, failed revocation."""
    USAGE = 2
    """Wrong arguments (argparse uses 2 as well)."""
    CONDITION = 3
    """The command worked and found what it was asked to fail on (``status --fail-on``, ``check``)."""
    TIMEOUT = 4
    """A wait (``revoke --wait``) ran out of time; the request itself was made."""
    INTERRUPTED = 130


class CliError(Exception):
    """A failure to report as one readable message, without a traceback."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class UsageError(CliError):
    """The arguments do not make sense together."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.USAGE)
