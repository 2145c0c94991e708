"""Errors that reach the user as one clear line (no traceback unless --debug)."""

from __future__ import annotations


class PrefkitError(Exception):
    """Bad input or a failure the user can act on.

    The CLI prints ``Error: <message>`` and exits with ``exit_code``; the traceback
    is shown only with ``--debug`` / ``PREFKIT_DEBUG=1``.
    """

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(PrefkitError):
    """A bad option value or an unknown name (exit code 2, like click)."""

    exit_code = 2


class PluginError(PrefkitError):
    """A plugin misbehaved (name clash, bad registration)."""


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` — how a wrapped library error appears in a one-line error."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
