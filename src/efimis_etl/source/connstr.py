"""Read the connection strings customers paste for their SQL Server, without ever leaking the password.

Customers copy connection strings from the Azure portal, SSMS, `appsettings.json`, JDBC configurations or
SQLAlchemy-style URLs. `parse_connection_string` accepts all of those dialects and returns one typed target:

* `SqlServerSource` for SQL Server (ADO.NET, ODBC, JDBC and `mssql://` URL forms), whose
  `odbc_connection_string()` is what `mssql_python.connect()` accepts;
* `SqlAlchemySource` for the SQLite and PostgreSQL databases used in development and tests.

Every `ConnectionStringError` message is written to be shown to the user as-is, so none of them may contain
a password; `redact` is the companion for free text (log lines, driver error messages) that may.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TypeAlias
from urllib.parse import unquote, unquote_plus

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "DEFAULT_LOGIN_TIMEOUT",
    "MAX_LENGTH",
    "ConnectionStringError",
    "Source",
    "SqlAlchemySource",
    "SqlServerSource",
    "parse_connection_string",
    "redact",
]

MAX_LENGTH = 8192
DEFAULT_LOGIN_TIMEOUT = 15  # seconds; SqlClient's and the ODBC driver's default
_INT32_MAX = 2**31 - 1  # SqlClient stores timeouts in an Int32
_REDACTED = "***"

_ACCEPTED_FORMS = (
    "Accepted forms: ADO.NET (Server=tcp:host,1433;Initial Catalog=db;User ID=user;Password=...), "
    "ODBC (Driver={ODBC Driver 18 for SQL Server};Server=tcp:host,1433;Database=db;UID=user;PWD=...), "
    "JDBC (jdbc:sqlserver://host:1433;databaseName=db;user=user;password=...), "
    "URL (mssql://user:password@host:1433/db), "
    "and for development sqlite:///path.db or postgresql://user:password@host:5432/db."
)


class ConnectionStringError(ValueError):
    """A connection string we cannot use. str(err) is a user-facing message naming what to fix.

    It must NEVER contain the password (or any value of Password/PWD/password/access token keys).
    """


# --------------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class SqlServerSource:
    """A SQL Server database reached over TCP with SQL authentication."""

    host: str
    port: int | None
    instance: str | None
    database: str
    user: str
    password: str = field(repr=False)
    encrypt: str = "yes"
    trust_server_certificate: bool = False
    host_name_in_certificate: str | None = None
    login_timeout: int = DEFAULT_LOGIN_TIMEOUT
    query_timeout: int | None = None
    application_intent: str | None = None

    def odbc_connection_string(self) -> str:
        """The connection string for `mssql_python.connect()`; pass `login_timeout` as its `timeout=`.

        Only ODBC keywords mssql-python allows are emitted: it rejects ADO-only keywords such as the timeouts.
        """
        # With an explicit port only TCP makes sense; tcp: stops the driver trying other protocols first.
        server = ("tcp:" if self.port is not None else "") + self.server_display()
        parts = [
            ("Server", server),
            ("Database", self.database),
            ("UID", self.user),
            ("PWD", self.password),
            ("Encrypt", self.encrypt),
            ("TrustServerCertificate", "yes" if self.trust_server_certificate else "no"),
        ]
        if self.host_name_in_certificate:
            parts.append(("HostNameInCertificate", self.host_name_in_certificate))
        if self.application_intent:
            parts.append(("ApplicationIntent", self.application_intent))
        return ";".join(f"{key}={_odbc_value(value)}" for key, value in parts)

    def describe(self) -> str:
        """A one-line summary for logs and the UI; it never includes the password."""
        options = [
            f"Encrypt={self.encrypt}",
            f"TrustServerCertificate={'yes' if self.trust_server_certificate else 'no'}",
        ]
        if self.host_name_in_certificate:
            options.append(f"HostNameInCertificate={self.host_name_in_certificate}")
        if self.application_intent:
            options.append(f"ApplicationIntent={self.application_intent}")
        return (
            f"SQL Server {self.server_display()} database '{self.database}' as user '{self.user}' "
            f"({', '.join(options)})"
        )

    def server_display(self) -> str:
        """Server as people write it: `host\\instance,port`, an IPv6 address in brackets."""
        host = self.host
        # A bare IPv6 address would make the ',port' or '\instance' suffix ambiguous to a reader.
        if ":" in host and (self.port is not None or self.instance):
            host = f"[{host}]"
        if self.instance:
            host += "\\" + self.instance
        if self.port is not None:
            host += f",{self.port}"
        return host


@dataclass(frozen=True)
class SqlAlchemySource:
    """Development/test sources: SQLAlchemy URLs for SQLite and PostgreSQL.

    Accepted: sqlite:///path, sqlite+pysqlite:///..., postgresql://..., postgresql+psycopg://...
    (a plain postgresql:// becomes postgresql+psycopg, the driver we ship).
    """

    url: URL

    def describe(self) -> str:
        """The URL with its password masked."""
        return self.url.render_as_string(hide_password=True)


Source: TypeAlias = SqlServerSource | SqlAlchemySource


def _odbc_value(value: str) -> str:
    # mssql-python and the ODBC driver only understand {braces}; a leading quote must be braced too because
    # our own parser (which reads ADO.NET as well) would otherwise take it as an opening quote.
    if not value or value != value.strip() or any(ch in value for ch in ";{}=") or value[0] in "\"'":
        return "{" + value.replace("}", "}}") + "}"
    return value


# --------------------------------------------------------------------------------------------------
# Keywords

# One table for every dialect: a customer who mixes JDBC and ADO.NET spellings gets a working source rather
# than an argument about dialects. Keys are compared after _norm_key (case, spaces and '_' ignored).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "server": ("Server", "Data Source", "Address", "Addr", "Network Address", "serverName"),
    "port": ("portNumber", "port"),
    "instance": ("instanceName",),
    "database": ("Initial Catalog", "Database", "databaseName"),
    "user": ("User ID", "UID", "User", "Username"),
    "password": ("Password", "PWD"),
    "encrypt": ("Encrypt",),
    "trust_server_certificate": ("TrustServerCertificate",),
    "host_name_in_certificate": ("HostNameInCertificate",),
    "login_timeout": ("Connection Timeout", "Connect Timeout", "Timeout", "loginTimeout"),
    "query_timeout": ("Command Timeout", "queryTimeout"),
    "application_intent": ("ApplicationIntent",),
    "integrated": ("Integrated Security", "Trusted_Connection"),
    "authentication": ("Authentication",),
    "network_library": ("Network Library", "Net"),
    "dsn": ("DSN", "FileDSN", "SaveFile"),
    "access_token": ("AccessToken", "Access Token"),
    "driver": ("Driver",),
    "ignored": (
        # ADO.NET (System.Data.SqlClient / Microsoft.Data.SqlClient)
        "Persist Security Info", "MultipleActiveResultSets", "Pooling", "Min Pool Size", "Max Pool Size",
        "Application Name", "App", "Workstation ID", "WSID", "Packet Size", "Connect Retry Count",
        "Connect Retry Interval", "MultiSubnetFailover", "TransparentNetworkIPResolution",
        "Load Balance Timeout", "Connection Lifetime", "Column Encryption Setting", "Current Language",
        "Language", "Failover Partner", "Failover Partner SPN", "Enlist", "Pool Blocking Period",
        "Type System Version", "Replication", "Transaction Binding", "IP Address Preference", "Server SPN",
        "Connection Reset", "Context Connection",
        # ODBC Driver 17/18
        "MARS_Connection", "AutoTranslate", "Regional", "QuotedId", "AnsiNPW", "KeepAlive",
        "KeepAliveInterval", "ColumnEncryption", "Description", "UseFMTONLY", "LongAsMax",
        "GetDataExtensions", "ServerSPN",
        # Microsoft JDBC driver
        "sendStringParametersAsUnicode", "lockTimeout", "socketTimeout", "responseBuffering", "selectMethod",
        "lastUpdateCount", "xopenStates", "sendTimeAsDatetime", "disableStatementPooling",
        "statementPoolingCacheSize", "authenticationScheme", "cancelQueryTimeout",
        "serverPreparedStatementDiscardThreshold", "enablePrepareOnFirstPreparedStatementCall",
        "useBulkCopyForBatchInsert", "sendTemporalDataTypesAsStringForBulkCopy", "delayLoadingLobs",
        "prepareMethod", "calcBigDecimalPrecision", "maxResultBuffer", "serverNameAsACE",
        "datetimeParameterType",
    ),
}  # fmt: skip


def _norm_key(key: str) -> str:
    return re.sub(r"[\s_]+", "", key).lower()


_KEYWORDS: dict[str, str] = {_norm_key(name): canon for canon, names in _SYNONYMS.items() for name in names}

# Values of these keys are never echoed and are scrubbed from any message we build.
_SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "credential")
_KEYWORDISH = re.compile(r"[A-Za-z][A-Za-z0-9 _.\-]{0,63}")
_HOST = re.compile(r"[\w.\-%:]+")
_DIGITS = re.compile(r"[0-9]{1,10}")  # ASCII only: int() would also accept Arabic-Indic digits

_MSSQL_SCHEMES = frozenset({"mssql", "sqlserver", "mssql+mssqlpython", "mssql+pyodbc", "mssql+pymssql"})
_SQLALCHEMY_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_JDBC_PREFIX = "jdbc:sqlserver://"

_ENCRYPT = {
    "true": "yes",
    "yes": "yes",
    "mandatory": "yes",
    "false": "no",
    "no": "no",
    "optional": "optional",
    "strict": "strict",
}
_BOOLEAN = {"true": True, "yes": True, "false": False, "no": False}
_CASE_SENSITIVE = frozenset({"database", "user", "password", "host_name_in_certificate"})

# What to tell the user to add, in the words of the dialect they wrote.
_MISSING: dict[str, tuple[str, dict[str, str]]] = {
    "server": (
        "server",
        {
            "ado": "add Server=<host>,<port> (or Data Source=)",
            "odbc": "add Server=tcp:<host>,<port>",
            "jdbc": "put the host after jdbc:sqlserver:// (jdbc:sqlserver://<host>:1433;...) "
            "or add ;serverName=<host>",
            "url": "put the host in the URL: mssql://<user>:<password>@<host>:1433/<database>",
        },
    ),
    "database": (
        "database",
        {
            "ado": "add Initial Catalog=<database> (or Database=)",
            "odbc": "add Database=<database> (or Initial Catalog=)",
            "jdbc": "add ;databaseName=<database>",
            "url": "put the database in the URL path: mssql://<user>:<password>@<host>:1433/<database>",
        },
    ),
    "user": (
        "user",
        {
            "ado": "add User ID=<user> (or UID=)",
            "odbc": "add UID=<user> (or User ID=)",
            "jdbc": "add ;user=<user>",
            "url": "put the user in the URL: mssql://<user>:<password>@<host>:1433/<database>",
        },
    ),
    "password": (
        "password",
        {
            "ado": "add Password=<password> (or PWD=)",
            "odbc": "add PWD=<password> (or Password=)",
            "jdbc": "add ;password=<password>",
            "url": "put the password in the URL: mssql://<user>:<password>@<host>:1433/<database> "
            "(percent-encode special characters)",
        },
    ),
}

_QUOTING_HINT = {
    "ado": "If the password contains ';', wrap it in braces or quotes: Password={...} or Password=\"...\"",
    "odbc": "If the password contains ';', wrap it in braces: PWD={...} (a '}' inside is written '}}')",
    "jdbc": "If the password contains ';', wrap it in braces: password={...} (a '}' inside is written '}}')",
    "url": "Percent-encode special characters in the URL's values",
}

_WINDOWS_AUTH = (
    "Windows integrated security is not supported; use SQL authentication: User ID=...;Password=..."
)


def _is_secret_key(norm: str) -> bool:
    return norm in ("pass", "pw") or any(word in norm for word in _SECRET_WORDS)


# --------------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True, slots=True)
class _Pair:
    key: str  # as written, trimmed
    norm: str
    value: str
    label: str  # how messages may name this pair without quoting a password fragment


class _Fields:
    """Collects canonical fields, refusing contradictions (Server twice, Database vs Initial Catalog)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[str, str]] = {}

    def put(self, canon: str, value: str, label: str) -> None:
        previous = self._values.get(canon)
        if previous is None:
            self._values[canon] = (value, label)
            return
        old_value, old_label = previous
        same = old_value == value if canon in _CASE_SENSITIVE else old_value.lower() == value.lower()
        if same:
            return
        if old_label.lower() == label.lower():
            raise ConnectionStringError(f"{label} is given twice with different values; keep only one.")
        raise ConnectionStringError(f"{old_label} and {label} give different values; keep only one.")

    def get(self, canon: str) -> tuple[str, str] | None:
        return self._values.get(canon)


