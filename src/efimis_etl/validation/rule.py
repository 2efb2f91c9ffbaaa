"""What a validation rule is: its catalogue entry and the function that finds its violations, declared
together, and the one builder that writes what a rule finds into `_Finding`.

A rule is a decorated function: the decorator gives its code and severity, the docstring its catalogue
text (what the rule finds; a blank line; what the user should do), exactly as the schema reference and
every finding show it. A rule finds violations table by table (`table_rule`) or column by column
(`column_rule`): each `Found` it yields becomes one `INSERT INTO _Finding … SELECT …`. Rules the reader
applies while converting values (`reader_rule`) are declared the same way, with no body.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    Alias,
    BindParameter,
    ColumnElement,
    Insert,
    Null,
    Select,
    Table,
    UnicodeText,
    insert,
    literal,
    null,
    select,
)

from efimis_etl.schema.model import Column
from efimis_etl.stores.base import FINDING, FINDING_COLUMNS
from efimis_etl.stores.sql import binary_order

# What a rule finds violations on: a staging table, or (for a row-local rule) the copy of the rows of it
# that might have some, aliased to the staging table's name (`rules.flagged`).
Rows = Table | Alias

Severity = Literal["error", "warning"]
ERROR: Severity = "error"  # blocks promotion
WARNING: Severity = "warning"  # reported; does not block


@dataclass(frozen=True)
class Found:
    """One statement's worth of violations on one table: `rows` selects, for each offending row, its
    ImportId, the value to show (text, or NULL) and what is wrong (text)."""

    column: str | None
    rows: Select[Any]


def found(
    table: Rows,
    column: str | None,
    value: ColumnElement[Any] | None,
    detail: ColumnElement[str] | str,
    *where: ColumnElement[bool],
) -> Found:
    """The rows of `table` for which everything in `where` holds, shown as `value` and `detail`."""
    shown = value if value is not None else null()
    said = _text(detail) if isinstance(detail, str) else detail
    return Found(column, select(table.c.ImportId, shown, said).where(*where))


# What a rule runs on each staging table (and, for a column rule, each of its columns).
Finder = Callable[[Rows, Column | None], Iterable[Found]]


@dataclass(frozen=True)
class Rule:
    code: str
    severity: Severity
    title: str  # what the rule finds
    fix: str  # what the user should do
    finds: Finder | None = None  # None: the reader reports it while converting values
    per_column: bool = False

    def statements(self, table: Rows, column: Column | None = None) -> Iterator[Insert]:
        """This rule's statements for one staging table (a column rule: one column of it)."""
        if self.finds is not None:
            for violations in self.finds(table, column):
                yield findings(self, table.name, violations)


def _text(text: str) -> ColumnElement[str]:
    # Typed, since names taken from SQLAlchemy's tables are a subclass of str it does not recognise.
    return literal(str(text), UnicodeText())


def findings(rule: Rule, table: str, violations: Found) -> Insert:
    """`INSERT INTO _Finding SELECT …` for what `violations` selects, ordered by ImportId, value and detail in
    binary order, nulls first: finding ids then come out the same on every backend."""
    import_id, value, detail = violations.rows.selected_columns
    # Constants order nothing (and PostgreSQL refuses a bare constant in ORDER BY).
    keys = [
        binary_order(c).nulls_first()
        for c in (import_id, value, detail)
        if not isinstance(c, BindParameter | Null)
    ]
    source = violations.rows.with_only_columns(
        _text(rule.code),
        _text(rule.severity),
        _text(table),
        import_id,
        _text(violations.column) if violations.column else null(),
        value,
        detail,
    ).order_by(*keys)
    return insert(FINDING).from_select(FINDING_COLUMNS, source)


def _entry(
    code: str,
    severity: Severity,
    declaration: Callable[..., Any],
    finds: Finder | None = None,
    *,
    per_column: bool = False,
) -> Rule:
    """The rule a function declares; its docstring is the catalogue text, each paragraph one line."""
    paragraphs = [" ".join(p.split()) for p in (inspect.getdoc(declaration) or "").split("\n\n")]
    if len(paragraphs) != 2 or not all(paragraphs):
        # Also what Python's -OO, which strips docstrings, would meet: the catalogue cannot do without them.
        raise ValueError(f"rule {code}: its docstring must be what it finds, a blank line, and what to do")
    title, fix = paragraphs
    return Rule(code, severity, title, fix, finds, per_column)


def column_rule(code: str, severity: Severity) -> Callable[[Callable[[Rows, Column], Iterable[Found]]], Rule]:
    """Declare a rule found column by column: the decorated function gets each staging table and each of
    its columns (the schema's description of it), and yields what it finds there."""

    def declare(finds: Callable[[Rows, Column], Iterable[Found]]) -> Rule:
        def finder(table: Rows, column: Column | None) -> Iterable[Found]:
            assert column is not None, f"{code} is found column by column"
            return finds(table, column)

        return _entry(code, severity, finds, finder, per_column=True)

    return declare


def table_rule(
    code: str, severity: Severity, *, on: Collection[str] = ()
) -> Callable[[Callable[[Rows], Iterable[Found]]], Rule]:
    """Declare a rule found table by table: the decorated function gets each staging table (only those
    named in `on`, when given) and yields what it finds there."""

    def declare(finds: Callable[[Rows], Iterable[Found]]) -> Rule:
        def finder(table: Rows, _column: Column | None) -> Iterable[Found]:
            return finds(table) if not on or table.name in on else ()

        return _entry(code, severity, finds, finder)

    return declare


def reader_rule(code: str, severity: Severity) -> Callable[[Callable[[], None]], Rule]:
    """Declare a rule the reader applies while it reads (a value's type, the source's columns): no SQL."""

    def declare(declaration: Callable[[], None]) -> Rule:
        return _entry(code, severity, declaration)

    return declare
