"""The columnar conversion of a batch means exactly what converting it value by value means.

`source.columnar` converts a column whole in Arrow when it can prove the result equals what `values` makes
of each value, and otherwise sends that column of that batch through `values`. These properties compare
the two on the same input, for the Python values SQLite and PostgreSQL drivers return (clean columns,
and columns mixing numbers, words, floats, bytes) and for the Arrow arrays Microsoft's driver returns:
the same staged values, the same findings in the same order, the same rejected counts.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efimis_etl.digest import import_id_digest, text_hashes
from efimis_etl.errors import Rejected
from efimis_etl.schema.model import ENTITY_BY_NAME
from efimis_etl.source.columnar import ARROW_TYPES, _by_value, convert_batch
from efimis_etl.stores.sql import SQLITE_MONEY_LIMIT
from efimis_etl.stores.sqlite import SqliteStaging

WORK_ITEM = ENTITY_BY_NAME["WorkItem"]
ROWS = 12

_messy = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-2, max_value=2),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.1, 12.5, 200.38, 1e-5, 123.45678, 1.0]),
    st.text(max_size=6),
    st.sampled_from(["2024-02-29", "2023-02-30", "2024-1-01", "20240101", "2024-W01-1", "12.5", "x"]),
    st.binary(max_size=3),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**16), max_value=10**16),
)
_clean = st.sampled_from(
    [
        st.integers(min_value=-(2**31), max_value=2**31 - 1),
        st.integers(min_value=0, max_value=1),
        st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1),
        st.integers(min_value=922337203685477, max_value=10**15),  # around the embedded store's limit
        st.text(max_size=8),
        st.dates(min_value=dt.date(1900, 1, 1)).map(dt.date.isoformat),
        st.dates(min_value=dt.date(1900, 1, 1)),
        st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9),
        st.booleans(),
    ]
)


@st.composite
def _column(draw: st.DrawFn) -> list[Any]:
    """A column as a driver returns it: one type throughout (often NULLs too), or anything at all."""
    if draw(st.booleans()):
        values = draw(st.lists(draw(_clean), min_size=ROWS, max_size=ROWS))
    else:
        values = draw(st.lists(_messy, min_size=ROWS, max_size=ROWS))
    if draw(st.booleans()):
        values[draw(st.integers(0, ROWS - 1))] = None
    return values


def _expected(columns: list[list[Any]], checks: list[Any]) -> tuple[list[pa.Array], list[tuple[Any, ...]]]:
    arrays, located = [], []
    for position, (column, values, check) in enumerate(
        zip(WORK_ITEM.all_columns, columns, checks, strict=True)
    ):
        array, problems = _by_value(column, values, check)
        arrays.append(array)
        for row, rule, value, detail in problems:
            import_id = None if columns[0][row] is None else str(columns[0][row])
            finding = (rule, "error", "WorkItem", import_id, column.name, str(value)[:200], detail)
            located.append(((row, position), finding))
    return arrays, [finding for _, finding in sorted(located, key=lambda item: item[0])]


@pytest.mark.parametrize("store", ["postgresql", "sqlite"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_batch_converted_by_column_equals_it_converted_value_by_value(
    store: str, data: st.DataObject
) -> None:
    columns = [data.draw(_column()) for _ in WORK_ITEM.all_columns]
    checks: list[Any] = (
        SqliteStaging.checks(WORK_ITEM) if store == "sqlite" else [None] * len(WORK_ITEM.all_columns)
    )
    limit = SQLITE_MONEY_LIMIT if store == "sqlite" else None
    converted = convert_batch(WORK_ITEM, columns, checks, limit)
    arrays, findings = _expected(columns, checks)
    for column, got, want in zip(WORK_ITEM.all_columns, converted.data.columns, arrays, strict=True):
        assert got.equals(want), (column.name, got, want)
    assert converted.findings == findings
    assert sum(converted.rejected.values()) == len(findings)


_ARROW_COLUMNS: dict[str, list[pa.Array]] = {
    # What mssql-python's Arrow fetch gives for the schema's types, and for compatible wider ones.
    "text": [pa.array(["a", None, "é"], pa.large_string()), pa.array([1, 2, None], pa.int32())],
    "int": [
        pa.array([1, None, -5], pa.int32()),
        pa.array([2**31, 0, None], pa.int64()),
        pa.array([1, 0, 1], pa.uint8()),
        pa.array([True, False, None]),
    ],
    "money": [
        pa.array([Decimal("1.2300"), None, Decimal("-0.0001")], pa.decimal128(19, 4)),
        pa.array([Decimal("1.230000"), Decimal("2.000001"), None], pa.decimal128(28, 6)),
        pa.array([Decimal("1.5"), Decimal("999999999999999.9"), None], pa.decimal128(20, 1)),
        pa.array([1.5, 0.1, None], pa.float64()),
    ],
    "date": [
        pa.array([dt.date(2024, 2, 29), None, dt.date(1900, 1, 1)], pa.date32()),
        pa.array([dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, 9, 30), None], pa.timestamp("us")),
    ],
}
_KIND_GROUP = {
    "TEXT": "text",
    "LONG_TEXT": "text",
    "REFERENCE": "text",
    "INTEGER": "int",
    "ENUM": "int",
    "BOOLEAN": "int",
    "MONEY": "money",
    "RATE": "money",
    "DATE": "date",
}


@pytest.mark.parametrize("store", ["postgresql", "sqlite"])
def test_arrow_columns_from_the_driver_convert_as_their_values_would(store: str) -> None:
    checks: list[Any] = (
        SqliteStaging.checks(WORK_ITEM) if store == "sqlite" else [None] * len(WORK_ITEM.all_columns)
    )
    limit = SQLITE_MONEY_LIMIT if store == "sqlite" else None
    groups = {c.name: _KIND_GROUP[c.kind.name] for c in WORK_ITEM.all_columns}
    for variant in range(4):
        columns = [pa.array(["WI-1", "WI-2", None], pa.large_string())]
        for column in WORK_ITEM.all_columns[1:]:
            choices = _ARROW_COLUMNS[groups[column.name]]
            columns.append(choices[variant % len(choices)])
        converted = convert_batch(WORK_ITEM, columns, checks, limit)
        arrays, findings = _expected([c.to_pylist() for c in columns], checks)
        for column, got, want in zip(WORK_ITEM.all_columns, converted.data.columns, arrays, strict=True):
            assert got.type == ARROW_TYPES[column.kind]
            assert got.equals(want), (variant, column.name, got, want)
        assert converted.findings == findings


def test_the_embedded_store_refuses_money_beyond_what_it_holds_exactly_as_a_finding() -> None:
    beyond = 922337203685478  # > SQLITE_MONEY_LIMIT, < the schema's 10**15
    columns: list[Any] = [["WI-1", "WI-2"]] + [[None, None] for _ in WORK_ITEM.all_columns[1:]]
    amount = [c.name for c in WORK_ITEM.all_columns].index("Amount")
    columns[amount] = [beyond, 5]
    converted = convert_batch(WORK_ITEM, columns, SqliteStaging.checks(WORK_ITEM), SQLITE_MONEY_LIMIT)
    assert converted.data.column(amount).to_pylist() == [None, Decimal("5.0000")]
    [finding] = converted.findings
    assert finding[:6] == ("precision", "error", "WorkItem", "WI-1", "Amount", str(beyond))
    with pytest.raises(Rejected):
        SqliteStaging.checks(WORK_ITEM)[amount](Decimal(beyond))
    on_postgresql = convert_batch(WORK_ITEM, columns, [None] * len(WORK_ITEM.all_columns), None)
    assert on_postgresql.data.column(amount).to_pylist() == [Decimal(beyond), Decimal(5)]
    assert on_postgresql.findings == []


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(max_size=40) | st.text(alphabet="aé漢\n", max_size=30), min_size=1, max_size=60))
def test_the_digest_hash_is_postgresql_s_own_hashtextextended(pg_url: str, texts: list[str]) -> None:
    texts = [t.replace("\x00", "") for t in texts]  # PostgreSQL text holds no NUL (staging replaces it)
    with psycopg.connect(pg_url.replace("+psycopg", "")) as connection:
        expected = [
            row[0] % 2**64
            for row in connection.execute(
                "SELECT hashtextextended(t, 0) FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i",
                (texts,),
            )
        ]
    assert [int(h) for h in text_hashes(pa.array(texts))] == expected
    assert import_id_digest(pa.array([*texts, None])) == sum(expected) % 2**64
