"""SQLAlchemy tables rendered from the schema model, and the customer DDL (`Efimis-1.0.sql`).

Two renderings of the one model:
- the *source* tables, as the customer creates them (schema `etl`, declared SQL Server types);
- the *store* tables of our staging and production tenants, which keep values exactly (money as scaled
  integers on SQLite, which has no decimal type) and, in staging, accept anything the source holds so
  that validation can report it instead of the load failing on the first bad row.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from sqlalchemy import (
    DECIMAL,
    BigInteger,
    Boolean,
    Date,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Unicode,
    UnicodeText,
    insert,
)
from sqlalchemy import Column as SAColumn
from sqlalchemy.dialects import mssql, postgresql, sqlite
from sqlalchemy.schema import CreateSchema, CreateTable
from sqlalchemy.types import TypeDecorator, TypeEngine

from efimis_etl.schema.model import (
    ALL_TABLES,
    ENTITIES,
    IMPORT_ID_LENGTH,
    REFERENCE_LENGTH,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    SCHEMA_VERSION_ENTITY,
    Column,
    Entity,
    Kind,
)

Dialect_ = Literal["tsql", "postgresql", "sqlite"]


def sql_server_dialect() -> Dialect:
    """SQLAlchemy's SQL Server dialect for SQL Server 2016 and later. Left without a server version it
    assumes a pre-2008 server and writes DATETIME for DATE."""
    dialect = mssql.dialect()
    dialect.server_version_info = (13, 0)
    dialect._setup_version_attributes()  # type: ignore[attr-defined]
    return dialect


DIALECTS: dict[str, Dialect] = {
    "tsql": sql_server_dialect(),
    "postgresql": postgresql.dialect(),
    "sqlite": sqlite.dialect(),
}
MONEY_SCALE = 4  # decimal places of every money and rate value, in the source and in our stores
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


def to_scaled(value: Decimal) -> int:
    """A money value as an integer count of 1/10,000ths (how SQLite keeps it), exactly or not at all."""
    scaled = value.scaleb(MONEY_SCALE)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {MONEY_SCALE} decimal places")
    return int(scaled)


def from_scaled(value: int) -> Decimal:
    return Decimal(value).scaleb(-MONEY_SCALE)


class ExactDecimal(TypeDecorator[Decimal]):
    """DECIMAL(p,4) everywhere; on SQLite an integer count of 1/10,000ths, so no value ever passes
    through a float and sums in SQL stay exact."""

    impl = BigInteger
    cache_ok = True

    def __init__(self, precision: int = 19) -> None:
        super().__init__()
        self.precision = precision

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[object]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DECIMAL(self.precision, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> object:
        if value is None or dialect.name != "sqlite":
            return value
        return to_scaled(value)

    def process_result_value(self, value: object, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_scaled(int(value))  # type: ignore[call-overload]
        return Decimal(value).quantize(MONEY_QUANTUM)  # type: ignore[arg-type]


def _source_type(column: Column) -> TypeEngine[object]:
    match column.kind:
        case Kind.TEXT:
            return Unicode(column.length)
        case Kind.LONG_TEXT:
            # SQLAlchemy's default for SQL Server is the deprecated NTEXT.
            return UnicodeText().with_variant(mssql.NVARCHAR(), "mssql")
        case Kind.REFERENCE:
            return Unicode(REFERENCE_LENGTH)
        case Kind.INTEGER | Kind.ENUM:
            return Integer()
        case Kind.BOOLEAN:
            return Boolean()
        case Kind.MONEY:
            return DECIMAL(19, MONEY_SCALE)
        case Kind.RATE:
            return DECIMAL(9, MONEY_SCALE)
        case Kind.DATE:
            return Date()


def _store_type(column: Column) -> TypeEngine[object]:
    match column.kind:
        case Kind.TEXT | Kind.LONG_TEXT | Kind.REFERENCE:
            # Unbounded, so an over-long value is kept and reported rather than cut or refused.
            return UnicodeText()
        case Kind.INTEGER | Kind.ENUM:
            return BigInteger()
        case Kind.BOOLEAN:
            return Boolean()
        case Kind.MONEY:
            return ExactDecimal(19)
        case Kind.RATE:
            return ExactDecimal(9)
        case Kind.DATE:
            return Date()


def _key_column(entity: Entity) -> str:
    return "ImportId" if entity.importable else "Version"


def source_metadata() -> MetaData:
    """The customer's tables in schema `etl`, exactly as `Efimis-1.0.sql` creates them."""
    metadata = MetaData(schema=SCHEMA_NAME)
    for entity in ALL_TABLES:
        Table(
            entity.name,
            metadata,
            *(
                SAColumn(
                    c.name,
                    _source_type(c),
                    nullable=not c.required,
                    primary_key=c.name == _key_column(entity),
                )
                for c in entity.all_columns
            ),
        )
    return metadata


