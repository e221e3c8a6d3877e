"""Every error the pump raises on purpose, grouped by what the caller should do about it.

```
PumpError
├── ConfigError          .errors: list[str]; `pump validate` prints each and exits 78
├── DecodeError          one payload that is not a Tyk record; it is dead-lettered and counted
├── CommandError         a command cannot do what it was asked (a server it needs is unreachable, a
│                        port is taken…): one line for the operator and the process exit code
└── SinkError            .pump (set by the delivery layer)
    ├── RetriableError   timeouts, refused connections, 429/5xx: retry the same batch with backoff
    ├── BatchDataError   the server refused the batch because of its data, without saying which
    │                    record: the delivery layer splits the batch to find the bad ones
    └── RejectedRecords  the server said exactly which records it refused for good (and which
                         may be retried); the rest of the batch is delivered
```

Redis being unreachable is not an error class of ours: every Redis operation is idempotent and
waited out with backoff (``pump.delivery.ack.until_ok``); the batch stays claimed meanwhile.

Any other exception escaping a sink's ``write`` is treated like ``BatchDataError``: a bug that
trips over one record must not block every record behind it, and bisecting ends with only the
offending record in the dead-letter list, where it can be inspected and replayed.
"""

from __future__ import annotations

from collections.abc import Mapping


class PumpError(Exception):
    """Base of all errors raised deliberately by the pump."""


class ConfigError(PumpError):
    """The configuration is invalid; ``errors`` holds one actionable line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


class DecodeError(PumpError):
    """A payload could not be decoded as a Tyk analytics record."""


class SinkError(PumpError):
    """A sink could not write (part of) a batch."""


class RetriableError(SinkError):
    """A transient failure: the same write may succeed later (network, timeouts, 429, 5xx).

    ``retry_after`` (seconds) is the server's own ``Retry-After``: the delivery layer waits at
    least that long before the next attempt, instead of only its jittered backoff."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class BatchDataError(SinkError):
    """The server refused the batch because of its content, without naming the record."""


class RejectedRecords(SinkError):
    """A partial failure: ``rejected`` maps batch index → reason for records refused for good;
    ``retry`` lists batch indexes that failed transiently and should be written again."""

    def __init__(
        self, rejected: Mapping[int, str], retry: list[int] | None = None, message: str = "", retry_after: float | None = None
    ) -> None:
        self.rejected = dict(rejected)
        self.retry = list(retry or [])
        self.retry_after = retry_after  # as for RetriableError: the wait the server asked for
        super().__init__(message or f"{len(self.rejected)} record(s) rejected, {len(self.retry)} to retry")


#: Process exit codes (the table is in ``pump.cli`` and the README). 0 and 1 are success and
#: runtime failure; the others follow BSD's sysexits.h so scripts can tell the cases apart.
EX_USAGE = 2  # bad command line (argparse's code), e.g. ``deadletter --pump`` naming no pump
EX_UNAVAILABLE = 69  # a server the command needs cannot be reached (Redis for demo/deadletter)
EX_IOERR = 74  # the output was closed early (``pump demo | head -1``)
EX_TEMPFAIL = 75  # something another process holds (the health port, the instance id): retry once it is free
EX_CONFIG = 78  # invalid configuration


class CommandError(PumpError):
    """A command cannot go on: ``str(exc)`` is the one line for the operator (what failed, what to
    do) and ``exit_code`` the process exit code. The CLI prints it without a traceback."""

    def __init__(self, message: str, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(message)