class _Parser:
    def __init__(self) -> None:
        # Every secret value seen so far; scrubbed from the final message as a second line of defence.
        self.secrets: list[str] = []
        self.form = "ado"

    # ---- entry

    def parse(self, text: str) -> Source:
        if not isinstance(text, str):
            raise TypeError("parse_connection_string() expects a str")
        if len(text) > MAX_LENGTH:
            raise ConnectionStringError(
                f"The connection string is longer than {MAX_LENGTH} characters; paste only the connection "
                "string."
            )
        # Pasted strings often carry a trailing newline; only control characters inside the string matter.
        # Text copied out of a file may start with a byte-order mark.
        text = text.strip().lstrip("\ufeff").strip()
        if not text:
            raise ConnectionStringError("The connection string is empty. " + _ACCEPTED_FORMS)
        for position, char in enumerate(text, start=1):
            category = unicodedata.category(char)
            if category == "Cc":
                raise ConnectionStringError(
                    f"The connection string contains a control character (line break, tab or similar) at "
                    f"position {position}; put it on one line without tabs."
                )
            if category == "Cs":
                raise ConnectionStringError(
                    f"The connection string contains an invalid character at position {position}."
                )

        if text[: len(_JDBC_PREFIX)].lower() == _JDBC_PREFIX:
            return self._parse_jdbc(text)
        if text[:5].lower() == "jdbc:":
            raise ConnectionStringError(
                "Only Microsoft JDBC URLs (jdbc:sqlserver://...) are supported. " + _ACCEPTED_FORMS
            )
        scheme = _URL_SCHEME.match(text)
        if scheme:
            name = scheme.group(1).lower()
            if name in _MSSQL_SCHEMES:
                return self._parse_url(text, scheme.end())
            if name in _SQLALCHEMY_SCHEMES:
                return _parse_sqlalchemy(text, _SQLALCHEMY_SCHEMES[name])
            raise ConnectionStringError(f"URLs starting {name}:// are not supported. " + _ACCEPTED_FORMS)
        if "=" not in text:
            raise ConnectionStringError("This does not look like a connection string. " + _ACCEPTED_FORMS)
        return self._parse_keyword_string(text)

    # ---- dialects

    def _parse_keyword_string(self, text: str) -> SqlServerSource:
        pairs = self._tokenize(text, 0, quotes="{\"'", unit="segment")
        odbc_only = {"driver", "uid", "pwd", "trustedconnection", "dsn"}
        self.form = "odbc" if any(pair.norm in odbc_only for pair in pairs) else "ado"
        fields = _Fields()
        for pair in pairs:
            self._apply(pair, fields)
        return self._build(fields)

    def _parse_jdbc(self, text: str) -> SqlServerSource:
        self.form = "jdbc"
        rest = text[len(_JDBC_PREFIX) :]
        semicolon = rest.find(";")
        host_part = (rest if semicolon < 0 else rest[:semicolon]).strip()
        fields = _Fields()
        if host_part:
            label = "the host after jdbc:sqlserver://"
            host, port = _split_jdbc_host(host_part, label)
            fields.put("server", host, label)
            if port is not None:
                fields.put("port", port, "the port after jdbc:sqlserver://host:")
        if semicolon >= 0:
            # The JDBC driver only knows {braces}; a quote is an ordinary character in a JDBC property value.
            for pair in self._tokenize(rest, semicolon + 1, quotes="{", unit="property"):
                self._apply(pair, fields)
        return self._build(fields)

    def _parse_url(self, text: str, start: int) -> Source:
        self.form = "url"
        rest = text[start:]
        # Passwords with a raw '@' are common; the last '@' is the one that separates the host.
        at = rest.rfind("@")
        userinfo, location = (rest[:at], rest[at + 1 :]) if at >= 0 else (None, rest)
        match = re.fullmatch(
            r"(?P<host>\[[^\]]*\]|[^/?:]*)(?::(?P<port>[^/?]*))?(?:/(?P<path>[^?]*))?(?:\?(?P<query>.*))?",
            location,
            flags=re.DOTALL,
        )
        if match is None:
            raise ConnectionStringError(
                "The URL is not of the form mssql://<user>:<password>@<host>:<port>/<database>?<options>."
            )
        query = match.group("query")
        pairs = self._url_query(query) if query else []

        odbc_connect = [pair for pair in pairs if pair.norm == "odbcconnect"]
        if odbc_connect:
            # SQLAlchemy's mssql+pyodbc:///?odbc_connect=<ODBC string> wraps a whole ODBC string.
            if len(pairs) > 1 or userinfo is not None or match.group("host") or match.group("path"):
                raise ConnectionStringError(
                    "Give either odbc_connect=<ODBC connection string> alone, or user, password, host and "
                    "database in the URL, not both."
                )
            self.form = "odbc"
            return self._parse_keyword_string(odbc_connect[0].value)

        fields = _Fields()
        if userinfo is not None:
            user, colon, password = userinfo.partition(":")
            fields.put("user", unquote(user), "the URL's user")
            if colon:
                password = unquote(password)
                self.secrets.append(password)
                fields.put("password", password, "the URL's password")
        host = unquote(match.group("host"))
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if host:
            fields.put("server", host, "the URL's host")
        if match.group("port") is not None:
            fields.put("port", match.group("port"), "the URL's port")
        if match.group("path"):
            fields.put("database", unquote(match.group("path")), "the URL's database path")
        for pair in pairs:
            self._apply(pair, fields)
        return self._build(fields)

    def _url_query(self, query: str) -> list[_Pair]:
        pairs = []
        for number, segment in enumerate((s for s in query.split("&") if s.strip()), start=1):
            raw_key, equals, raw_value = segment.partition("=")
            if not equals:
                raise ConnectionStringError(f"URL query parameter {number} has no '='; write key=value.")
            key = unquote_plus(raw_key).strip()
            value = unquote_plus(raw_value).strip()
            norm = _norm_key(key)
            if _is_secret_key(norm):
                self.secrets.append(value)
            label = (
                f"'{key}'" if norm in _KEYWORDS or _KEYWORDISH.fullmatch(key) else f"URL parameter {number}"
            )
            pairs.append(_Pair(key, norm, value, label))
        return pairs

    # ---- tokenizing key=value;key=value

    def _tokenize(self, text: str, pos: int, *, quotes: str, unit: str) -> list[_Pair]:
        pairs: list[_Pair] = []
        end = len(text)
        number = 0
        # A password written without quotes that contains ';' spills into the next segment, whose "keyword"
        # is then a piece of the password: never name that segment's text.
        after_loose_secret = False
        while True:
            while pos < end and (text[pos] == ";" or text[pos].isspace()):
                pos += 1
            if pos >= end:
                return pairs
            number += 1
            key_start = pos
            while pos < end and text[pos] not in "=;":
                pos += 1
            if pos >= end or text[pos] == ";":
                message = (
                    f"{unit.capitalize()} {number} of the connection string has no '='; write key=value."
                )
                if after_loose_secret:
                    message += " " + _QUOTING_HINT[self.form] + "."
                raise ConnectionStringError(message)
            key = text[key_start:pos].strip()
            pos += 1
            if not key:
                raise ConnectionStringError(
                    f"{unit.capitalize()} {number} of the connection string has '=' but no keyword before it."
                )
            norm = _norm_key(key)
            if norm in _KEYWORDS or (not after_loose_secret and _KEYWORDISH.fullmatch(key)):
                label = f"'{key}'"
            else:
                label = f"{unit} {number}"
            secret = _is_secret_key(norm)

            while pos < end and text[pos] != ";" and text[pos].isspace():
                pos += 1
            quoted = pos < end and text[pos] in quotes
            if quoted:
                close = "}" if text[pos] == "{" else text[pos]
                value, pos = _read_quoted(text, pos, label)
                while pos < end and text[pos] != ";" and text[pos].isspace():
                    pos += 1
                if pos < end and text[pos] != ";":
                    raise ConnectionStringError(
                        f"Unexpected text after the closing {close} of the value of {label}; inside the "
                        f"value a literal {close} is written {close}{close}."
                    )
            else:
                value_start = pos
                while pos < end and text[pos] != ";":
                    pos += 1
                value = text[value_start:pos].strip()
            if secret:
                self.secrets.append(value)
            if after_loose_secret and norm not in _KEYWORDS:
                raise ConnectionStringError(
                    f"{unit.capitalize()} {number} of the connection string (the one after the password) "
                    "has an unknown keyword; remove it. " + _QUOTING_HINT[self.form] + "."
                )
            pairs.append(_Pair(key, norm, value, label))
            after_loose_secret = secret and not quoted

    # ---- interpreting

    def _apply(self, pair: _Pair, fields: _Fields) -> None:
        canon = _KEYWORDS.get(pair.norm)
        if canon is None:
            if pair.label.startswith("'"):
                raise ConnectionStringError(
                    f"Unknown keyword {pair.label} (SqlClient would say 'Keyword not supported'); "
                    "remove it or correct its spelling."
                )
            raise ConnectionStringError(f"{pair.label.capitalize()} has an unknown keyword; remove it.")
        if canon in ("ignored", "driver"):
            return
        if canon == "dsn":
            raise ConnectionStringError(
                "DSNs are not supported; give Server and Database (with User ID and Password) "
                f"instead of {pair.label}."
            )
        if canon == "access_token":
            raise ConnectionStringError(
                f"Access tokens are not supported ({pair.label}); use SQL authentication: "
                "User ID=...;Password=..."
            )
        if canon == "integrated":
            _check_integrated(pair)
            return
        if canon == "authentication":
            _check_authentication(pair)
            return
        if canon == "network_library":
            if pair.value.lower() not in ("dbmssocn", "tcp", "tcpip"):
                raise ConnectionStringError(
                    f"{pair.label} selects named pipes or shared memory, which are not supported; remove it "
                    "and use Server=tcp:<host>,<port>."
                )
            return
        fields.put(canon, pair.value, pair.label)

    def _require(self, fields: _Fields, canon: str) -> tuple[str, str]:
        entry = fields.get(canon)
        if entry is None or not entry[0]:
            what, hints = _MISSING[canon]
            raise ConnectionStringError(f"The connection string has no {what}: {hints[self.form]}.")
        return entry

    def _build(self, fields: _Fields) -> SqlServerSource:
        server, server_label = self._require(fields, "server")
        host, instance, port_text = _split_server(server, server_label)
        if not host:
            what, hints = _MISSING["server"]
            raise ConnectionStringError(f"The connection string has no {what}: {hints[self.form]}.")
        port = None if port_text is None else _port(port_text, f"the port in {server_label}")
        extra_port = fields.get("port")
        if extra_port is not None:
            other = _port(extra_port[0], extra_port[1])
            if port is not None and other != port:
                raise ConnectionStringError(
                    f"{server_label} and {extra_port[1]} give different ports; keep only one."
                )
            port = other
        extra_instance = fields.get("instance")
        if extra_instance is not None and extra_instance[0]:
            if instance is not None and instance.lower() != extra_instance[0].lower():
                raise ConnectionStringError(
                    f"{server_label} and {extra_instance[1]} give different instance names; keep only one."
                )
            instance = extra_instance[0]

        database = self._require(fields, "database")[0]
        user = self._require(fields, "user")[0]
        password = self._require(fields, "password")[0]

        encrypt = "yes"
        if (entry := fields.get("encrypt")) is not None:
            encrypt = _ENCRYPT.get(entry[0].strip().lower(), "")
            if not encrypt:
                raise ConnectionStringError(
                    f"{entry[1]} must be one of true, false, yes, no, mandatory, optional, strict."
                )
        trust = False
        if (entry := fields.get("trust_server_certificate")) is not None:
            trust = _boolean(entry[0], entry[1])
        host_name_in_certificate = None
        if (entry := fields.get("host_name_in_certificate")) is not None and entry[0]:
            host_name_in_certificate = entry[0]
        login_timeout = DEFAULT_LOGIN_TIMEOUT
        if (entry := fields.get("login_timeout")) is not None:
            login_timeout = _timeout(entry[0], entry[1])
        query_timeout = None
        if (entry := fields.get("query_timeout")) is not None:
            query_timeout = _timeout(entry[0], entry[1])
        application_intent = None
        if (entry := fields.get("application_intent")) is not None:
            application_intent = {"readonly": "ReadOnly", "readwrite": "ReadWrite"}.get(_norm_key(entry[0]))
            if application_intent is None:
                raise ConnectionStringError(f"{entry[1]} must be ReadOnly or ReadWrite.")

        return SqlServerSource(
            host=host,
            port=port,
            instance=instance,
            database=database,
            user=user,
            password=password,
            encrypt=encrypt,
            trust_server_certificate=trust,
            host_name_in_certificate=host_name_in_certificate,
            login_timeout=login_timeout,
            query_timeout=query_timeout,
            application_intent=application_intent,
        )


