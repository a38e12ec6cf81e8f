"""The one error type users see.

Every problem with a user's input (a model file, a spec, a dataset folder, a
command-line value) is raised as :class:`ConvcError` with a message that
names the place (file, layer, field) and the problem. The command line prints
the message and exits with :data:`EXIT_USAGE`; it never shows a traceback for
these.
"""

EXIT_USAGE = 2


class ConvcError(Exception):
    """A problem with the user's input, reported as one clear message."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
