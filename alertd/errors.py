"""The exception tree.

AlertdError
 +-- ConfigError          one or more config problems, each naming file:line:col
 +-- CollectError         a collection failed (the samples become UNKNOWN)
 +-- NotifyError          a channel could not deliver (``retryable`` says whether to try again)
 +-- StoreError           the state database is unusable
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args


class AlertdError(Exception):
    """Root of every error alertd raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One config problem with where it is."""

    file: str
    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    path: str  # key path such as ``rules[2].above.major``; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(AlertdError):
    """All problems found in one config load, reported together."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class CollectError(AlertdError):
    """A collection from one target failed."""


class CollectTimeoutError(CollectError, TimeoutError):
    """A collection did not finish in time."""


# what one delivery attempt came to (the outbox's attempt rows, alertd_notification_attempts)
AttemptOutcome = Literal["ok", "retryable", "permanent", "ambiguous"]
ATTEMPT_OUTCOMES: tuple[str, ...] = get_args(AttemptOutcome)


class FailureReason(enum.Enum):
    """Label values of ``alertd_notifications_failed_total{reason}``."""

    CONNECT = "connect"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    AUTH = "auth"
    RECIPIENT = "recipient"
    TEMPLATE = "template"  # none since templates fall back to the defaults; kept: a series
    UNCONFIGURED = "unconfigured"
    RATE_LIMITED = "rate_limited"  # the provider said slow down (HTTP 429, errcode 45009...)
    OTHER = "other"


class NotifyError(AlertdError):
    """A channel failed to deliver one notification."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        reason: FailureReason,
        ambiguous: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason
        # the request may have reached the provider (a timeout or reset after it was sent):
        # a retry can duplicate the message, so the outbox records the attempt as ambiguous
        self.ambiguous = ambiguous
        # seconds the provider asked us to wait (HTTP 429/503 Retry-After), if it said
        self.retry_after = retry_after


class StoreError(AlertdError):
    """The state database cannot be used."""
