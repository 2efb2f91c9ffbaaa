"""Revert in the stores, on both backends: a revert killed (SIGKILL) at any moment leaves production either
fully reverted or untouched (it is one transaction on the production store); before-images cost only
updated rows and are dropped after EFIMIS_REVERT_DAYS."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import process_environment
from efimis_etl.demo import write_demo_source
from efimis_etl.promotion.promote import ProductionMoved, promote, promote_revision
from efimis_etl.settings import Settings
from efimis_etl.stores import TenantStores, make_stores
from efimis_etl.stores.base import BEFORE_IMAGE
from support import stage_and_validate

TENANT = "default"
REVERT = (
    "import sys\n"
    "from efimis_etl.promotion.revert import revert\n"
    "from efimis_etl.settings import Settings\n"
    "from efimis_etl.stores import make_stores\n"
    "stores = make_stores(Settings())\n"
    "print('ready', flush=True)\n"
    "revert(stores, sys.argv[1], 'default', keep_days=30)\n"
)


def _checksum(rows: dict[str, list[tuple[Any, ...]]]) -> str:
    return hashlib.sha256(repr(sorted(rows.items())).encode()).hexdigest()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "var")
    url = request.getfixturevalue("pg_url")
    return Settings(data_dir=tmp_path / "var", staging_url=url, production_url=url)


def test_a_revert_killed_midway_leaves_production_fully_reverted_or_untouched(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "firm.db"
    write_demo_source(source, scale=40)
    stores = make_stores(settings)
    first, summary = stage_and_validate(stores, f"sqlite:///{source}")
    assert summary["errors"] == 0
    promote(stores, first, TENANT)
    after_first = _checksum(stores.production_rows(TENANT))
    with sqlite3.connect(source) as firm:  # every work item and matter updated: a long revert, two tables
        firm.execute("""UPDATE "WorkItem" SET Description = Description || ' (revised)'""")
        firm.execute("""UPDATE "Matter" SET Description = Description || ' (revised)'""")
    second, _ = stage_and_validate(stores, f"sqlite:///{source}")
    promote(stores, second, TENANT)
    after_second = _checksum(stores.production_rows(TENANT))
    assert after_second != after_first

    untouched = 0
    for delay in (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 5.0, 30.0):
        worker = subprocess.Popen(
            [sys.executable, "-c", REVERT, second],
            env=process_environment(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == b"ready", worker.stderr.read() if worker.stderr else ""
        time.sleep(delay)
        worker.kill()
        worker.wait(30)
        state = _checksum(stores.production_rows(TENANT))
        assert state in (after_first, after_second), (
            f"a revert killed after {delay} s left production half-done"
        )
        if state == after_first:
            break
        untouched += 1
    assert state == after_first, "the revert never completed"
    assert untouched, "every kill came too late to interrupt the revert"
    stores.dispose()


def _before_images(stores: TenantStores) -> int:
    with stores.production_session(TENANT, write=False) as conn:
        return sum(
            int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in BEFORE_IMAGE.values()
        )


def test_before_images_are_kept_for_updated_rows_only_and_dropped_after_the_revert_days(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "firm.db"
    write_demo_source(source)
    stores = make_stores(settings)
    first, _ = stage_and_validate(stores, f"sqlite:///{source}")
    promote(stores, first, TENANT)
    assert _before_images(stores) == 0, "a first promotion (all inserts) copied rows"
    with sqlite3.connect(source) as firm:
        updated = firm.execute("""UPDATE "Matter" SET Description = Description || ' (revised)'""").rowcount
    second, _ = stage_and_validate(stores, f"sqlite:///{source}")
    promote(stores, second, TENANT)
    assert _before_images(stores) == updated
    promote_revision(stores, second, TENANT, keep_days=1e-9)  # unchanged; drops the expired ones
    assert _before_images(stores) == 0
    stores.dispose()


def test_a_promotion_at_a_stale_revision_writes_nothing_even_past_the_request_check(
    settings: Settings, tmp_path: Path
) -> None:
    # The job checks again under the promotion lock: production may move between the request and the job.
    source = tmp_path / "firm.db"
    write_demo_source(source)
    stores = make_stores(settings)
    first, _ = stage_and_validate(stores, f"sqlite:///{source}")
    second, _ = stage_and_validate(stores, f"sqlite:///{source}")
    moved = promote_revision(stores, first, TENANT, expected_revision=0)
    before = _checksum(stores.production_rows(TENANT))
    with pytest.raises(ProductionMoved) as refused:
        promote_revision(stores, second, TENANT, expected_revision=0)
    assert refused.value.movers == [first] and refused.value.current == moved.revision
    assert _checksum(stores.production_rows(TENANT)) == before
    assert _before_images(stores) == 0
    assert (
        promote_revision(stores, second, TENANT, expected_revision=moved.revision).revision
        == moved.revision + 1
    )
    stores.dispose()