def _read_quoted(text: str, pos: int, label: str) -> tuple[str, int]:
    """Read a {braced}, "double-" or 'single-quoted' value starting at pos; a doubled closer is literal."""
    opener = text[pos]
    closer = "}" if opener == "{" else opener
    chars: list[str] = []
    pos += 1
    end = len(text)
    while pos < end:
        char = text[pos]
        if char == closer:
            if pos + 1 < end and text[pos + 1] == closer:
                chars.append(closer)
                pos += 2
                continue
            return "".join(chars), pos + 1
        chars.append(char)
        pos += 1
    raise ConnectionStringError(
        f"The value of {label} opens with {opener} but never closes; add the closing {closer} "
        f"(a literal {closer} inside the value is written {closer}{closer})."
    )


def _split_jdbc_host(host_part: str, label: str) -> tuple[str, str | None]:
    """Split JDBC's host[\\instance][:port] (or [ipv6][:port]) into the host text and the port text."""
    if host_part.startswith("["):
        close = host_part.find("]")
        if close < 0:
            raise ConnectionStringError(f"The IPv6 address in {label} has no closing ']'.")
        after = host_part[close + 1 :]
        if after.startswith(":"):
            return host_part[: close + 1], after[1:].strip()
        return host_part, None
    if host_part.count(":") == 1:
        host, _, port = host_part.partition(":")
        return host.strip(), port.strip()
    return host_part, None


