"""Retention: the staging data of finished imports expires after EFIMIS_STAGING_RETENTION_HOURS.

One sweep, `drop_expired_staging`, serves both backends. On the embedded default the service runs it at
start and then every `SWEEP_SECONDS` on a `RetentionTimer`; scaled out, the procrastinate periodic task
`efimis.drop-expired-staging` runs it on a worker. A staging store whose import is still Queued, Importing,
Validating or Promoting is never dropped, however old: promoting an import validated a week ago needs it.

Time comes from a `Clock`, so that a test can move it on and watch the timer's next sweep happen.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Protocol

from efimis_etl.jobs.state import Platform
from efimis_etl.stores import TenantStores

log = logging.getLogger(__name__)

SWEEP_SECONDS = 600.0  # every 10 minutes, as the scaled-out periodic task


class Clock(Protocol):
    """What the retention reads the time from, and waits on."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Let `seconds` of this clock's time pass, or until `stop` is set: True if it was set."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(seconds)


def drop_expired_staging(platform: Platform, stores: TenantStores, now: datetime) -> list[str]:
    """Drop the staging stores past the retention at `now` whose imports have finished; their request ids."""

    def in_use(request_id: str) -> bool:
        # Asked afresh for each expired store, just before it would be dropped: `interrupted` lists every
        # request in a running state (Queued, Importing, Validating, Promoting), including one whose
        # promotion was requested a moment ago.
        return any(request["id"] == request_id for request in platform.interrupted())

    dropped = stores.drop_expired_staging(now, in_use=in_use)
    for request_id in dropped:
        log.info("dropped the staging store of import %s: past its retention", request_id)
    return dropped


class RetentionTimer:
    """Runs `drop_expired_staging` every `interval` seconds of `clock` time on a thread of its own, until
    `stop`. A failing sweep is logged and the next one runs on time: a database that was briefly away must
    not end retention for the life of the process."""

    def __init__(
        self, platform: Platform, stores: TenantStores, clock: Clock, *, interval: float = SWEEP_SECONDS
    ) -> None:
        self.platform, self.stores, self.clock, self.interval = platform, stores, clock, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="efimis-retention", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop waiting (a sweep under way finishes first) and wait for the thread to end."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self.clock.wait(self.interval, self._stop):
            try:
                drop_expired_staging(self.platform, self.stores, self.clock.now())
            except Exception:
                log.exception("the retention sweep failed; the next one runs in %g s", self.interval)


__all__ = ["SWEEP_SECONDS", "Clock", "RetentionTimer", "SystemClock", "drop_expired_staging"]