SOURCE = source_metadata()


def source_table(entity: Entity) -> Table:
    return SOURCE.tables[f"{SCHEMA_NAME}.{entity.name}"]


def staging_metadata() -> MetaData:
    """Staging tables: every column nullable and unconstrained, so all of the source loads and the
    validation rules, not the loader, say what is wrong."""
    metadata = MetaData()
    for entity in ENTITIES:
        Table(
            entity.name,
            metadata,
            *(SAColumn(c.name, _store_type(c), nullable=True) for c in entity.all_columns),
            Index(f"ix_{entity.name}_ImportId", "ImportId"),
        )
    return metadata


def production_metadata() -> MetaData:
    """Production tables: one row per ImportId, each with the platform id it keeps for life.

    Reference columns hold canonical platform references (`matter_<id>`), resolved at promotion.
    """
    metadata = MetaData()
    for entity in ENTITIES:
        Table(
            entity.name,
            metadata,
            SAColumn("ImportId", Unicode(IMPORT_ID_LENGTH), primary_key=True),
            SAColumn("PlatformId", String(32), nullable=False, unique=True),
            SAColumn("LastRequestId", String(32), nullable=False),
            *(SAColumn(c.name, _store_type(c), nullable=True) for c in entity.columns),
        )
    return metadata


STAGING = staging_metadata()
PRODUCTION = production_metadata()


def render_ddl(dialect: Dialect_ = "tsql") -> str:
    """The customer DDL for a dialect. T-SQL is `Efimis-1.0.sql`; SQLite has no schemas, so there the
    tables are created without the `etl.` prefix (the importer reads them that way)."""
    target = DIALECTS[dialect]
    tables = list(SOURCE.tables.values())
    statements: list[str] = []
    if dialect == "sqlite":
        bare = MetaData()
        tables = [t.to_metadata(bare, schema=None) for t in tables]
    else:
        statements.append(str(CreateSchema(SCHEMA_NAME).compile(dialect=target)).strip() + ";")
    statements += [str(CreateTable(t).compile(dialect=target)).strip() + ";" for t in tables]
    version_row = insert(tables[0]).values(Version=SCHEMA_VERSION)
    statements.append(str(version_row.compile(dialect=target, compile_kwargs={"literal_binds": True})) + ";")
    header = (
        f"-- Efimis ETL staging schema {SCHEMA_VERSION} ({dialect}).\n"
        "-- Generated from the Efimis ETL schema model; the schema reference documents every column.\n"
        "-- Fill these tables, then submit a connection string to POST /etl/import. A read-only login\n"
        "-- (db_datareader) is enough: the importer only runs SELECT statements.\n\n"
    )
    if dialect == "tsql":
        # GO ends a batch in sqlcmd and SSMS; CREATE SCHEMA must be alone in its batch.
        return header + "\nGO\n".join(statements) + "\nGO\n"
    return header + "\n".join(statements) + "\n"


def source_type_name(column: Column, dialect: Dialect_ = "tsql") -> str:
    """The column's declared type as the DDL for this dialect spells it."""
    return str(_source_type(column).compile(dialect=DIALECTS[dialect]))


__all__ = [
    "PRODUCTION",
    "SCHEMA_VERSION_ENTITY",
    "SOURCE",
    "STAGING",
    "ExactDecimal",
    "render_ddl",
    "source_table",
    "source_type_name",
]