def _split_server(value: str, label: str) -> tuple[str, str | None, str | None]:
    """Split an ADO.NET/ODBC Server value ([tcp:]host[\\instance][,port]) into host, instance, port text."""
    text = value.strip()
    lowered = text.lower()
    if lowered.startswith(("np:", "lpc:", "admin:", "via:")) or text.startswith("\\\\"):
        raise ConnectionStringError(
            f"{label} asks for named pipes, shared memory or the admin connection, which are not supported; "
            "use tcp:host,port (for example Server=tcp:db.example.com,1433)."
        )
    if lowered.startswith("tcp:"):
        text = text[4:].strip()
    if text.lower().startswith("(localdb)"):
        raise ConnectionStringError(
            f"{label} names a LocalDB instance, which is not supported; use tcp:host,port."
        )
    port: str | None = None
    if "," in text:
        text, _, port = text.rpartition(",")
        text, port = text.strip(), port.strip()
    instance: str | None = None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ConnectionStringError(f"The IPv6 address in {label} has no closing ']'.")
        host, after = text[1:close].strip(), text[close + 1 :].strip()
        if after.startswith("\\"):
            instance = after[1:].strip()
        elif after:
            raise ConnectionStringError(f"{label} has unexpected text after the IPv6 address.")
    else:
        host, backslash, rest = text.partition("\\")
        host = host.strip()
        if backslash:
            instance = rest.strip()
        if host.count(":") == 1:
            raise ConnectionStringError(
                f"{label} separates the port with ':'; SQL Server uses a comma: tcp:<host>,<port>."
            )
    if instance is not None and not re.fullmatch(r"[^\s\\,:;{}=]+", instance):
        raise ConnectionStringError(f"{label} has an empty or invalid instance name after '\\'.")
    if host.lower() in ("(local)", ".", "localhost"):
        host = "localhost"
    elif host and not _HOST.fullmatch(host):
        shown = f" '{host}'" if len(host) <= 100 else ""
        raise ConnectionStringError(f"{label}{shown} is not a valid host name or IP address.")
    return host, instance, port


