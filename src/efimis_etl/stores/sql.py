"""SQL constructs whose spelling differs per database, each compiled once per dialect (`@compiles`).

Stages build their statements from these and never ask which database they run on; SQLite and PostgreSQL
spell each one so that both give the same answer (binary text order, exact pattern matching, money shown
to the last digit). Every pattern is built from our own constants, never from data.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ColumnElement, String, UnicodeText, and_, func, literal, not_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import coercions, roles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from efimis_etl.schema.model import ENTITY_BY_PREFIX, PLATFORM_ID_DIGITS, platform_reference_glob
from efimis_etl.schema.tables import MONEY_SCALE, ExactDecimal


def platform_reference_regex(*prefixes: str) -> str:
    """An anchored regular expression matching exactly the platform references with these prefixes."""
    alternatives = prefixes[0] if len(prefixes) == 1 else "(" + "|".join(prefixes) + ")"
    return f"^{alternatives}_[0-9a-f]{{{PLATFORM_ID_DIGITS}}}$"


@dataclass(frozen=True)
class Pattern:
    """A set of texts, spelled for SQLite as GLOB patterns (a text matching any of them is in the set) and
    for PostgreSQL as one regular expression matching the same texts, compared in binary order (`C`)."""

    globs: tuple[str, ...]
    regex: str


class matches(ColumnElement[bool]):  # noqa: N801 - reads as the SQL function it is
    """`value` is one of the texts of `pattern`."""

    __visit_name__ = "matches"
    type = Boolean()
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's declaration of what makes the cache key
        ("value", InternalTraversal.dp_clauseelement),
        ("pattern", InternalTraversal.dp_plain_obj),
    ]

    def __init__(self, value: Any, pattern: Pattern) -> None:
        self.value = coercions.expect(roles.ExpressionElementRole, value)
        self.pattern = pattern


@compiles(matches, "sqlite")
def _matches_sqlite(element: matches, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.value, **kw)
    globs = (compiler.render_literal_value(glob, String()) for glob in element.pattern.globs)
    return "(" + " OR ".join(f"{value} GLOB {glob}" for glob in globs) + ")"


@compiles(matches, "postgresql")
def _matches_postgresql(element: matches, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.value, **kw)
    return f'(({value}) COLLATE "C" ~ {compiler.render_literal_value(element.pattern.regex, String())})'


def is_platform_reference(value: Any, *prefixes: str) -> ColumnElement[bool]:
    """`value` is a platform reference `prefix_<32 hex digits>` with one of `prefixes`."""
    assert prefixes and all(p.isalpha() and p.islower() for p in prefixes)
    # One regular expression with alternatives: a regex per prefix costs a second per 100,000 rows.
    globs = tuple(platform_reference_glob(p) for p in prefixes)
    return matches(value, Pattern(globs, platform_reference_regex(*prefixes)))


# An e-mail address: something, an @, something, a dot, something; and neither a separator that joins
# several addresses nor a second @.
_EMAIL_SHAPE = Pattern(("?*@?*.?*",), "^.+@.+[.].+$")
_SEPARATOR = Pattern(("*[ ,;<>()]*",), "[ ,;<>()]")
_TWO_ATS = Pattern(("*@*@*",), "@.*@")


def is_email_address(value: Any) -> ColumnElement[bool]:
    """`value` reads as one address name@domain.tld."""
    return and_(
        matches(value, _EMAIL_SHAPE), not_(matches(value, _SEPARATOR)), not_(matches(value, _TWO_ATS))
    )


def _capitals(count: int) -> Pattern:
    return Pattern(("[A-Z]" * count,), f"^[A-Z]{{{count}}}$")


def is_currency_code(value: Any) -> ColumnElement[bool]:
    """`value` has the shape of an ISO 4217 currency code: three capital letters A-Z."""
    return matches(value, _capitals(3))


def is_country_code(value: Any) -> ColumnElement[bool]:
    """`value` has the shape of an ISO 3166 country code: two capital letters A-Z."""
    return matches(value, _capitals(2))


def _spelled(construct: type[FunctionElement[Any]], **templates: str) -> None:
    """Compile `construct` per dialect by a template; `{}` is where its arguments go (`{0}` where a template
    uses its one argument more than once)."""
    for dialect, template in templates.items():

        def compile_(
            element: FunctionElement[Any], compiler: SQLCompiler, template: str = template, **kw: Any
        ) -> str:
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


_spelled(
    platform_id,
    sqlite=f"substr({{}}, -{PLATFORM_ID_DIGITS})",
    postgresql=f"right({{}}, {PLATFORM_ID_DIGITS})",
)
_spelled(
    new_platform_id,
    sqlite="lower(hex(randomblob(16)))",
    postgresql="replace(CAST(gen_random_uuid() AS TEXT), '-', '')",
)
_spelled(binary_order, sqlite="{}", postgresql='({}) COLLATE "C"')


class money_text(FunctionElement[str]):  # noqa: N801
    """A money value as exact decimal text with four places (`-12.3400`), truncated toward zero past the
    fourth: SQLite keeps money as integer ten-thousandths, PostgreSQL as NUMERIC."""

    type = UnicodeText()
    inherit_cache = True


_SCALE = 10**MONEY_SCALE
_spelled(
    money_text,
    sqlite=(
        f"(CASE WHEN ({{0}}) < 0 THEN '-' ELSE '' END || (abs({{0}}) / {_SCALE}) || '.' || "
        f"substr('{'0' * MONEY_SCALE}' || (abs({{0}}) % {_SCALE}), -{MONEY_SCALE}))"
    ),
    postgresql=f"(trunc(({{0}})::numeric, {MONEY_SCALE})::text)",
)


def money_constant(value: Decimal) -> ColumnElement[Decimal]:
    """A money constant as the store keeps it (on SQLite in ten-thousandths), rendered by the stores' own
    money type so that the encoding is written once."""
    return literal(value, ExactDecimal())


INT64_MAX = 2**63 - 1
SQLITE_MONEY_LIMIT = Decimal(INT64_MAX).scaleb(-MONEY_SCALE)  # 922337203685477.5807: the most SQLite keeps
EXACT_SUM = "efimis_exact_sum"  # the SQLite aggregate `stores.sqlite` registers on every connection


class exact_sum(FunctionElement[Any]):  # noqa: N801
    """The sum of a money column (also as a window function), never an error: SQLite's `sum()` of the
    integer ten-thousandths it stores raises on overflow, so there a Python aggregate adds exactly and
    gives a REAL only for a total beyond 64 bits (which then still compares correctly with any stored
    value); PostgreSQL sums NUMERIC exactly."""

    inherit_cache = True


class sum_out_of_range(FunctionElement[bool]):  # noqa: N801
    """Aggregate: the absolute values of a money column add up to more than the store sums exactly (then
    some sum of them may be inexact). Never on PostgreSQL."""

    type = Boolean()
    inherit_cache = True


_spelled(exact_sum, sqlite=f"{EXACT_SUM}({{}})", postgresql="sum({})")
_spelled(
    sum_out_of_range,
    sqlite=f"(coalesce({EXACT_SUM}(abs({{0}})), 0) > {INT64_MAX})",
    postgresql="(count({0}) < 0)",  # an aggregate that is never true
)


class ExactSum:
    """SQLite's `efimis_exact_sum`: an aggregate and window function adding Python integers exactly."""

    def __init__(self) -> None:
        self.total: int | None = None

    def step(self, value: int | None) -> None:
        if value is not None:
            self.total = (self.total or 0) + value

    def inverse(self, value: int | None) -> None:
        if value is not None and self.total is not None:
            self.total -= value

    def value(self) -> int | float | None:
        if self.total is None or -INT64_MAX - 1 <= self.total <= INT64_MAX:
            return self.total
        return float(self.total)  # beyond any stored value, so comparisons with one still come out right

    finalize = value


