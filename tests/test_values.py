"""Source values become exact Python values, or a finding: never a silently altered number or date."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from efimis_etl.errors import Rejected
from efimis_etl.schema.model import ENTITY_BY_NAME
from efimis_etl.source.values import converter

AMOUNT = converter(ENTITY_BY_NAME["WorkItem"].column("Amount"))
MINUTES = converter(ENTITY_BY_NAME["WorkItem"].column("Minutes"))
WORK_DATE = converter(ENTITY_BY_NAME["WorkItem"].column("WorkDate"))
BILLABLE = converter(ENTITY_BY_NAME["WorkItem"].column("IsBillable"))

money = st.decimals(
    min_value=Decimal("-999999999999999.9999"), max_value=Decimal("999999999999999.9999"), places=4
)


@given(money)
def test_decimal_money_passes_through_exactly(value: Decimal) -> None:
    assert AMOUNT(value) == value


@given(money)
def test_money_as_text_is_exact(value: Decimal) -> None:
    assert AMOUNT(str(value)) == value


@given(st.decimals(min_value=Decimal("-99999999999.99"), max_value=Decimal("99999999999.99"), places=2))
def test_money_stored_as_float_by_sqlite_comes_back_to_the_cent(value: Decimal) -> None:
    # SQLite's NUMERIC affinity turns '200.38' into a REAL; up to 15 significant digits survive exactly.
    assert AMOUNT(float(value)) == value


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (Decimal("1.23456"), "precision"),
        ("450.12345", "precision"),
        (Decimal("1E+15"), "precision"),
        ("12,50", "type"),
        ("NaN", "type"),
        (True, "type"),
    ],
)
def test_money_that_does_not_fit_is_rejected(value: object, rule: str) -> None:
    with pytest.raises(Rejected) as raised:
        AMOUNT(value)
    assert raised.value.rule == rule


def test_trailing_zeros_beyond_four_places_are_not_a_precision_problem() -> None:
    assert AMOUNT(Decimal("1.234500")) == Decimal("1.2345")


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_whole_numbers_in_int_range_pass(value: int) -> None:
    assert MINUTES(value) == value


@pytest.mark.parametrize("value", [2**31, "ninety", 1.5, True])
def test_non_int_values_are_rejected(value: object) -> None:
    with pytest.raises(Rejected):
        MINUTES(value)


@given(st.dates())
def test_dates_pass_as_dates_and_iso_text(value: dt.date) -> None:
    assert WORK_DATE(value) == value
    if value.year >= 1000:
        assert WORK_DATE(value.isoformat()) == value


@pytest.mark.parametrize("value", ["31/02/2024", "2024-02-30", dt.datetime(2024, 1, 1, 9, 30), 20240101])
def test_non_dates_are_rejected(value: object) -> None:
    with pytest.raises(Rejected):
        WORK_DATE(value)


def test_booleans_accept_bit_values_only() -> None:
    assert (BILLABLE(1), BILLABLE(0), BILLABLE(True)) == (True, False, True)
    with pytest.raises(Rejected):
        BILLABLE(2)