def _port(value: str, label: str) -> int:
    value = value.strip()
    number = int(value) if _DIGITS.fullmatch(value) else 0
    if not 1 <= number <= 65535:
        raise ConnectionStringError(f"{label}: the port must be a whole number from 1 to 65535.")
    return number


def _timeout(value: str, label: str) -> int:
    value = value.strip()
    number = int(value) if _DIGITS.fullmatch(value) else -1
    if not 0 <= number <= _INT32_MAX:
        raise ConnectionStringError(f"{label} must be a whole number of seconds (0 or more).")
    return number


def _boolean(value: str, label: str) -> bool:
    result = _BOOLEAN.get(value.strip().lower())
    if result is None:
        raise ConnectionStringError(f"{label} must be true or false (or yes or no).")
    return result


def _check_integrated(pair: _Pair) -> None:
    value = pair.value.strip().lower()
    if value in ("sspi", "true", "yes"):
        raise ConnectionStringError(f"{_WINDOWS_AUTH} (remove {pair.label}).")
    if value not in ("false", "no"):
        raise ConnectionStringError(
            f"{pair.label} must be false (Windows integrated security is not supported)."
        )


def _check_authentication(pair: _Pair) -> None:
    value = re.sub(r"[\s\-_]+", "", pair.value).lower()
    if value in ("sqlpassword", "notspecified", ""):
        return
    if "integrated" in value or "windows" in value or "kerberos" in value or "ntlm" in value:
        raise ConnectionStringError(f"{_WINDOWS_AUTH} (remove {pair.label}).")
    # Authentication values are method names, not secrets, but only echo what looks like one.
    shown = pair.value.strip()
    if not re.fullmatch(r"[A-Za-z][A-Za-z ]{0,60}", shown):
        shown = "this value"
    raise ConnectionStringError(
        f"Authentication={shown} ({pair.label}) is not supported; use SQL authentication "
        "(Authentication=SqlPassword, or leave it out) with User ID=...;Password=..."
    )


