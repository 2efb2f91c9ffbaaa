"""A batch of source rows as one Arrow record batch in the schema's types, converted a column at a time.

Each column is first converted whole, in Arrow's C++ (`pyarrow`), and accepted only when that conversion
provably means what `values` would have made of every value in it: the column arrived in the expected
type family and every value is within the schema's limits. Anything else — a SQLite column holding a
word among numbers, a float in a money column, a number beyond the limit — sends that one column of that
one batch through `values`, value by value, so it gets exactly the same findings and the same exact values
as it always did. Clean data (and SQL Server enforces its types, so nearly all of it) never has a Python
object made per value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from efimis_etl.errors import Rejected
from efimis_etl.schema.model import Column, Entity, Kind
from efimis_etl.schema.tables import MONEY_SCALE
from efimis_etl.source.connect import value_at
from efimis_etl.source.values import INT_MAX, INT_MIN, MAX_ABS, converter

MONEY = pa.decimal128(19, MONEY_SCALE)
_WIDE_MONEY = pa.decimal128(38, MONEY_SCALE)
ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.TEXT: pa.string(),
    Kind.LONG_TEXT: pa.large_string(),
    Kind.REFERENCE: pa.string(),
    Kind.INTEGER: pa.int64(),
    Kind.ENUM: pa.int64(),
    Kind.BOOLEAN: pa.bool_(),
    Kind.MONEY: MONEY,
    Kind.RATE: MONEY,
    Kind.DATE: pa.date32(),
}
_FINDING_VALUE_LENGTH = 200
_CONVERSION_ERRORS = (
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    pa.ArrowNotImplementedError,
    OverflowError,
    TypeError,
)

Check = Callable[[Any], Any] | None


@cache
def arrow_schema(entity: Entity) -> pa.Schema:
    """The staged rows of an entity as Arrow types, in the entity's column order."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.kind]) for c in entity.all_columns])


@dataclass
class Converted:
    """A batch ready for staging: the rows (Arrow, in `arrow_schema`), the findings met converting them
    (tuples of Rule, Severity, TableName, ImportId, ColumnName, Value, Detail, in row then column order),
    and how many values of each column were rejected (NULL in the batch)."""

    data: pa.RecordBatch
    findings: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)


def convert_batch(
    entity: Entity,
    columns: Sequence[Sequence[Any] | pa.Array | pa.ChunkedArray],
    checks: Sequence[Check],
    store_limit: Decimal | None,
) -> Converted:
    """Convert one batch given as columns (Python sequences, or Arrow arrays from a driver that makes them).

    `checks` are the staging store's per-value checks (a store may refuse a value it cannot hold
    exactly); `store_limit` is the largest money magnitude the store holds, so the columnar path can send
    a column beyond it to those checks."""
    raw_ids = columns[0]
    arrays: list[pa.Array] = []
    located: list[tuple[int, int, tuple[Any, ...]]] = []
    rejected: dict[str, int] = {}
    for position, (column, values, check) in enumerate(
        zip(entity.all_columns, columns, checks, strict=True)
    ):
        array = _columnar(column, values, store_limit)
        if array is None:
            array, problems = _by_value(column, values, check)
            if problems:
                rejected[column.name] = len(problems)
                for row, rule, value, detail in problems:
                    import_id = value_at(raw_ids, row)
                    finding = (
                        rule,
                        "error",
                        entity.name,
                        None if import_id is None else str(import_id),
                        column.name,
                        str(value)[:_FINDING_VALUE_LENGTH],
                        detail,
                    )
                    located.append((row, position, finding))
        arrays.append(array)
    located.sort(key=lambda item: (item[0], item[1]))
    batch = pa.RecordBatch.from_arrays(arrays, schema=arrow_schema(entity))
    return Converted(batch, [finding for _, _, finding in located], rejected)


def _arrow(values: Sequence[Any] | pa.Array | pa.ChunkedArray) -> pa.Array | None:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    try:
        return pa.array(values)  # the type is inferred: a column of mixed types fails here
    except _CONVERSION_ERRORS:
        return None


