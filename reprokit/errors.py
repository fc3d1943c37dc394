# Every failure a user can cause or fix is a ReproError subclass whose str() is
# the whole message: what failed, where, and what to do next. Only the CLI
# prints them; library code raises and logs.
from __future__ import annotations


class ReproError(Exception):
    """Base class: a failure with a message meant for the user."""

    tip: str | None = None

    def __init__(self, message: str, tip: str | None = None) -> None:
        super().__init__(message)
        if tip is not None:
            self.tip = tip


class MatrixError(ReproError):
    """The matrix file is malformed or names something that does not exist."""


class InterpreterNotFound(ReproError):
    """No interpreter of the requested version could be found."""


class EnvironmentBuildError(ReproError):
    """A variant's virtualenv could not be created or its pins installed."""


class ServerError(ReproError):
    """The database server or the gateway could not be started or reached."""


class RunError(ReproError):
    """A run could not be carried out (the app did not start, a wait timed out)."""


class UnexpectedVerdict(ReproError):
    """A run finished, but its verdict is not the one the matrix expects."""


class ArtifactError(ReproError):
    """Stored evidence is missing, unreadable or of an unknown schema."""


class PublishError(ReproError):
    """The site could not be published."""