def _parse_sqlalchemy(text: str, drivername: str) -> SqlAlchemySource:
    url: URL | None = None
    # Raised below, outside this block, so SQLAlchemy's message (which may quote the URL) is not chained.
    with contextlib.suppress(ArgumentError, ValueError):
        url = make_url(text)
    if url is None:
        raise ConnectionStringError(
            "The SQLAlchemy URL could not be read; use sqlite:///path.db or "
            "postgresql://user:password@host:5432/database (percent-encode special characters)."
        )
    return SqlAlchemySource(url.set(drivername=drivername))


def parse_connection_string(text: str) -> Source:
    """Parse a pasted connection string (ADO.NET, ODBC, JDBC, mssql:// URL, or a dev SQLAlchemy URL).

    Raises ConnectionStringError with a message fit for the user; it never contains the password.
    """
    parser = _Parser()
    try:
        return parser.parse(text)
    except ConnectionStringError as exc:
        message = str(exc)
    # Raised outside the except block so no chained exception (whose text we did not vet) rides along.
    for secret in sorted(set(parser.secrets), key=len, reverse=True):
        # Short secrets would garble ordinary words while protecting little.
        if len(secret) >= 4:
            message = message.replace(secret, _REDACTED)
    raise ConnectionStringError(message)


# --------------------------------------------------------------------------------------------------
# Redaction