def _columnar(
    column: Column, values: Sequence[Any] | pa.Array | pa.ChunkedArray, store_limit: Decimal | None
) -> pa.Array | None:
    """The column converted whole, or None when some value needs `values` to decide what it means."""
    array = _arrow(values)
    if array is None:
        return None
    target = ARROW_TYPES[column.kind]
    if pa.types.is_null(array.type) or array.null_count == len(array):
        return pa.nulls(len(array), target)
    try:
        match column.kind:
            case Kind.TEXT | Kind.LONG_TEXT | Kind.REFERENCE:
                ok = pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
                return array.cast(target) if ok else None
            case Kind.INTEGER | Kind.ENUM:
                return _whole(array, INT_MIN, INT_MAX)
            case Kind.BOOLEAN:
                if pa.types.is_boolean(array.type):
                    return array
                whole = _whole(array, 0, 1)
                return None if whole is None else whole.cast(pa.bool_())
            case Kind.MONEY | Kind.RATE:
                return _money(array, column.kind, store_limit)
            case Kind.DATE:
                return _date(array)
    except _CONVERSION_ERRORS:
        return None
    return None


def _whole(array: pa.Array, low: int, high: int) -> pa.Array | None:
    if not pa.types.is_integer(array.type):
        return None  # floats, decimals and booleans are for `values` to judge
    bounds = pc.min_max(array)
    if bounds["min"].as_py() < low or bounds["max"].as_py() > high:
        return None
    return array.cast(pa.int64())


def _money(array: pa.Array, kind: Kind, store_limit: Decimal | None) -> pa.Array | None:
    if pa.types.is_integer(array.type):
        wide = array.cast(pa.decimal128(38, 0)).cast(_WIDE_MONEY)
    elif pa.types.is_decimal(array.type) and array.type.scale <= MONEY_SCALE:
        wide = array.cast(pa.decimal128(38, array.type.scale)).cast(_WIDE_MONEY)
    elif pa.types.is_decimal(array.type):
        # A safe cast refuses to drop a non-zero digit, so 1.23450 passes and 1.23456 goes to `values`.
        wide = array.cast(_WIDE_MONEY)
    else:
        return None  # floats: only `values` knows which are exact to four places
    largest = pc.max(pc.abs(wide)).as_py()
    limit = MAX_ABS[kind]
    if largest >= limit or (store_limit is not None and largest > store_limit):
        return None
    return wide.cast(MONEY)


def _date(array: pa.Array) -> pa.Array | None:
    if pa.types.is_date32(array.type) or pa.types.is_date64(array.type):
        return array.cast(pa.date32())
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        lengths = pc.min_max(pc.utf8_length(array))
        if lengths["min"].as_py() != 10 or lengths["max"].as_py() != 10:
            return None
        dates = array.cast(pa.date32())
        # The round trip proves the spelling was exactly YYYY-MM-DD, the one `values` accepts here.
        if pc.all(pc.equal(dates.cast(pa.string()), array.cast(pa.string()))).as_py() is False:
            return None
        return dates
    return None


def _by_value(
    column: Column, values: Sequence[Any] | pa.Array | pa.ChunkedArray, check: Check
) -> tuple[pa.Array, list[tuple[int, str, Any, str]]]:
    """The column value by value through `values` (and the store's check): the exact values, and the
    rejected ones as (row, rule, value, detail)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        values = values.to_pylist()
    convert = converter(column)
    out: list[Any] = []
    problems: list[tuple[int, str, Any, str]] = []
    for row, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        try:
            converted = convert(value)
            if check is not None:
                check(converted)  # the store may refuse it too
        except Rejected as rejected:
            out.append(None)
            problems.append((row, rejected.rule, value, rejected.detail))
            continue
        out.append(converted)
    return pa.array(out, ARROW_TYPES[column.kind]), problems
