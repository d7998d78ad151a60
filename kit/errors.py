"""The one error type users see.

A `KitError` carries a one-line message that names the file, line or key at fault and
says what to do; the CLI prints it and exits 1. Anything else is a bug and shows a traceback.
"""


class KitError(Exception):
    """A problem the user can fix (bad input, missing credentials, offline...)."""
