"""The SQLite side of the test SQL Server (`tds_server`): T-SQL batches run on a SQLite source file.

Test-and-demo code, not a database server. Each connection gets an in-memory SQLite database with the
source file ATTACHed read-only `AS etl` and an `INFORMATION_SCHEMA` (`COLUMNS`, `TABLES`) built from the
source tables' declared types. Statements are translated from T-SQL with sqlglot; each result column gets
the SQL Server type of the source column it refers to, and every value is encoded for that type or the
statement fails with SQL Server's conversion error (see `tds_protocol.SqlType.encode`). SUM of a decimal
column is exact, as in SQL Server (a decimal(38, s)), not SQLite's floating-point sum.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from efimis_devtools import tds_protocol as tds
from efimis_devtools.tds_protocol import SqlType


class SqlFailure(Exception):
    """A statement error, reported to the client as SQL Server's error `number`."""

    def __init__(self, number: int, message: str, severity: int = 16) -> None:
        super().__init__(message)
        self.number = number
        self.message = message
        self.severity = severity


@dataclass
class _Result:
    columns: list[tuple[str, SqlType]] | None  # None: a statement without a result set
    rows: list[list[bytes | None]] = field(default_factory=list)
    database_changed: str | None = None


_INFORMATION_SCHEMA_DDL = """
CREATE TABLE INFORMATION_SCHEMA.COLUMNS (
    TABLE_CATALOG NVARCHAR(128) COLLATE NOCASE, TABLE_SCHEMA NVARCHAR(128) COLLATE NOCASE,
    TABLE_NAME NVARCHAR(128) COLLATE NOCASE, COLUMN_NAME NVARCHAR(128) COLLATE NOCASE, ORDINAL_POSITION INT,
    COLUMN_DEFAULT NVARCHAR(4000), IS_NULLABLE VARCHAR(3), DATA_TYPE NVARCHAR(128) COLLATE NOCASE,
    CHARACTER_MAXIMUM_LENGTH INT, CHARACTER_OCTET_LENGTH INT, NUMERIC_PRECISION INT, NUMERIC_SCALE INT,
    DATETIME_PRECISION INT);
CREATE TABLE INFORMATION_SCHEMA.TABLES (
    TABLE_CATALOG NVARCHAR(128) COLLATE NOCASE, TABLE_SCHEMA NVARCHAR(128) COLLATE NOCASE,
    TABLE_NAME NVARCHAR(128) COLLATE NOCASE, TABLE_TYPE VARCHAR(10));
"""

_DECIMAL_SUM = "tds_decimal_sum"