# The shortest and longest platform reference: a prefix, `_` and the id.
_SHORTEST, _LONGEST = (
    length + 1 + PLATFORM_ID_DIGITS
    for length in (min(map(len, ENTITY_BY_PREFIX)), max(map(len, ENTITY_BY_PREFIX)))
)


class could_be_platform_reference(FunctionElement[bool]):  # noqa: N801
    """True for every platform reference, whatever its prefix (and for some other texts), false for most
    ImportIds: its length is a platform reference's, and the `_` before the id is where it would be. A cheap
    test to put before `is_platform_reference`, which matches the pattern of every prefix (a GLOB per prefix
    on SQLite, a regular expression on PostgreSQL). PostgreSQL reads a text's length in bytes from its
    header; a platform reference is ASCII, so its length in bytes is its length."""

    type = Boolean()
    inherit_cache = True


_spelled(
    could_be_platform_reference,
    sqlite=(
        f"(length({{0}}) BETWEEN {_SHORTEST} AND {_LONGEST} "
        f"AND substr({{0}}, -{PLATFORM_ID_DIGITS + 1}, 1) = '_')"
    ),
    postgresql=(
        f"(octet_length({{0}}) BETWEEN {_SHORTEST} AND {_LONGEST} "
        f"AND substr({{0}}, length({{0}}) - {PLATFORM_ID_DIGITS}, 1) = '_')"
    ),
)


# A float total of non-negative amounts is within n × 2⁻⁵³ of the exact one: below this, under 2.4 % short
# of the limit, the exact total is within it for any table of fewer than 10¹⁴ rows.
_SURELY_IN_RANGE = 9.0e18


class sum_may_be_out_of_range(ColumnElement[bool]):  # noqa: N801
    """The absolute values of a money column (of a table) might add up past what the store sums exactly:
    true whenever `sum_out_of_range` is, so that it can stand before it. That aggregate is a Python call per
    row on SQLite, where this compares SQLite's own float total; never true on PostgreSQL, which then plans
    no scan at all for what follows it in an AND."""

    __visit_name__ = "sum_may_be_out_of_range"
    type = Boolean()
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's declaration of what makes the cache key
        ("column", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column


@compiles(sum_may_be_out_of_range, "sqlite")
def _sum_may_be_out_of_range_sqlite(
    element: sum_may_be_out_of_range, compiler: SQLCompiler, **kw: Any
) -> str:
    total = select(func.total(func.abs(element.column))).scalar_subquery()
    return f"({compiler.process(total, **kw)} >= {_SURELY_IN_RANGE!r})"


@compiles(sum_may_be_out_of_range, "postgresql")
def _sum_may_be_out_of_range_postgresql(
    element: sum_may_be_out_of_range, compiler: SQLCompiler, **kw: Any
) -> str:
    return "false"


def is_reference(value: ColumnElement[Any], *prefixes: str) -> ColumnElement[bool]:
    """`value` is a platform reference with one of `prefixes`: the cheap test first, since most values are
    ImportIds, and matching the patterns of every prefix on each is what the reference rules spent most of
    their time on."""
    return and_(could_be_platform_reference(value), is_platform_reference(value, *prefixes))
