"""The errors a user can cause and act on.

Each carries a `hint`: what to do about it. The CLI prints the message and the hint as one
paragraph and exits non-zero; any other exception is a bug and keeps its traceback under
`--debug`. Messages never contain secrets.
"""

from __future__ import annotations


class MigrationError(Exception):
    """Base of the errors a user can act on."""

    exit_code: int = 1
    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class ConfigurationError(MigrationError):
    """A setting is missing or wrong."""

    exit_code = 2


class AuthenticationError(MigrationError):
    """A service rejected the credentials."""

    exit_code = 3


class ServiceUnavailable(MigrationError):
    """A service could not be reached, or kept failing after retries."""

    exit_code = 4


class PermissionDenied(MigrationError):
    """The identity lacks a privilege or the plan lacks a feature."""

    exit_code = 5


class BudgetExhausted(MigrationError):
    """Pipedrive's daily token budget is spent; the run stopped cleanly and can resume after the reset."""

    exit_code = 6


class PlanNotConfirmed(MigrationError):
    """The migration plan is unconfirmed, or changed since it was confirmed."""

    exit_code = 7


class MappingError(MigrationError):
    """A mapping file is malformed."""

    exit_code = 8


class ApiError(MigrationError):
    """A service answered with an error the tool cannot recover from."""

    exit_code = 9

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code
        self.code = code


class VerificationFailed(MigrationError):
    """The field-level diff found differences, or the counts do not reconcile."""

    exit_code = 10
