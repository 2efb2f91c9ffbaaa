"""Failures a user can act on: a stable code, a message naming what is wrong and what fixes it."""

from __future__ import annotations


class EtlError(Exception):
    """A failure caused by the input (the source database, the request), not by a bug of ours.

    `str(error)` is shown to users as it is, so it never holds a secret.
    """

    code = "etl-error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class SourceError(EtlError):
    """The source database cannot be reached, logged into, or read as the schema requires."""

    code = "source-error"


class Rejected(Exception):
    """A value that does not fit its column: `rule` is the validation rule, `detail` says why."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail
