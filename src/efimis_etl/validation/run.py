"""Running the rules on a staging store, and reading the findings back for people.

Every rule runs as set-based SQL inside the staging store, with the tenant's production tables reachable
so that references to objects promoted earlier resolve; nothing is checked row by row in Python, except the
value conversions done while reading (rules `type` and `precision`), which the reader records as it goes.
The rules that look at one row alone read only the rows that one pass per table flags for them
(`rules.ROW_LOCAL`), so that a clean table is read a few times, not once per rule and column.

Findings live in the staging store's `_Finding` table, one row per problem, in the order the rules found
them; the summary kept in an import's status is computed from them once, when validation ends. Every
function here works on any store: it asks the `TenantStores` for a connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, Select, func, select

from efimis_etl.stores.base import FINDING, TenantStores
from efimis_etl.validation.catalogue import ERROR, RULES
from efimis_etl.validation.rules import statements
from efimis_etl.validation.tables import PRODUCTION_PLACEHOLDER


@dataclass(frozen=True)
class FindingFilter:
    rule: str | None = None
    table: str | None = None
    severity: str | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.rule:
            query = query.where(FINDING.c.Rule == self.rule)
        if self.table:
            query = query.where(FINDING.c.TableName == self.table)
        if self.severity:
            query = query.where(FINDING.c.Severity == self.severity)
        return query


@cache
def _compiled(dialect: type[Dialect], flag_rows: bool) -> tuple[str, ...]:
    compiler = dialect()
    return tuple(
        str(statement.compile(dialect=compiler, compile_kwargs={"literal_binds": True}))
        for statement in statements(flag_rows=flag_rows)
    )


@lru_cache(maxsize=256)
def compiled_rules(
    dialect: type[Dialect], production_schema: str, *, flag_rows: bool = True
) -> tuple[str, ...]:
    """The rules as SQL text for one dialect and production schema. Building and compiling ~400 statements
    costs about half a second, far more than running them on a small import, so they are compiled once per
    dialect against a placeholder schema, and each tenant's schema is put in its place. Literals are all our
    own constants. The text is for `exec_driver_sql`: SQLAlchemy has doubled any `%` where the driver's
    parameter style needs it. `flag_rows`: see `rules.statements`."""
    preparer = dialect().identifier_preparer
    placeholder = preparer.quote_schema(PRODUCTION_PLACEHOLDER) + "."
    schema = preparer.quote_schema(production_schema) + "."
    compiled = _compiled(dialect, flag_rows)
    assert all(s.count(PRODUCTION_PLACEHOLDER) == s.count(placeholder) for s in compiled)
    return tuple(statement.replace(placeholder, schema) for statement in compiled)


def run_rules(conn: Connection, production_schema: str, *, flag_rows: bool = True) -> None:
    """Run every rule on the staging store `conn` is open on (its tables unqualified), with the tenant's
    production tables under `production_schema`, in their fixed order (`rules.RUN_ORDER`). The row-local
    rules read only the rows one pass per table flags for them (`rules.ROW_LOCAL`); without `flag_rows`
    they read whole tables, as they did before (slower, with the same findings)."""
    for statement in compiled_rules(type(conn.dialect), production_schema, flag_rows=flag_rows):
        conn.exec_driver_sql(statement)


def validate(stores: TenantStores, request_id: str, tenant: str, *, first: int) -> dict[str, Any]:
    """Run every rule on the request's staging store; return the summary: counts by rule and the first
    `first` findings."""
    with stores.validation_session(request_id, tenant) as (conn, production_schema):
        run_rules(conn, production_schema)
        return summarize(conn, first=first)


def summarize(conn: Connection, *, first: int) -> dict[str, Any]:
    """The validation summary of the findings `conn` sees: counts by rule and the first `first`."""
    by_rule = conn.execute(
        select(FINDING.c.Rule, FINDING.c.Severity, func.count())
        .group_by(FINDING.c.Rule, FINDING.c.Severity)
        .order_by(FINDING.c.Rule)
    ).all()
    rows = conn.execute(select(FINDING).order_by(FINDING.c.Id).limit(first)).mappings().all()
    return {
        "errors": sum(n for _, severity, n in by_rule if severity == ERROR),
        "warnings": sum(n for _, severity, n in by_rule if severity != ERROR),
        "byRule": [
            {"rule": rule, "severity": severity, "count": n, "description": RULES[rule].title}
            for rule, severity, n in by_rule
        ],
        "findings": [finding_view(dict(r)) for r in rows],
    }


def finding_view(row: dict[str, Any]) -> dict[str, Any]:
    """A finding as people read it: where, what value, what is wrong and what to do."""
    rule = RULES[row["Rule"]]
    where = f"{row['TableName']} {row['ImportId']!r}" if row["ImportId"] is not None else row["TableName"]
    column = f".{row['ColumnName']}" if row["ColumnName"] else ""
    shown = f" = {row['Value']!r}" if row["Value"] is not None else ""
    return {
        "rule": rule.code,
        "severity": row["Severity"],
        "table": row["TableName"],
        "importId": row["ImportId"],
        "column": row["ColumnName"],
        "value": row["Value"],
        "message": f"{where}{column}{shown}: {row['Detail'] or rule.title}. {rule.fix}",
    }


def findings_page(
    stores: TenantStores, request_id: str, where: FindingFilter, *, offset: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """(total, one page) of the request's findings."""
    with stores.staging_session(request_id) as conn:
        return _page(conn, where, offset=offset, limit=limit)


def _page(
    conn: Connection, where: FindingFilter, *, offset: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    total = conn.execute(where.apply(select(func.count()).select_from(FINDING))).scalar_one()
    rows = conn.execute(
        where.apply(select(FINDING)).order_by(FINDING.c.Id).offset(offset).limit(limit)
    ).mappings()
    return total, [finding_view(dict(r)) for r in rows]


def iter_findings(
    stores: TenantStores, request_id: str, where: FindingFilter, *, batch: int = 5000
) -> Iterator[dict[str, Any]]:
    """All findings in order, a batch per connection (none is held between batches: there can be
    millions, and a download can be slow)."""
    last = 0
    while True:
        with stores.staging_session(request_id) as conn:
            rows = (
                conn.execute(
                    where.apply(select(FINDING))
                    .where(FINDING.c.Id > last)
                    .order_by(FINDING.c.Id)
                    .limit(batch)
                )
                .mappings()
                .all()
            )
        if not rows:
            return
        for row in rows:
            yield finding_view(dict(row))
        last = rows[-1]["Id"]
