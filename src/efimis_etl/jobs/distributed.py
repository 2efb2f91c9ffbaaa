"""The procrastinate app: tasks, the periodic housekeeping, and the worker entry point.

Tasks are synchronous (procrastinate runs them in threads) and find the platform and the stores through
a `Context` built lazily, once per app, from the settings the app was built with.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from functools import cached_property

import procrastinate
from procrastinate.exceptions import JobAborted

from efimis_etl.jobs import retention
from efimis_etl.jobs.pipeline import run_promotion, run_queued_import, worker_name
from efimis_etl.jobs.state import Platform, State
from efimis_etl.settings import Settings
from efimis_etl.stores import TenantStores, make_stores

log = logging.getLogger(__name__)

QUEUE = "efimis"
HEARTBEAT_SECONDS = 2.0
STALLED_AFTER_SECONDS = 10.0


def import_lock(request_id: str) -> str:
    """The import job's queueing lock: one per request, and how `cancel` finds the request's job."""
    return f"import:{request_id}"


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class Context:
    """What the tasks work with, opened on first use: a worker checks the platform database's version
    before the first job that needs the platform."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def platform(self) -> Platform:
        platform = Platform(self.settings.platform_url)
        platform.check_version()
        return platform

    @cached_property
    def stores(self) -> TenantStores:
        return make_stores(self.settings)


def drop_expired_staging(context: Context, timestamp: int) -> list[str]:
    """The periodic retention job: drop the staging stores of finished imports that were older than the
    retention at `timestamp` (procrastinate's scheduled time, seconds since the epoch). It reads the
    platform too: only the requests' states say which stores an unfinished import still needs."""
    now = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return retention.drop_expired_staging(context.platform, context.stores, now)


def build_app(settings: Settings) -> procrastinate.App:
    assert settings.platform_database_url is not None
    context = Context(settings)
    # One async connector serves both sides: the worker's async loop, and the API's synchronous defer().
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=_conninfo(settings.platform_database_url))
    )

    @app.task(name="efimis.import", queue=QUEUE, pass_context=True)
    def import_task(job: procrastinate.JobContext, request_id: str, tenant: str) -> None:
        # Between batches the import asks whether the job should abort: `cancel` requested it.
        outcome = run_queued_import(
            context.settings,
            context.platform,
            context.stores,
            request_id,
            tenant,
            should_stop=job.should_abort,
        )
        if outcome is State.CANCELLED and job.should_abort():
            raise JobAborted(f"import {request_id} was cancelled")  # the job's status says so: aborted

    @app.task(name="efimis.promote", queue=QUEUE, pass_context=False)
    def promote_task(request_id: str, tenant: str) -> None:
        platform, stores = context.platform, context.stores
        request = platform.get(request_id, tenant)
        if request is None or request["state"] != State.PROMOTING:
            return  # finished already; a duplicate delivery
        run_promotion(platform, stores, request_id, tenant, keep_days=context.settings.revert_days)

    @app.periodic(cron="* * * * * */5")
    @app.task(name="efimis.recover-stalled", queue=QUEUE, queueing_lock="recover-stalled", pass_context=True)
    async def recover_stalled(context: procrastinate.JobContext, timestamp: int) -> None:
        """Put back the jobs of workers that stopped sending heartbeats (killed, machine lost)."""
        manager = context.app.job_manager
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS):
            log.warning("retrying job %s (%s) of a worker that stopped", job.id, job.task_name)
            await manager.retry_job(job)

    @app.periodic(cron="17 * * * *")
    @app.task(name="efimis.forget-old-jobs", queue=QUEUE, queueing_lock="forget-old-jobs", pass_context=True)
    async def forget_old_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
        """Finished jobs are kept a day for inspection, then deleted (the periodic ones add up)."""
        await context.app.job_manager.delete_old_jobs(nb_hours=24, queue=QUEUE)

    @app.periodic(cron="*/10 * * * *")
    @app.task(
        name="efimis.drop-expired-staging", queue=QUEUE, queueing_lock="drop-expired", pass_context=False
    )
    def drop_expired(timestamp: int) -> None:
        drop_expired_staging(context, timestamp)

    return app


def apply_queue_schema(settings: Settings) -> bool:
    """Create procrastinate's tables if the platform database has none; True if it did."""
    import psycopg

    conninfo = _conninfo(settings.platform_database_url or "")
    with psycopg.connect(conninfo) as connection:
        present = connection.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
    if present and present[0]:
        return False
    app = build_app(settings)
    with app.open():
        app.schema_manager.apply_schema()
    return True


def run_worker(settings: Settings, *, concurrency: int) -> None:
    """Run jobs until interrupted; this process may be one of many on many machines."""
    Context(settings).platform  # noqa: B018 - fail fast on a platform database of another version
    app = build_app(settings)

    async def main() -> None:
        async with app.open_async():
            await app.run_worker_async(
                queues=[QUEUE],
                concurrency=concurrency,
                update_heartbeat_interval=HEARTBEAT_SECONDS,
                stalled_worker_timeout=STALLED_AFTER_SECONDS,
                install_signal_handlers=True,
                name=worker_name(),  # as the status names the worker of each attempt
            )

    asyncio.run(main())


__all__ = [
    "QUEUE",
    "Context",
    "apply_queue_schema",
    "build_app",
    "drop_expired_staging",
    "import_lock",
    "run_worker",
]
