"""The one error type users see.

A `KitError` carries a one-line message that names the file, line or key at fault and
says what to do; the CLI prints it and exits with its `exit_code` (1; 2 for a parameter or
option the command refuses before any work, as for any other usage error). Anything else is a bug
and shows a traceback.
"""


class KitError(Exception):
    """A problem the user can fix (bad input, missing credentials, offline...)."""

    exit_code = 1


class Interrupted(KitError):
    """Ctrl-C: the message says what was kept and how to go on."""

    exit_code = 130


class InputError(KitError):
    """Input a command refuses before any work (a dataset with problems, a file that is not UTF-8):
    a usage error, like a bad option."""

    exit_code = 2


class ParamError(KitError):
    """A parameter (params.yaml, -S, a flag) of the wrong name, type or range, or two that contradict."""

    exit_code = 2


def listing(items: list[str], most: int = 10) -> str:
    """The first `most` items for a one-line message, then how many more."""
    more = f"; and {len(items) - most} more" if len(items) > most else ""
    return "; ".join(items[:most]) + more