# A key (possibly several words, as in "Access Token") followed by '=' or ':' (JSON/YAML-ish text).
_REDACT_KEY = re.compile(r"(?<![\w])(?P<key>[A-Za-z_][\w.\- ]{0,40}?)[\"']?\s*[:=]\s*")
_REDACT_SECRET_KEY = re.compile(r"password|passwd|pwd|secret|token|credential|(?:^|[^a-z])pass$", re.I)
_REDACT_URL_USERINFO = re.compile(r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)[^\s]*@")
_VALUE_TERMINATORS = frozenset(";&\r\n,)]}\"'")
# The same inside a percent-encoded URL value, e.g. SQLAlchemy's ?odbc_connect=...%3BPWD%3Dsecret%3B...
_REDACT_ENCODED_KEY = re.compile(
    r"(?:(?<=%3B)|(?<=%20)|(?<=[?&;=+\s])|^)[A-Z_]*(?:password|passwd|pwd|secret|token|credential)[A-Z_]*%3D",
    re.I,
)


def _quoted_end(text: str, pos: int) -> int | None:
    """The index just past the quoted value opening at pos, or None if it never closes."""
    opener = text[pos]
    closer = "}" if opener == "{" else opener
    end = len(text)
    pos += 1
    while pos < end:
        if text[pos] == closer:
            if pos + 1 < end and text[pos + 1] == closer:
                pos += 2
                continue
            return pos + 1
        pos += 1
    return None


