"""The one error type a user sees.

Anything the user can fix (a bad key, a missing file, a malformed row, an
incompatible teacher/student pair) raises `KdbenchError` with a message that
names the problem and the fix. The CLI prints it on one line and exits 2,
without a traceback. Everything else is a bug and keeps its traceback.
"""


class KdbenchError(Exception):
    """A problem in the user's input or environment, with the fix in the message."""

    exit_code = 2


class NumericalError(KdbenchError):
    """A NaN or inf in the loss or the gradients: the message names the step, the batch and the loss parts."""
