"""Log records never carry a secret: every record's text is passed through `redact` as it is created.

Done with a log-record factory rather than a handler filter, so that it holds for every logger and
handler (uvicorn's included) and for exception tracebacks, which are formatted and redacted up front.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from efimis_etl.source.connstr import redact

_installed = False


def install_redaction() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    factory = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string: leave it for logging to report
            return record
        redacted = redact(message)
        if redacted != message:
            # Only then: formatters such as uvicorn's access log read record.args themselves.
            record.msg, record.args = redacted, ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
        return record

    logging.setLogRecordFactory(redacting_factory)
