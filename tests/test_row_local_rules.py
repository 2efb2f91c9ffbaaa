"""The row-local rules read only the rows one pass per table flags for them, and find exactly what they
find reading the whole tables: the same findings, in the same order, on both backends."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import UnicodeText, create_engine, literal, select
from sqlalchemy.dialects import sqlite

from efimis_etl.demo import write_demo_source
from efimis_etl.schema.model import ENTITY_BY_PREFIX
from efimis_etl.settings import Settings
from efimis_etl.stores import TenantStores, make_stores
from efimis_etl.stores.base import FINDING
from efimis_etl.stores.sql import is_platform_reference
from efimis_etl.validation.catalogue import RULES
from efimis_etl.validation.rules import ROW_LOCAL
from efimis_etl.validation.run import compiled_rules, run_rules
from efimis_etl.validation.tables import is_reference
from support import stage


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TenantStores]:
    urls: dict[str, Any] = {}
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        urls = {"staging_url": url, "production_url": url}
    stores = make_stores(Settings(data_dir=tmp_path / "var", **urls))
    yield stores
    stores.dispose()


def _source(tmp_path: Path) -> str:
    """The demo firm with its planted errors, and more of the problems row-local rules find, several on
    one row and on rows other rules also report."""
    path = tmp_path / "firm.db"
    write_demo_source(path, with_errors=True)
    with sqlite3.connect(path) as source:
        source.executescript(
            """
            UPDATE WorkItem SET Minutes = -5, Status = 7, Description = '   ' WHERE rowid % 7 = 0;
            UPDATE WorkItem SET WorkDate = '1899-12-31', MatterId = 'matter_' || printf('%032d', 0)
                WHERE rowid % 11 = 0;
            UPDATE WorkItem SET StaffId = 'invoice_' || printf('%032d', rowid) WHERE rowid % 13 = 0;
            UPDATE Contact SET Email = 'two@at@example.com', Country = 'gb' WHERE rowid % 3 = 0;
            UPDATE Matter SET Currency = 'aud', ClosedOn = '2000-01-01' WHERE rowid % 2 = 0;
            """
        )
    return f"sqlite:///{path}"


def _findings(stores: TenantStores, request_id: str) -> list[tuple[Any, ...]]:
    with stores.staging_session(request_id) as conn:
        return [tuple(row) for row in conn.execute(select(FINDING).order_by(FINDING.c.Id))]


def test_flagged_rows_give_the_findings_whole_tables_give(stores: TenantStores, tmp_path: Path) -> None:
    source = _source(tmp_path)
    found = {}
    for flag_rows in (True, False):
        request_id = stage(stores, source)
        with stores.validation_session(request_id, "default") as (conn, production_schema):
            run_rules(conn, production_schema, flag_rows=flag_rows)
        found[flag_rows] = _findings(stores, request_id)
    assert found[True] == found[False]
    # The comparison means something: every row-local rule found something, many times over.
    codes = [finding[1] for finding in found[True]]
    assert {rule.code for rule in ROW_LOCAL} <= set(codes)
    assert len(codes) > 150


def test_only_the_flagged_pass_reads_whole_tables_for_row_local_rules() -> None:
    texts = compiled_rules(sqlite.dialect, "production")
    flagging = [t for t in texts if t.startswith("CREATE TEMPORARY TABLE")]
    assert len(flagging) == len([t for t in texts if "DROP TABLE" in t]) > 0
    for text in texts:
        if text.startswith("INSERT"):
            code = text.split("'", 2)[1]
            flagged = '"_Flagged_' in text
            assert flagged == (RULES[code] in ROW_LOCAL), code


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_cheap_reference_test_keeps_every_platform_reference(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """`is_reference` (the cheap test, then the patterns) says what the patterns alone say, for every
    prefix and for texts that look almost like references."""
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else "sqlite://"
    engine = create_engine(url)
    hexes = "0123456789abcdef" * 2
    values = [None, "", "WI-1", "_" + hexes, "x" * 40, "é_" + "ü" * 36]
    for prefix in ENTITY_BY_PREFIX:
        values += [f"{prefix}_{hexes}", f"{prefix}_{hexes[:-1]}", f"{prefix}_{hexes}0", f"{prefix}-{hexes}"]
    with engine.connect() as conn:
        for value in values:
            shown = literal(value, UnicodeText())
            for prefixes in ([*ENTITY_BY_PREFIX], ["matter"]):
                cheap, exact = conn.execute(
                    select(is_reference(shown, *prefixes), is_platform_reference(shown, *prefixes))
                ).one()
                assert (cheap is None and exact is None) or bool(cheap) == bool(exact), (value, prefixes)
    engine.dispose()
