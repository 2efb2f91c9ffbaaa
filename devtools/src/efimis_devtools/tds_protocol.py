"""Encoding and decoding the parts of MS-TDS 7.4 that the test SQL Server (`tds_server`) speaks.

Test-and-demo code, not a database server: packets, PRELOGIN, LOGIN7, the tokens of a login reply and of
a result set, and the wire form of the column types the Efimis schema uses. Every value encoder either
returns the exact bytes for the column's type or raises `ConversionFailed` carrying the error SQL Server
itself would report, because a SQL Server column could never hold that value.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import struct
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

# Packet types (MS-TDS 2.2.3.1.1)
SQL_BATCH = 0x01
RPC = 0x03
TABULAR_RESULT = 0x04
ATTENTION = 0x06
TRANSACTION_MANAGER = 0x0E
LOGIN7 = 0x10
PRELOGIN = 0x12

STATUS_EOM = 0x01
HEADER = struct.Struct(">BBHHBB")  # type, status, length, SPID, packet id, window

# PRELOGIN options and ENCRYPTION values
PL_VERSION, PL_ENCRYPTION, PL_INSTOPT, PL_THREADID, PL_MARS, PL_TRACEID, PL_FEDAUTH = range(7)
PL_TERMINATOR = 0xFF
ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_NOT_SUP, ENCRYPT_REQ = 0, 1, 2, 3

# DONE status bits and the SELECT command number
DONE_FINAL, DONE_MORE, DONE_ERROR, DONE_COUNT, DONE_ATTN = 0x00, 0x01, 0x02, 0x10, 0x20
CMD_SELECT = 0xC1

TDS_74 = 0x74000004
SERVER_VERSION = (16, 0, 4000)  # reported as SQL Server 2022
SERVER_NAME = "EFIMIS-TEST-TDS"
# SQL_Latin1_General_CP1_CI_AS: LCID 0x0409 with IgnoreCase|IgnoreKana|IgnoreWidth, sort id 52.
COLLATION = bytes([0x09, 0x04, 0xD0, 0x00, 0x34])


class ProtocolError(Exception):
    """The client sent something this server cannot read."""


class ConversionFailed(Exception):
    """A stored value the column's SQL Server type cannot hold; carries SQL Server's error for it."""

    def __init__(self, number: int, message: str, *, truncated: str | None = None) -> None:
        super().__init__(message)
        self.number = number
        self.message = message
        self.truncated = truncated  # for 2628 (string too long): what the column could have held


# --------------------------------------------------------------------------------------------------
# Primitive writers


def b_varchar(text: str) -> bytes:
    data = text[:255].encode("utf-16-le")
    return bytes([len(data) // 2]) + data


def us_varchar(text: str) -> bytes:
    data = text[:32767].encode("utf-16-le")
    return struct.pack("<H", len(data) // 2) + data


def _b_varbyte(data: bytes) -> bytes:
    return bytes([len(data)]) + data


def _token(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + struct.pack("<H", len(body)) + body


# --------------------------------------------------------------------------------------------------
# PRELOGIN


def parse_prelogin(payload: bytes) -> dict[int, bytes]:
    options: dict[int, bytes] = {}
    pos = 0
    while pos < len(payload) and payload[pos] != PL_TERMINATOR:
        if pos + 5 > len(payload):
            raise ProtocolError("truncated PRELOGIN option table")
        kind, offset, length = struct.unpack_from(">BHH", payload, pos)
        options[kind] = payload[offset : offset + length]
        pos += 5
    return options


def build_prelogin(encryption: int, *, fedauth: bool) -> bytes:
    major, minor, build = SERVER_VERSION
    values: list[tuple[int, bytes]] = [
        (PL_VERSION, struct.pack(">BBHH", major, minor, build, 0)),
        (PL_ENCRYPTION, bytes([encryption])),
        (PL_INSTOPT, b"\x00"),
        (PL_THREADID, b""),
        (PL_MARS, b"\x00"),
    ]
    if fedauth:
        values.append((PL_FEDAUTH, b"\x00"))
    offset = 5 * len(values) + 1
    table, data = b"", b""
    for kind, value in values:
        table += struct.pack(">BHH", kind, offset + len(data), len(value))
        data += value
    return table + bytes([PL_TERMINATOR]) + data


# --------------------------------------------------------------------------------------------------
# LOGIN7


@dataclass(frozen=True)
class Login:
    tds_version: int
    packet_size: int
    host_name: str
    user: str
    password: str
    app_name: str
    database: str


def _unscramble(data: bytes) -> str:
    # LOGIN7 passwords: each byte had its nibbles swapped and was XORed with 0xA5.
    plain = bytes((((b ^ 0xA5) << 4) & 0xF0) | ((b ^ 0xA5) >> 4) for b in data)
    return plain.decode("utf-16-le", errors="replace")


def parse_login7(payload: bytes) -> Login:
    if len(payload) < 94:
        raise ProtocolError("LOGIN7 shorter than its fixed part")
    tds_version, packet_size = struct.unpack_from("<II", payload, 4)

    def field(at: int, *, password: bool = False) -> str:
        offset, chars = struct.unpack_from("<HH", payload, at)
        data = payload[offset : offset + 2 * chars]
        return _unscramble(data) if password else data.decode("utf-16-le", errors="replace")

    return Login(
        tds_version=tds_version,
        packet_size=packet_size,
        host_name=field(36),
        user=field(40),
        password=field(44, password=True),
        app_name=field(48),
        database=field(68),
    )


# --------------------------------------------------------------------------------------------------
# Tokens


def login_ack() -> bytes:
    major, minor, build = SERVER_VERSION
    body = (
        b"\x01"  # SQL_TSQL
        + struct.pack(">I", TDS_74)
        + b_varchar("Microsoft SQL Server")
        + bytes([major, minor, build >> 8, build & 0xFF])
    )
    return _token(0xAD, body)


def env_database(new: str, old: str = "master") -> bytes:
    return _token(0xE3, b"\x01" + b_varchar(new) + b_varchar(old))


def env_packet_size(size: int) -> bytes:
    return _token(0xE3, b"\x04" + b_varchar(str(size)) + b_varchar(str(size)))


def env_collation() -> bytes:
    return _token(0xE3, b"\x07" + _b_varbyte(COLLATION) + _b_varbyte(b""))


def env_begin_transaction(descriptor: bytes) -> bytes:
    return _token(0xE3, b"\x08" + _b_varbyte(descriptor) + _b_varbyte(b""))


def env_end_transaction(descriptor: bytes, *, commit: bool) -> bytes:
    return _token(0xE3, (b"\x09" if commit else b"\x0a") + _b_varbyte(b"") + _b_varbyte(descriptor))


def message(number: int, text: str, *, severity: int = 16, state: int = 1, info: bool = False) -> bytes:
    """An ERROR token (or INFO with `info`), as SQL Server words it."""
    body = (
        struct.pack("<iBB", number, state, severity)
        + us_varchar(text)
        + b_varchar(SERVER_NAME)
        + b_varchar("")
        + struct.pack("<i", 1)
    )
    return _token(0xAB if info else 0xAA, body)


def done(status: int = DONE_FINAL, *, command: int = 0, rows: int = 0) -> bytes:
    return b"\xfd" + struct.pack("<HHQ", status, command, rows)


def col_metadata(columns: list[tuple[str, SqlType]]) -> bytes:
    out = [b"\x81", struct.pack("<H", len(columns))]
    for name, sql_type in columns:
        # UserType 0; flags: nullable (0x0001) and updatability unknown (0x0008).
        out.append(struct.pack("<IH", 0, 0x0009) + sql_type.type_info() + b_varchar(name[:128]))
    return b"".join(out)


def row(values: list[bytes | None]) -> bytes:
    """A ROW token, or an NBCROW (null bitmap, then only the non-null values) when any value is NULL."""
    if all(v is not None for v in values):
        return b"\xd1" + b"".join(values)  # type: ignore[arg-type]
    bitmap = bytearray((len(values) + 7) // 8)
    for i, value in enumerate(values):
        if value is None:
            bitmap[i // 8] |= 1 << (i % 8)
    return b"\xd2" + bytes(bitmap) + b"".join(v for v in values if v is not None)


# --------------------------------------------------------------------------------------------------
# Column types


def _shown(value: object) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return text[:100]


def _source_type(value: object) -> str:
    # The type SQL Server would name for the stored value in a conversion message.
    if isinstance(value, str):
        return "nvarchar"
    if isinstance(value, bytes):
        return "varbinary"
    if isinstance(value, float):
        return "float"
    return "int"


_DECIMAL_SIZES = ((9, 5), (19, 9), (28, 13), (38, 17))
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?")
_INT_RANGES = {"int": (4, -(2**31), 2**31 - 1), "bigint": (8, -(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class SqlType:
    """A SQL Server column type: `name` is SQL Server's (`int`, `nvarchar`, `decimal`, ...).

    `length` is an nvarchar's length in UTF-16 code units (None for `max`); `precision` and `scale` are a
    decimal's, `scale` also datetime2's fractional digits.
    """

    name: str
    length: int | None = None
    precision: int = 0
    scale: int = 0

    def describe(self) -> str:
        if self.name == "nvarchar":
            return f"nvarchar({'max' if self.length is None else self.length})"
        if self.name == "decimal":
            return f"decimal({self.precision},{self.scale})"
        return self.name

    def type_info(self) -> bytes:
        match self.name:
            case "int":
                return b"\x26\x04"
            case "bigint":
                return b"\x26\x08"
            case "bit":
                return b"\x68\x01"
            case "float":
                return b"\x6d\x08"
            case "decimal":
                return bytes([0x6A, self._decimal_size(), self.precision, self.scale])
            case "nvarchar":
                size = 0xFFFF if self.length is None else 2 * self.length
                return b"\xe7" + struct.pack("<H", size) + COLLATION
            case "varbinary":
                return b"\xa5\xff\xff"
            case "date":
                return b"\x28"
            case "datetime2":
                return bytes([0x2A, self.scale])
            case "uniqueidentifier":
                return b"\x24\x10"
        raise AssertionError(self.name)

    def _decimal_size(self) -> int:
        return next(size for limit, size in _DECIMAL_SIZES if self.precision <= limit)

    def encode(self, value: object) -> bytes | None:
        """The value's wire form for this type, None for NULL; ConversionFailed if it cannot be held."""
        if value is None:
            return None
        match self.name:
            case "int" | "bigint":
                return self._encode_integer(value)
            case "bit":
                return b"\x01" + bytes([self._bit(value)])
            case "float":
                return self._encode_float(value)
            case "decimal":
                return self._encode_decimal(value)
            case "nvarchar":
                return self._encode_nvarchar(value)
            case "varbinary":
                data = value if isinstance(value, bytes) else str(value).encode("utf-8")
                return _plp(data)
            case "date":
                day = self._datetime(value, date_only=True)[0]
                return b"\x03" + (day.toordinal() - 1).to_bytes(3, "little")
            case "datetime2":
                return self._encode_datetime2(value)
            case "uniqueidentifier":
                return self._encode_guid(value)
        raise AssertionError(self.name)

    def _fail(self, value: object) -> ConversionFailed:
        return ConversionFailed(
            245,
            f"Conversion failed when converting the {_source_type(value)} value '{_shown(value)}' "
            f"to data type {self.name}.",
        )

    def _encode_integer(self, value: object) -> bytes:
        size, low, high = _INT_RANGES[self.name]
        if isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float):
            number = int(value)  # SQL Server truncates a fraction converting to an integer type
        else:
            raise self._fail(value)
        if not low <= number <= high:
            raise ConversionFailed(
                8115, f"Arithmetic overflow error converting expression to data type {self.name}."
            )
        return bytes([size]) + number.to_bytes(size, "little", signed=True)

    def _bit(self, value: object) -> int:
        if isinstance(value, int | float):
            return 0 if value == 0 else 1  # SQL Server stores any non-zero number in a bit as 1
        if isinstance(value, str) and value.strip().upper() in ("TRUE", "FALSE"):
            return 1 if value.strip().upper() == "TRUE" else 0
        raise self._fail(value)

    def _encode_float(self, value: object) -> bytes:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConversionFailed(
                8114, f"Error converting data type {_source_type(value)} to float."
            ) from None
        return b"\x08" + struct.pack("<d", number)

    def _encode_decimal(self, value: object) -> bytes:
        with localcontext() as context:
            context.prec = 80
            try:
                if isinstance(value, float):
                    # repr() is the shortest text that round-trips: 200.38 stays 200.38.
                    number = Decimal(repr(value))
                elif isinstance(value, int | str):
                    number = Decimal(value.strip() if isinstance(value, str) else value)
                else:
                    raise InvalidOperation
                if not number.is_finite():
                    raise InvalidOperation
            except InvalidOperation:
                raise ConversionFailed(
                    8114, f"Error converting data type {_source_type(value)} to numeric."
                ) from None
            # SQL Server rounds half away from zero when a value gets more decimals than the scale.
            number = number.quantize(Decimal(1).scaleb(-self.scale), rounding=ROUND_HALF_UP)
            unscaled = int(number.scaleb(self.scale))
        if abs(unscaled) >= 10**self.precision:
            raise ConversionFailed(
                8115, f"Arithmetic overflow error converting {_source_type(value)} to data type numeric."
            )
        size = self._decimal_size()
        return bytes([size, 1 if unscaled >= 0 else 0]) + abs(unscaled).to_bytes(size - 1, "little")

    def _encode_nvarchar(self, value: object) -> bytes:
        if isinstance(value, bytes):
            raise ConversionFailed(
                257, "Implicit conversion from data type varbinary to nvarchar is not allowed."
            )
        text = repr(value) if isinstance(value, float) else str(value)
        data = text.encode("utf-16-le", errors="surrogatepass")
        if self.length is None:
            return _plp(data)
        if len(data) > 2 * self.length:
            cut = data[: 2 * self.length].decode("utf-16-le", errors="ignore")
            raise ConversionFailed(
                2628,
                f"String or binary data would be truncated in a column of type nvarchar({self.length}). "
                f"Truncated value: '{cut}'.",
                truncated=cut,
            )
        return struct.pack("<H", len(data)) + data

    def _datetime(self, value: object, *, date_only: bool) -> tuple[dt.date, int]:
        """(date, time of day in 100 ns ticks) of a stored ISO text; a date must have no time of day."""
        match = _DATETIME.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is not None:
            day_text, hours, minutes, seconds, fraction = match.groups()
            with contextlib.suppress(ValueError):
                day = dt.date.fromisoformat(day_text)
                if hours is None:
                    return day, 0
                if not date_only:
                    time = dt.time(int(hours), int(minutes), int(seconds or 0))
                    ticks = (time.hour * 3600 + time.minute * 60 + time.second) * 10**7
                    return day, ticks + int((fraction or "").ljust(7, "0"))
        raise ConversionFailed(
            241, "Conversion failed when converting date and/or time from character string."
        )

    def _encode_datetime2(self, value: object) -> bytes:
        day, ticks = self._datetime(value, date_only=False)
        unit = 10 ** (7 - self.scale)
        ticks = (ticks + unit // 2) // unit if self.scale < 7 else ticks
        size = 3 if self.scale <= 2 else 4 if self.scale <= 4 else 5
        return (
            bytes([size + 3]) + ticks.to_bytes(size, "little") + (day.toordinal() - 1).to_bytes(3, "little")
        )

    def _encode_guid(self, value: object) -> bytes:
        try:
            is_raw = isinstance(value, bytes) and len(value) == 16
            guid = uuid.UUID(bytes=value) if is_raw else uuid.UUID(str(value).strip())  # type: ignore[arg-type]
        except ValueError:
            raise ConversionFailed(
                8169, "Conversion failed when converting from a character string to uniqueidentifier."
            ) from None
        return b"\x10" + guid.bytes_le


def _plp(data: bytes) -> bytes:
    """A PLP value (max types): total length, one chunk, terminator."""
    chunk = struct.pack("<I", len(data)) + data if data else b""
    return struct.pack("<Q", len(data)) + chunk + b"\x00\x00\x00\x00"


INT = SqlType("int")
BIGINT = SqlType("bigint")
FLOAT = SqlType("float")
NVARCHAR_MAX = SqlType("nvarchar")

_DECLARED = re.compile(r"\s*([A-Za-z][A-Za-z0-9_ ]*?)\s*(?:\(\s*(\w+)\s*(?:,\s*(\d+)\s*)?\))?\s*")


def sql_type_for(declared: str) -> SqlType | None:
    """The SQL Server type a SQLite column's declared type stands for; None when there is none."""
    match = _DECLARED.fullmatch(declared or "")
    if match is None:
        return None
    base, first, second = match.group(1).upper(), match.group(2), match.group(3)
    if base in (
        "VARCHAR",
        "NVARCHAR",
        "CHAR",
        "NCHAR",
        "CHARACTER VARYING",
        "CHARACTER",
        "VARYING CHARACTER",
    ):
        # No length (SQLite's habit for "any length"), MAX, or more than nvarchar(n) allows: max.
        if first is None or not first.isdigit() or int(first) > 4000:
            return NVARCHAR_MAX
        return SqlType("nvarchar", max(1, int(first)))
    if base in ("TEXT", "NTEXT", "CLOB"):
        return NVARCHAR_MAX
    if base in ("DECIMAL", "NUMERIC"):
        precision = int(first) if first and first.isdigit() else 18
        scale = int(second) if second else 0
        if not 1 <= precision <= 38 or scale > precision:
            return None
        return SqlType("decimal", precision=precision, scale=scale)
    simple = {
        "INT": INT,
        "INTEGER": INT,
        "SMALLINT": INT,
        "TINYINT": INT,
        "BIGINT": BIGINT,
        "BIT": SqlType("bit"),
        "BOOLEAN": SqlType("bit"),
        "BOOL": SqlType("bit"),
        "REAL": FLOAT,
        "FLOAT": FLOAT,
        "DOUBLE": FLOAT,
        "DOUBLE PRECISION": FLOAT,
        "DATE": SqlType("date"),
        "DATETIME": SqlType("datetime2", scale=7),
        "DATETIME2": SqlType("datetime2", scale=7),
        "TIMESTAMP": SqlType("datetime2", scale=7),
        "UNIQUEIDENTIFIER": SqlType("uniqueidentifier"),
        "UUID": SqlType("uniqueidentifier"),
        "BLOB": SqlType("varbinary"),
        "VARBINARY": SqlType("varbinary"),
    }
    found = simple.get(base)
    if found is not None and base in ("DATETIME2", "DATETIME") and first and first.isdigit():
        return SqlType("datetime2", scale=min(7, int(first)))
    return found


def information_schema_row(sql_type: SqlType) -> tuple[str, int | None, int | None, int | None]:
    """DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE as SQL Server reports them."""
    match sql_type.name:
        case "nvarchar":
            return "nvarchar", -1 if sql_type.length is None else sql_type.length, None, None
        case "varbinary":
            return "varbinary", -1, None, None
        case "decimal":
            return "decimal", None, sql_type.precision, sql_type.scale
        case "int":
            return "int", None, 10, 0
        case "bigint":
            return "bigint", None, 19, 0
        case "float":
            return "float", None, 53, None
    return sql_type.name, None, None, None


def infer_type(values: list[object]) -> SqlType:
    """A type for a computed result column, from the values it holds."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, int) for v in present):
        if all(-(2**31) <= v < 2**31 for v in present):  # type: ignore[operator]
            return INT
        return BIGINT
    if all(isinstance(v, int | float) for v in present):
        return FLOAT
    if all(isinstance(v, bytes) for v in present):
        return SqlType("varbinary")
    longest = max(len(str(v).encode("utf-16-le", errors="surrogatepass")) // 2 for v in present)
    return SqlType("nvarchar", 4000) if longest <= 4000 else NVARCHAR_MAX
