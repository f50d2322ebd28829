"""The one exception type whose message is shown to users as a single line."""

from __future__ import annotations


class BigramLMError(Exception):
    """A problem with the user's input or environment, not a bug.

    The CLI prints ``error: <message>`` without a traceback and exits non-zero, so
    messages must be one line and say what to do about the problem.

    The library speaks in its own terms: a message names the function parameter at
    fault (``learning_rate``), and ``param`` says which one, so that the CLI can show
    the flag the user typed (``--lr``) instead, and the HTTP API the field.
    """

    def __init__(self, message: str, param: str | tuple[str, ...] | None = None):
        super().__init__(message)
        self.params: tuple[str, ...] = (param,) if isinstance(param, str) else tuple(param or ())

    @property
    def param(self) -> str | None:
        return self.params[0] if self.params else None

    def with_names(self, names: dict[str, str]) -> str:
        """The message with each parameter named as the caller knows it (``names[param]``)."""
        import re

        message = str(self)
        for param in self.params:
            if param in names:
                message = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", names[param], message)
        return message
