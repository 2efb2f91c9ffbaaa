"""What runs in a job's child process on the embedded default: one import (with its validation) or one
promotion, then the process exits.

The service's supervisor (`jobs.supervisor`) starts these processes from a forkserver that has imported
this module already, so a job starts in milliseconds and inherits none of the API process's threads,
locks or open databases. The child opens its own platform database and stores from the settings it was
handed. The connection string travels with the job through the pipe that starts the process: it is
never written anywhere.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from efimis_etl.jobs.pipeline import run_import, run_promotion
from efimis_etl.jobs.state import Platform
from efimis_etl.logs import install_redaction
from efimis_etl.settings import Settings
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.stores import make_stores

log = logging.getLogger(__name__)

JOB_NICENESS = 10  # added to the child's scheduling niceness (lower priority than the service's process)


@dataclass(frozen=True)
class Job:
    """One job for a child process. Its repr leaves the connection string out, so no log can show it."""

    kind: Literal["import", "promote"]
    request_id: str
    tenant: str
    connection_string: str | None = field(default=None, repr=False)


class StopSignal(Protocol):
    """The child's end of a pipe the supervisor closes when the job's request is cancelled: `poll()` is
    then true (end of file), as it is when the service's process has died."""

    def poll(self) -> bool: ...


class LogPipe(Protocol):
    """The child's end of the pipe that carries its log records to the supervisor."""

    def send(self, obj: Any) -> None: ...


class _ToSupervisor(logging.Handler):
    """Sends each record to the supervisor, which logs it in the service's process. The record is made
    plain first (message and traceback as text, no arguments) so that it can be pickled."""

    def __init__(self, pipe: LogPipe) -> None:
        super().__init__()
        self.pipe = pipe

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)  # the redacting record factory has already run
            plain = {**record.__dict__, "msg": text, "args": None, "exc_info": None, "exc_text": None}
            self.pipe.send(logging.makeLogRecord(plain))
        except Exception:
            self.handleError(record)


def run_job(
    settings: Settings, job: Job, stop: StopSignal, logs: LogPipe, environment: dict[str, str]
) -> None:
    """The child process's entry point. Exit code 0: the job recorded its own outcome (or found that
    another had); anything else tells the supervisor to record that the job died.

    `environment` is the service's environment when the job started: the forkserver this process was
    forked from kept the one of its own start, and drivers read theirs at connect time (Microsoft's, for
    one, finds the certificate authorities it trusts through SSL_CERT_FILE)."""
    os.environ.clear()
    os.environ.update(environment)
    # Jobs are throughput, requests are latency: when both want the CPU, the API's process goes first.
    os.nice(JOB_NICENESS)
    install_redaction()
    root = logging.getLogger()
    root.handlers[:] = [_ToSupervisor(logs)]
    root.setLevel(logging.INFO)
    try:
        platform, stores = Platform(settings.platform_url), make_stores(settings)
        log.info("worker process %d runs %s %s", os.getpid(), job.kind, job.request_id)
        if job.kind == "import":
            assert job.connection_string is not None
            source = parse_connection_string(job.connection_string)
            run_import(settings, platform, stores, job.request_id, job.tenant, source, should_stop=stop.poll)
        else:
            run_promotion(platform, stores, job.request_id, job.tenant, keep_days=settings.revert_days)
    except Exception:
        # Logged here, redacted, rather than by multiprocessing, which would print the raw traceback.
        log.exception("%s %s: the worker process failed", job.kind, job.request_id)
        raise SystemExit(1) from None
