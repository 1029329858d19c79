"""The one exception hierarchy of GAIA.

Every error a user can cause derives from :class:`GaiaError`. Its message says
what was wrong, where, and what to do; the CLI prints it on one line and exits
with :attr:`GaiaError.exit_code` (a traceback only with ``--debug``).
"""

from __future__ import annotations


class GaiaError(Exception):
    """Base of every error GAIA raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(GaiaError):
    """A command line option or argument that cannot be used."""

    exit_code = 2


class ConfigError(GaiaError):
    """The configuration file or an override is malformed."""

    exit_code = 3


class IdentityError(GaiaError):
    """The node's keys are missing, unreadable or corrupt."""

    exit_code = 4


class PluginError(GaiaError):
    """A plugin failed to load, or the active plugins conflict."""

    exit_code = 5


class ValidationError(GaiaError):
    """Outside data (bytes, a task, a record) failed validation."""

    exit_code = 6


class CodecError(ValidationError):
    """Bytes could not be decoded into the expected record."""


class SignatureError(ValidationError):
    """A signed envelope is forged, stale, replayed or unsigned."""


class RejectedError(ValidationError):
    """A task was refused at admission; ``reason`` is machine readable."""

    def __init__(
        self, reason: str, message: str, *, hint: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        self.retry_after = retry_after


class TaskError(GaiaError):
    """A task could not be run or its result could not be obtained."""

    exit_code = 7


class NodeError(GaiaError):
    """The node is not running, unreachable, or refused a request."""

    exit_code = 8
