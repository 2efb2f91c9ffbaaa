"""The schema model renders DDL that real databases accept, and a reference that documents it all."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, inspect

from efimis_etl.reference import render_html, render_markdown
from efimis_etl.schema.model import ALL_TABLES, ENTITIES, ENUMERATIONS, Kind
from efimis_etl.schema.tables import render_ddl
from efimis_etl.validation.catalogue import RULES

DOMAIN_ENTITIES = {
    "SchemaVersion",
    "Journal",
    "Account",
    "TaxCode",
    "Staff",
    "Contact",
    "Client",
    "MatterType",
    "Matter",
    "MatterContact",
    "WorkItem",
    "Disbursement",
    "Invoice",
    "Receipt",
    "ReceiptAllocation",
    "TrustTransaction",
    "JournalEntry",
    "JournalEntryLine",
}


def test_every_domain_entity_is_a_table_with_an_import_id_key() -> None:
    assert {e.name for e in ALL_TABLES} == DOMAIN_ENTITIES
    tsql = render_ddl("tsql")
    for entity in ENTITIES:
        block = re.search(rf"CREATE TABLE etl\.\[{entity.name}\] \((.*?)\n\);", tsql, re.S)
        assert block, entity.name
        assert "[ImportId] NVARCHAR(100) NOT NULL" in block.group(1)
        assert "PRIMARY KEY ([ImportId])" in block.group(1)
    assert "CREATE SCHEMA etl;\nGO" in tsql
    assert "INSERT INTO etl.[SchemaVersion] ([Version]) VALUES (N'1.0');" in tsql


def test_tsql_uses_exact_types_for_money_and_unicode_for_text() -> None:
    tsql = render_ddl("tsql")
    assert "[Amount] DECIMAL(19, 4) NOT NULL" in tsql
    assert "[Description] NVARCHAR(max) NOT NULL" in tsql  # WorkItem narratives can be long
    assert "FLOAT" not in tsql and "REAL" not in tsql
    # Dates are DATE: SQLAlchemy, left to assume a pre-2008 server, would write DATETIME.
    assert "[OpenedOn] DATE NOT NULL" in tsql and "DATETIME" not in tsql and "NTEXT" not in tsql


def test_references_are_declared_in_dependency_order() -> None:
    seen: set[str] = set()
    for entity in ENTITIES:
        for column in entity.references:
            assert column.target in seen | {entity.name}, f"{entity.name}.{column.name} → {column.target}"
        seen.add(entity.name)


def test_sqlite_ddl_creates_every_table(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(render_ddl("sqlite"))
        assert connection.execute("SELECT Version FROM SchemaVersion").fetchall() == [("1.0",)]
    tables = set(inspect(create_engine(f"sqlite:///{path}")).get_table_names())
    assert tables == DOMAIN_ENTITIES


def test_postgresql_ddl_runs_on_a_real_server(pg_url: str) -> None:
    with psycopg.connect(pg_url.replace("+psycopg", "")) as connection:
        connection.execute(render_ddl("postgresql"))  # type: ignore[arg-type]
        connection.commit()
    inspector = inspect(create_engine(pg_url))
    assert set(inspector.get_table_names(schema="etl")) == DOMAIN_ENTITIES
    columns = {c["name"]: c for c in inspector.get_columns("WorkItem", schema="etl")}
    assert str(columns["Amount"]["type"]) == "NUMERIC(19, 4)"
    assert columns["InvoiceId"]["nullable"] and not columns["MatterId"]["nullable"]


def test_reference_documents_every_column_enum_value_and_rule() -> None:
    markdown, html = render_markdown(), render_html()
    for entity in ALL_TABLES:
        assert f"### etl.{entity.name}" in markdown
        for column in entity.all_columns:
            assert f"| {column.name} |" in markdown, f"{entity.name}.{column.name}"
            assert column.name in html
            if column.kind is Kind.REFERENCE:
                assert f"| {column.target} |" in markdown
    for enumeration in ENUMERATIONS:
        for value in enumeration.values:
            assert f"| {value.value} | {value.name} |" in markdown
    for code in RULES:
        assert f"`{code}`" in markdown and code in html
    assert "| Matter | MatterNumber |" not in markdown  # sanity: rows are per column, not per entity
    assert "| MatterId | NVARCHAR(100) | yes | Matter |" in markdown
