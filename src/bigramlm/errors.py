"""The one exception type whose message is shown to users as a single line."""


class BigramLMError(Exception):
    """A problem with the user's input or environment, not a bug.

    The CLI prints ``error: <message>`` without a traceback and exits non-zero,
    so messages must be one line and say what to do about the problem.
    """
