"""Turning source values into the exact Python values the schema promises, or saying why not.

SQL Server enforces the declared types, so its values pass straight through; a SQLite source (or a
SQL Server column of a compatible but wider type) can hold anything, and such a value becomes a finding
and a NULL in staging rather than a guess. Money never passes through a float unless the source itself
stored a float, and then only values exactly representable with four decimals are accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from efimis_etl.errors import Rejected
from efimis_etl.schema.model import Column, Kind
from efimis_etl.schema.tables import MONEY_QUANTUM, MONEY_SCALE

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
MAX_ABS = {Kind.MONEY: Decimal(10) ** 15, Kind.RATE: Decimal(10) ** 5}


Converter = Callable[[object], object]


def _text(value: object) -> object:
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise Rejected("type", "expected text")


def _integer(value: object) -> object:
    if isinstance(value, bool):
        raise Rejected("type", "expected a whole number")
    if isinstance(value, float | Decimal):
        try:
            whole = int(value)
        except (ValueError, OverflowError):  # NaN, infinity: a SQLite REAL can hold them
            raise Rejected("type", "expected a whole number") from None
        if value == whole:
            value = whole
    if not isinstance(value, int):
        raise Rejected("type", "expected a whole number")
    if not INT_MIN <= value <= INT_MAX:
        raise Rejected("type", f"whole number out of range {INT_MIN}..{INT_MAX}")
    return value


def _boolean(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise Rejected("type", "expected 0 or 1")


def _decimal(kind: Kind) -> Converter:
    limit = MAX_ABS[kind]

    def convert(value: object) -> object:
        if isinstance(value, bool):
            raise Rejected("type", "expected a decimal number")
        try:
            if isinstance(value, float):
                # repr() is the shortest string that round-trips, so 200.38 stays 200.38.
                number = Decimal(repr(value))
            elif isinstance(value, Decimal | int | str):
                number = Decimal(value)
            else:
                raise Rejected("type", "expected a decimal number")
        except InvalidOperation:
            raise Rejected("type", "expected a decimal number") from None
        if not number.is_finite():
            raise Rejected("type", "expected a finite decimal number")
        if number.as_tuple().exponent < -MONEY_SCALE and number != round(number, MONEY_SCALE):  # type: ignore[operator]
            raise Rejected("precision", f"more than {MONEY_SCALE} decimal places")
        if abs(number) >= limit:
            raise Rejected("precision", f"too large: must be less than {limit:,} in magnitude")
        return number.quantize(MONEY_QUANTUM)

    return convert


def _date(value: object) -> object:
    if isinstance(value, dt.datetime):
        if value.time() != dt.time(0):
            raise Rejected("type", "expected a date without a time of day")
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise Rejected("type", "expected a date (YYYY-MM-DD)")


def converter(column: Column) -> Converter:
    match column.kind:
        case Kind.TEXT | Kind.LONG_TEXT | Kind.REFERENCE:
            return _text
        case Kind.INTEGER | Kind.ENUM:
            return _integer
        case Kind.BOOLEAN:
            return _boolean
        case Kind.MONEY | Kind.RATE:
            return _decimal(column.kind)
        case Kind.DATE:
            return _date