def _unquoted_end(text: str, pos: int, stops: str) -> int:
    end = len(text)
    while pos < end and text[pos] not in stops:
        pos += 1
    return pos


def redact(text: str) -> str:
    """Replace the values of password-like keys, and URL passwords, with '***'. Best effort, for free text.

    Covers Password/PWD/password=, AccessToken/Access Token, client_secret and similar keys (quoted, braced or
    bare values), "password": "..." in JSON-ish text and user:password@ in URLs. It errs on the side of
    hiding too much.
    """
    out: list[str] = []
    pos = 0
    end = len(text)
    while True:
        match = _REDACT_KEY.search(text, pos)
        if match is None:
            break
        value_start = match.end()
        opener = text[value_start] if value_start < end else ""
        quoted_end = _quoted_end(text, value_start) if opener and opener in "{\"'" else None
        if _REDACT_SECRET_KEY.search(match.group("key").strip()):
            if opener and opener in "{\"'":
                value_end = end if quoted_end is None else quoted_end
                # A mis-escaped value such as {ab}cd} leaves a tail that is still part of the password.
                tail = text[value_end : value_end + 1]
                if tail and tail not in _VALUE_TERMINATORS and not tail.isspace():
                    value_end = _unquoted_end(text, value_end, ";&\r\n")
            else:
                # '&' only ends a value inside a URL query; in ADO.NET it is an ordinary password character.
                in_query = match.start() > 0 and text[match.start() - 1] in "?&"
                value_end = _unquoted_end(text, value_start, ";&\r\n" if in_query else ";\r\n")
            out.append(text[pos:value_start])
            out.append(_REDACTED)
            pos = value_end
        elif quoted_end is not None:
            # Skip a quoted non-secret value whole, so a "Password=" written inside it cannot start a match
            # that swallows the real password's opening quote.
            out.append(text[pos:quoted_end])
            pos = quoted_end
        else:
            # A bare value may itself contain a secret key (Application Name=x Password=y), so scan it too.
            out.append(text[pos:value_start])
            pos = value_start
        if pos >= end:
            break
    out.append(text[pos:])
    text = _redact_encoded("".join(out))
    return _REDACT_URL_USERINFO.sub(lambda m: m.group("prefix") + _REDACTED + "@", text)


def _redact_encoded(text: str) -> str:
    out: list[str] = []
    pos = 0
    upper = text.upper()
    for match in _REDACT_ENCODED_KEY.finditer(text):
        if match.start() < pos:
            continue
        value_start = match.end()
        if upper.startswith("%7B", value_start):
            # An encoded {braced} value ends at the first %7D that is not an escaped %7D%7D.
            value_end = len(text)
            search = value_start + 3
            while (close := upper.find("%7D", search)) >= 0:
                if upper.startswith("%7D", close + 3):
                    search = close + 6
                    continue
                value_end = close + 3
                break
        else:
            stops = [i for i in (upper.find("%3B", value_start), upper.find("&", value_start)) if i >= 0]
            space = re.search(r"\s", text[value_start:])
            if space:
                stops.append(value_start + space.start())
            value_end = min(stops, default=len(text))
        out.append(text[pos:value_start])
        out.append(_REDACTED)
        pos = value_end
    out.append(text[pos:])
    return "".join(out)