class _DecimalSum:
    """SQLite aggregate `tds_decimal_sum(value, scale)`: an exact decimal sum, as text (None for no rows)."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: object, scale: int) -> None:
        if value is None:
            return
        with localcontext() as context:
            context.prec = 80
            # A value no decimal column could hold fails the sum (error 8114, see `_explain`).
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
            if not number.is_finite():
                raise InvalidOperation(value)
            number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
            self.total = number if self.total is None else self.total + number

    def finalize(self) -> str | None:
        return None if self.total is None else str(self.total)


_SESSION_VALUES = {
    "version": "Microsoft SQL Server 2022 (Efimis test TDS server over SQLite; not a database server)",
    "servername": tds.SERVER_NAME,
    "trancount": 0,
    "language": "us_english",
}


class SqliteBackend:
    """One connection's view of the source: `etl` (the file, read-only) and `INFORMATION_SCHEMA`."""

    def __init__(self, source: Path, database: str, spid: int) -> None:
        self.database = database
        self.spid = spid
        # {(schema, table): [(column, type or None)]}, lowercased keys, column order kept
        self.tables: dict[tuple[str, str], list[tuple[str, SqlType | None]]] = {}
        self._names: dict[tuple[str, str], str] = {}  # the table names as declared
        self.db = sqlite3.connect("file::memory:", uri=True, check_same_thread=False)
        try:
            uri = source.resolve().as_uri() + "?mode=ro"
            self.db.create_aggregate(_DECIMAL_SUM, 2, _DecimalSum)
            self.db.execute("ATTACH DATABASE ? AS etl", (uri,))
            self.db.execute("ATTACH DATABASE ':memory:' AS INFORMATION_SCHEMA")
            self.db.executescript(_INFORMATION_SCHEMA_DDL)
            self._load_schema("etl")
            self._load_schema("information_schema")
            self._fill_information_schema()
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def _load_schema(self, schema: str) -> None:
        names = self.db.execute(
            f"SELECT name FROM {schema}.sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        for (name,) in names:
            columns = self.db.execute(f'PRAGMA {schema}.table_info("{name}")').fetchall()
            self.tables[(schema, name.lower())] = [
                (str(c[1]), tds.sql_type_for(str(c[2] or ""))) for c in columns
            ]
            self._names[(schema, name.lower())] = name

    def _fill_information_schema(self) -> None:
        columns, tables = [], []
        for (schema, key), cols in self.tables.items():
            if schema != "etl":
                continue
            name = self._names[(schema, key)]
            tables.append((self.database, "etl", name, "BASE TABLE"))
            for position, (column, sql_type) in enumerate(cols, start=1):
                data_type, length, precision, scale = (
                    tds.information_schema_row(sql_type) if sql_type else ("sql_variant", None, None, None)
                )
                octets = None if length is None else (-1 if length == -1 else 2 * length)
                datetime_precision = (
                    sql_type.scale
                    if sql_type and data_type == "datetime2"
                    else 0
                    if data_type == "date"
                    else None
                )
                row = [self.database, "etl", name, column, position, None, "YES", data_type, length, octets]
                columns.append((*row, precision, scale, datetime_precision))
        self.db.executemany(f"INSERT INTO INFORMATION_SCHEMA.COLUMNS VALUES ({', '.join('?' * 13)})", columns)
        self.db.executemany("INSERT INTO INFORMATION_SCHEMA.TABLES VALUES (?, ?, ?, ?)", tables)

    # statements
    def parse(self, sql: str) -> list[exp.Expression]:
        try:
            return [tree for tree in sqlglot.parse(sql, read="tsql") if tree is not None]
        except SqlglotError as error:
            details = getattr(error, "errors", None) or [{}]
            near = str(details[0].get("highlight") or "").strip() or sql.strip()[:40]
            raise SqlFailure(102, f"Incorrect syntax near '{near}'.", 15) from None

    def execute(self, tree: exp.Expression) -> _Result:
        if isinstance(tree, exp.Set | exp.Transaction | exp.Commit | exp.Rollback):
            return _Result(None)
        if isinstance(tree, exp.Use):
            name = tree.this.name if tree.this is not None else ""
            if name.lower() != self.database.lower():
                raise SqlFailure(
                    911, f"Database '{name}' does not exist. Make sure that the name is entered correctly."
                )
            return _Result(None, database_changed=self.database)
        if not isinstance(tree, exp.Query):
            raise SqlFailure(
                3906, f'Failed to update database "{self.database}" because the database is read-only.'
            )
        tree = self._exact_sums(tree).transform(self._sqlite_friendly)
        sql = tree.sql(dialect="sqlite")
        try:
            cursor = self.db.execute(sql)
            fetched = cursor.fetchall()
        except sqlite3.Error as error:
            raise self._explain(error) from None
        names = [d[0] for d in cursor.description or ()]
        declared = self._declared_columns(tree, len(names))
        types = [
            t if t is not None else tds.infer_type([r[i] for r in fetched])
            for i, (t, _) in enumerate(declared)
        ]
        rows = []
        for values in fetched:
            encoded: list[bytes | None] = []
            for sql_type, (_, origin), value in zip(types, declared, values, strict=True):
                try:
                    encoded.append(sql_type.encode(value))
                except tds.ConversionFailed as failed:
                    raise self._conversion_failure(failed, origin) from None
            rows.append(encoded)
        return _Result(list(zip(names, types, strict=True)), rows)

    def _conversion_failure(self, failed: tds.ConversionFailed, origin: tuple[str, str] | None) -> SqlFailure:
        if failed.truncated is not None and origin is not None:
            table, column = origin
            return SqlFailure(
                failed.number,
                f"String or binary data would be truncated in table '{self.database}.etl.{table}', "
                f"column '{column}'. Truncated value: '{failed.truncated}'.",
            )
        return SqlFailure(failed.number, failed.message)

    def _sqlite_friendly(self, node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.National):  # N'...' literals: SQLite strings are Unicode already
            return exp.Literal.string(node.this)
        if isinstance(node, exp.Parameter) and isinstance(node.this, exp.Parameter):  # @@VERSION and co.
            name = node.this.name.lower()
            value = self.spid if name == "spid" else _SESSION_VALUES.get(name)
            if value is not None:
                return exp.Literal.number(value) if isinstance(value, int) else exp.Literal.string(value)
        if isinstance(node, exp.Anonymous) and node.name.upper() == "DB_NAME" and not node.expressions:
            return exp.Literal.string(self.database)
        return node

    def _declared_columns(
        self, tree: exp.Expression, width: int
    ) -> list[tuple[SqlType | None, tuple[str, str] | None]]:
        """Per result column: the SQL Server type and (table, column) of the source column it plainly
        refers to, or (None, None) for an expression (COUNT(*) is int)."""
        unknown: list[tuple[SqlType | None, tuple[str, str] | None]] = [(None, None)] * width
        if not isinstance(tree, exp.Select):
            return unknown
        sources, order = self._sources(tree)
        columns: list[tuple[SqlType | None, tuple[str, str] | None]] = []
        for projection in tree.expressions:
            node = projection.this if isinstance(projection, exp.Alias) else projection
            if isinstance(node, exp.Star):
                for key in order:
                    columns.extend(self._all_columns(key))
            elif isinstance(node, exp.Column) and isinstance(node.this, exp.Star):
                key = sources.get(node.table.lower())
                columns.extend(self._all_columns(key) if key else [(None, None)])
            elif isinstance(node, exp.Column):
                keys = [sources[node.table.lower()]] if node.table.lower() in sources else order
                columns.append(self._column(keys, node.name))
            elif isinstance(node, exp.Count) and not node.args.get("big_int"):
                columns.append((tds.INT, None))
            elif isinstance(node, exp.Anonymous) and node.name == _DECIMAL_SUM:
                # SUM of a decimal(p, s) column is decimal(38, s) in SQL Server.
                scale = int(node.expressions[1].name)
                columns.append((SqlType("decimal", precision=38, scale=scale), None))
            else:
                columns.append((None, None))
        return columns if len(columns) == width else unknown

    def _sources(self, tree: exp.Select) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str]]]:
        """The tables a SELECT reads: by alias or name, and in order, as (schema, table) keys."""
        sources: dict[str, tuple[str, str]] = {}
        order: list[tuple[str, str]] = []
        from_ = tree.args.get("from_") or tree.args.get("from")
        joined = [j.this for j in tree.args.get("joins") or []]
        for node in [from_.this if from_ is not None else None, *joined]:
            if isinstance(node, exp.Table) and (found := self._find_table(node.db, node.name)):
                sources[node.alias_or_name.lower()] = found
                order.append(found)
        return sources, order

    def _exact_sums(self, tree: exp.Expression) -> exp.Expression:
        """SUM of a decimal column computed exactly, as SQL Server does (SQLite sums in floating point):
        each value at the column's scale (rounded half away from zero, as when SQL Server stores it), then
        added as a Decimal."""
        if not isinstance(tree, exp.Select):
            return tree
        sources, order = self._sources(tree)

        def exact(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Sum) and isinstance(node.this, exp.Column):
                column = node.this
                keys = [sources[column.table.lower()]] if column.table.lower() in sources else order
                sql_type, _ = self._column(keys, column.name)
                if sql_type is not None and sql_type.name == "decimal":
                    return exp.Anonymous(
                        this=_DECIMAL_SUM, expressions=[column.copy(), exp.Literal.number(sql_type.scale)]
                    )
            return node

        return tree.transform(exact)

    def _all_columns(self, key: tuple[str, str]) -> list[tuple[SqlType | None, tuple[str, str] | None]]:
        table = self._names[key]
        return [(sql_type, (table, name)) for name, sql_type in self.tables[key]]

    def _column(
        self, keys: list[tuple[str, str]], column: str
    ) -> tuple[SqlType | None, tuple[str, str] | None]:
        for key in keys:
            for name, sql_type in self.tables[key]:
                if name.lower() == column.lower():
                    return sql_type, (self._names[key], name)
        return None, None

    def _find_table(self, schema: str, name: str) -> tuple[str, str] | None:
        schemas = [schema.lower()] if schema else ["etl", "information_schema"]
        return next(((s, name.lower()) for s in schemas if (s, name.lower()) in self.tables), None)

    def _explain(self, error: sqlite3.Error) -> SqlFailure:
        text = str(error)
        if text.startswith("no such table: "):
            return SqlFailure(208, f"Invalid object name '{text.removeprefix('no such table: ')}'.")
        if text.startswith("no such column: "):
            return SqlFailure(207, f"Invalid column name '{text.removeprefix('no such column: ')}'.")
        if "syntax error" in text:
            return SqlFailure(102, f"Incorrect syntax ({text}).", 15)
        if "user-defined aggregate" in text:  # tds_decimal_sum met a value that is not a number
            return SqlFailure(8114, "Error converting data type nvarchar to numeric.")
        if "readonly" in text or "read-only" in text:
            return SqlFailure(
                3906, f'Failed to update database "{self.database}" because the database is read-only.'
            )
        return SqlFailure(50000, f"The test server could not run the statement: {text}")
