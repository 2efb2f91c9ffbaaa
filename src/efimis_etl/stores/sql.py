"""SQL constructs whose spelling differs per database, each compiled once per dialect (`@compiles`).

Stages build their statements from these and never ask which database they run on; SQLite and PostgreSQL
spell each one so that both give the same answer (binary text order, exact platform-reference matching).
Every pattern is built from our own constants, never from data.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, UnicodeText
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import coercions, roles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from efimis_etl.schema.model import PLATFORM_ID_DIGITS, platform_reference_glob


def platform_reference_regex(*prefixes: str) -> str:
    """An anchored regular expression matching exactly the platform references with these prefixes."""
    alternatives = prefixes[0] if len(prefixes) == 1 else "(" + "|".join(prefixes) + ")"
    return f"^{alternatives}_[0-9a-f]{{{PLATFORM_ID_DIGITS}}}$"


class is_platform_reference(ColumnElement[bool]):  # noqa: N801 - reads as the SQL function it is
    """`value` is a platform reference `prefix_<32 hex digits>` with one of `prefixes`."""

    __visit_name__ = "is_platform_reference"
    type = Boolean()
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's declaration of what makes the cache key
        ("value", InternalTraversal.dp_clauseelement),
        ("prefixes", InternalTraversal.dp_string_list),
    ]

    def __init__(self, value: Any, *prefixes: str) -> None:
        assert prefixes and all(p.isalpha() and p.islower() for p in prefixes)
        self.value = coercions.expect(roles.ExpressionElementRole, value)
        self.prefixes = tuple(prefixes)


@compiles(is_platform_reference, "sqlite")
def _is_platform_reference_sqlite(element: is_platform_reference, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.value, **kw)
    return "(" + " OR ".join(f"{value} GLOB '{platform_reference_glob(p)}'" for p in element.prefixes) + ")"


@compiles(is_platform_reference, "postgresql")
def _is_platform_reference_postgresql(
    element: is_platform_reference, compiler: SQLCompiler, **kw: Any
) -> str:
    # One regular expression with alternatives: a regex per prefix costs a second per 100,000 rows.
    value = compiler.process(element.value, **kw)
    return f"(({value}) COLLATE \"C\" ~ '{platform_reference_regex(*element.prefixes)}')"


def _spelled(construct: type[FunctionElement[Any]], **templates: str) -> None:
    """Compile `construct` per dialect by a template; `{}` is where its arguments go."""
    for dialect, template in templates.items():

        def compile_(element: FunctionElement[Any], compiler: SQLCompiler, template: str = template, **kw: Any) -> str:
            return template.format(compiler.process(element.clauses, **kw))

        compiles(construct, dialect)(compile_)


class platform_id(FunctionElement[str]):  # noqa: N801
    """The platform id of a platform reference: its last 32 characters."""

    type = UnicodeText()
    inherit_cache = True


class new_platform_id(FunctionElement[str]):  # noqa: N801
    """32 random lowercase hex digits: a new object's platform id, which it keeps for life."""

    type = UnicodeText()
    inherit_cache = True


class binary_order(FunctionElement[Any]):  # noqa: N801
    """An ordering key in binary (code point) order, SQLite's default order of text, so that listings
    and finding ids come out the same on every backend."""

    inherit_cache = True


_spelled(platform_id, sqlite=f"substr({{}}, -{PLATFORM_ID_DIGITS})", postgresql=f"right({{}}, {PLATFORM_ID_DIGITS})")
_spelled(
    new_platform_id,
    sqlite="lower(hex(randomblob(16)))",
    postgresql="replace(CAST(gen_random_uuid() AS TEXT), '-', '')",
)
_spelled(binary_order, sqlite="{}", postgresql='({}) COLLATE "C"')
