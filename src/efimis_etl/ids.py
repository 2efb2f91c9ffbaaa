"""Request ids: what the service issues, and so the only names stores accept for a staging store."""

from __future__ import annotations

import re
import uuid

REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def is_request_id(value: str) -> bool:
    return REQUEST_ID.fullmatch(value) is not None


def checked_request_id(value: str) -> str:
    """`value` if the service could have issued it; a store never builds a file or schema name from
    anything else (no path traversal, no identifier a tenant chose)."""
    if not is_request_id(value):
        raise ValueError(f"not a request id: {value!r}")
    return value
