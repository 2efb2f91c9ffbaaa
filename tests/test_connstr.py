"""Tests for efimis_etl.source.connstr: the dialects customers paste, and that passwords never leak."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from efimis_etl.source.connstr import (
    MAX_LENGTH,
    ConnectionStringError,
    SqlAlchemySource,
    SqlServerSource,
    parse_connection_string,
    redact,
)

# --------------------------------------------------------------------------------------------------
# helpers


def brace(value: str) -> str:
    return "{" + value.replace("}", "}}") + "}"


def dquote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def squote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def enc(value: str) -> str:
    return quote(value, safe="")


def sql_server(text: str) -> SqlServerSource:
    source = parse_connection_string(text)
    assert isinstance(source, SqlServerSource)
    return source


def error_of(text: str) -> ConnectionStringError:
    with pytest.raises(ConnectionStringError) as info:
        parse_connection_string(text)
    return info.value


# --------------------------------------------------------------------------------------------------
# real-world forms

AZURE_ADO = (
    "Server=tcp:firm-sql.database.windows.net,1433;Initial Catalog=Firm;Persist Security Info=False;"
    "User ID=etl;Password=S3cret!pass;MultipleActiveResultSets=False;Encrypt=True;"
    "TrustServerCertificate=False;Connection Timeout=30;"
)
AZURE_ODBC = (
    "Driver={ODBC Driver 18 for SQL Server};Server=tcp:firm-sql.database.windows.net,1433;Database=Firm;"
    "Uid=etl;Pwd={S3cret!pass};Encrypt=yes;TrustServerCertificate=no;Connection Timeout=30;"
)
AZURE_JDBC = (
    "jdbc:sqlserver://firm-sql.database.windows.net:1433;database=Firm;user=etl@firm-sql;"
    "password={S3cret!pass};encrypt=true;trustServerCertificate=false;"
    "hostNameInCertificate=*.database.windows.net;loginTimeout=30;"
)


def test_azure_portal_ado_net() -> None:
    source = sql_server(AZURE_ADO)
    assert source == SqlServerSource(
        host="firm-sql.database.windows.net",
        port=1433,
        instance=None,
        database="Firm",
        user="etl",
        password="S3cret!pass",
        encrypt="yes",
        trust_server_certificate=False,
        login_timeout=30,
    )


def test_azure_portal_odbc() -> None:
    source = sql_server(AZURE_ODBC)
    assert (source.host, source.port, source.database, source.user) == (
        "firm-sql.database.windows.net",
        1433,
        "Firm",
        "etl",
    )
    assert source.password == "S3cret!pass"
    assert source.encrypt == "yes"
    assert source.trust_server_certificate is False
    assert source.login_timeout == 30


def test_azure_portal_jdbc() -> None:
    source = sql_server(AZURE_JDBC)
    assert source.host == "firm-sql.database.windows.net"
    assert source.port == 1433
    assert source.user == "etl@firm-sql"
    assert source.password == "S3cret!pass"
    assert source.host_name_in_certificate == "*.database.windows.net"
    assert source.login_timeout == 30


def test_brief_jdbc_example() -> None:
    source = sql_server(
        "jdbc:sqlserver://db.example.com:1433;databaseName=Firm;user=etl;password=pw-123;encrypt=true;"
        "trustServerCertificate=false;loginTimeout=30;hostNameInCertificate=*.database.windows.net"
    )
    assert (source.host, source.port, source.database, source.user, source.password) == (
        "db.example.com",
        1433,
        "Firm",
        "etl",
        "pw-123",
    )


def test_ssms_style_sqlexpress() -> None:
    source = sql_server(r"Data Source=.\SQLEXPRESS;Initial Catalog=Firm;User ID=sa;Password=pw")
    assert (source.host, source.instance, source.port) == ("localhost", "SQLEXPRESS", None)
    assert source.odbc_connection_string().startswith("Server=localhost\\SQLEXPRESS;")


@pytest.mark.parametrize("server", ["(local)", "(LOCAL)", ".", "localhost", "LocalHost", "tcp:(local)"])
def test_local_server_spellings(server: str) -> None:
    source = sql_server(f"Server={server};Database=d;User ID=u;Password=p")
    assert source.host == "localhost"
    assert source.port is None


@pytest.mark.parametrize(
    ("server", "host", "instance", "port"),
    [
        ("tcp:db.example.com,1433", "db.example.com", None, 1433),
        ("TCP:db.example.com, 1433", "db.example.com", None, 1433),
        ("db.example.com,14330", "db.example.com", None, 14330),
        ("db.example.com", "db.example.com", None, None),
        ("  db.example.com  ", "db.example.com", None, None),
        ("10.0.0.5,1433", "10.0.0.5", None, 1433),
        ("127.0.0.1", "127.0.0.1", None, None),
        (r"db\FIRM", "db", "FIRM", None),
        (r"tcp:db\FIRM,1500", "db", "FIRM", 1500),
        ("[::1],1433", "::1", None, 1433),
        ("tcp:[fe80::1%eth0],1433", "fe80::1%eth0", None, 1433),
        ("::1", "::1", None, None),
        ("2001:db8::5,1433", "2001:db8::5", None, 1433),
        ("firm-sql.database.windows.net", "firm-sql.database.windows.net", None, None),
    ],
)
def test_server_forms(server: str, host: str, instance: str | None, port: int | None) -> None:
    source = sql_server(f"Server={server};Database=d;User ID=u;Password=p")
    assert (source.host, source.instance, source.port) == (host, instance, port)


@pytest.mark.parametrize(
    "server_key", ["Server", "Data Source", "Address", "Addr", "Network Address", "SERVER", "data source"]
)
@pytest.mark.parametrize("database_key", ["Initial Catalog", "Database", "initial catalog", "DATABASE"])
@pytest.mark.parametrize("user_key", ["User ID", "UID", "User", "Username", "user id"])
@pytest.mark.parametrize("password_key", ["Password", "PWD", "pwd"])
def test_synonyms(server_key: str, database_key: str, user_key: str, password_key: str) -> None:
    text = f"{server_key}=h,1433; {database_key} = Firm ;{user_key}=etl;{password_key}=pw;"
    source = sql_server(text)
    assert (source.host, source.port, source.database, source.user, source.password) == (
        "h",
        1433,
        "Firm",
        "etl",
        "pw",
    )


@pytest.mark.parametrize(
    ("option", "field", "expected"),
    [
        ("Encrypt=True", "encrypt", "yes"),
        ("Encrypt=yes", "encrypt", "yes"),
        ("Encrypt=Mandatory", "encrypt", "yes"),
        ("Encrypt=false", "encrypt", "no"),
        ("Encrypt=NO", "encrypt", "no"),
        ("Encrypt=Optional", "encrypt", "optional"),
        ("Encrypt=Strict", "encrypt", "strict"),
        ("TrustServerCertificate=True", "trust_server_certificate", True),
        ("Trust Server Certificate=yes", "trust_server_certificate", True),
        ("TrustServerCertificate=no", "trust_server_certificate", False),
        (
            "HostNameInCertificate=*.database.windows.net",
            "host_name_in_certificate",
            "*.database.windows.net",
        ),
        ("Host Name In Certificate=db.example.com", "host_name_in_certificate", "db.example.com"),
        ("Connection Timeout=45", "login_timeout", 45),
        ("Connect Timeout=0", "login_timeout", 0),
        ("Timeout=20", "login_timeout", 20),
        ("loginTimeout=5", "login_timeout", 5),
        ("LoginTimeout=6", "login_timeout", 6),
        ("connect_timeout=7", "login_timeout", 7),
        ("Command Timeout=120", "query_timeout", 120),
        ("queryTimeout=0", "query_timeout", 0),
        ("ApplicationIntent=ReadOnly", "application_intent", "ReadOnly"),
        ("Application Intent=readwrite", "application_intent", "ReadWrite"),
    ],
)
def test_options(option: str, field: str, expected: object) -> None:
    source = sql_server(f"Server=h;Database=d;User ID=u;Password=p;{option}")
    assert getattr(source, field) == expected


def test_defaults() -> None:
    source = sql_server("Server=h;Database=d;User ID=u;Password=p")
    assert source.encrypt == "yes"
    assert source.trust_server_certificate is False
    assert source.host_name_in_certificate is None
    assert source.login_timeout == 15
    assert source.query_timeout is None
    assert source.application_intent is None


@pytest.mark.parametrize(
    "harmless",
    [
        "Persist Security Info=True",
        "MultipleActiveResultSets=True",
        "Pooling=false",
        "Min Pool Size=1",
        "Max Pool Size=100",
        "Application Name=Efimis import",
        "App=Efimis",
        "Workstation ID=PC1",
        "WSID=PC1",
        "Packet Size=4096",
        "Connect Retry Count=3",
        "Connect Retry Interval=10",
        "MultiSubnetFailover=True",
        "TransparentNetworkIPResolution=False",
        "Load Balance Timeout=0",
        "Column Encryption Setting=Disabled",
        "Current Language=english",
        "Language=english",
        "Failover Partner=db2",
        "Driver={ODBC Driver 17 for SQL Server}",
        "MARS_Connection=yes",
        "Integrated Security=False",
        "Trusted_Connection=no",
        "Authentication=SqlPassword",
        "Authentication=Sql Password",
        "Network Library=DBMSSOCN",
        "sendStringParametersAsUnicode=false",
    ],
)
def test_harmless_keywords_are_ignored(harmless: str) -> None:
    source = sql_server(f"Server=h;Database=d;User ID=u;Password=p;{harmless}")
    assert source.password == "p"


@pytest.mark.parametrize(
    ("written", "password"),
    [
        ("{p;w}};d}", "p;w};d"),
        ("{a=b;c}", "a=b;c"),
        ("{{x}", "{x"),
        ("{}}}", "}"),
        ('{"}', '"'),
        ("{ spaced }", " spaced "),
        ('"pa;ss"', "pa;ss"),
        ('"say ""hi"""', 'say "hi"'),
        ("'it''s;here'", "it's;here"),
        ("'has \"double\"'", 'has "double"'),
        ("\"has 'single'\"", "has 'single'"),
        ("  plain  ", "plain"),
        ("a=b", "a=b"),
        ("a{b}c", "a{b}c"),
        ('ab"c', 'ab"c'),
        ("日本語パスワード", "日本語パスワード"),
        ('{"quoted"}', '"quoted"'),
        ("{}", ""),
    ],
)
def test_quoting(written: str, password: str) -> None:
    text = f"Server=h;Database=d;User ID=u;Password={written};Encrypt=no"
    if not password:
        assert "Password=" in str(error_of(text))
        return
    source = sql_server(text)
    assert source.password == password
    assert source.encrypt == "no"


def test_empty_segments_and_trailing_semicolons_are_ignored() -> None:
    source = sql_server(" ;;Server=h;;  ;Database=d; ;User ID=u;Password=p;;; \n")
    assert (source.host, source.database, source.user, source.password) == ("h", "d", "u", "p")


def test_same_value_twice_is_fine() -> None:
    source = sql_server(
        "Server=h;Data Source=h;Database=d;Initial Catalog=d;UID=u;User ID=u;PWD=p;Password=p"
    )
    assert source.database == "d"


def test_instance_and_port_are_both_kept() -> None:
    source = sql_server(r"Server=db\FIRM,1433;Database=d;User ID=u;Password=p")
    assert (source.instance, source.port) == ("FIRM", 1433)
    reparsed = sql_server(source.odbc_connection_string())
    assert (reparsed.host, reparsed.instance, reparsed.port) == ("db", "FIRM", 1433)


@pytest.mark.parametrize(
    ("text", "host", "instance", "port"),
    [
        ("jdbc:sqlserver://db.example.com;databaseName=d;user=u;password=p", "db.example.com", None, None),
        (r"jdbc:sqlserver://db\FIRM;databaseName=d;user=u;password=p", "db", "FIRM", None),
        (r"jdbc:sqlserver://db\FIRM:1500;databaseName=d;user=u;password=p", "db", "FIRM", 1500),
        ("jdbc:sqlserver://[::1]:1433;databaseName=d;user=u;password=p", "::1", None, 1433),
        (
            "jdbc:sqlserver://;serverName=db.example.com;portNumber=1444;instanceName=X;databaseName=d;"
            "userName=u;password=p",
            "db.example.com",
            "X",
            1444,
        ),
        ("JDBC:SQLSERVER://db:1433;DatabaseName=d;User=u;Password=p", "db", None, 1433),
        ("jdbc:sqlserver://db:1433;databaseName=d;user=u;password=p;", "db", None, 1433),
    ],
)
def test_jdbc_forms(text: str, host: str, instance: str | None, port: int | None) -> None:
    source = sql_server(text)
    assert (source.host, source.instance, source.port) == (host, instance, port)
    assert (source.database, source.user, source.password) == ("d", "u", "p")


def test_jdbc_properties() -> None:
    source = sql_server(
        "jdbc:sqlserver://db:1433;databaseName={Firm; Ltd};user={etl};password={p;a}}ss};"
        "queryTimeout=90;applicationIntent=ReadOnly;encrypt=strict;trustServerCertificate=true"
    )
    assert (source.database, source.user, source.password) == ("Firm; Ltd", "etl", "p;a}ss")
    assert (source.query_timeout, source.application_intent) == (90, "ReadOnly")
    assert (source.encrypt, source.trust_server_certificate) == ("strict", True)


def test_jdbc_quotes_are_literal() -> None:
    # The JDBC driver only knows braces, so a quote is part of the value.
    source = sql_server('jdbc:sqlserver://db;databaseName=d;user=u;password="abc')
    assert source.password == '"abc'


@pytest.mark.parametrize(
    "scheme", ["mssql", "sqlserver", "mssql+mssqlpython", "mssql+pyodbc", "mssql+pymssql", "MSSQL"]
)
def test_url_schemes(scheme: str) -> None:
    source = sql_server(f"{scheme}://etl:pw@db.example.com:1433/Firm")
    assert (source.host, source.port, source.database, source.user, source.password) == (
        "db.example.com",
        1433,
        "Firm",
        "etl",
        "pw",
    )


def test_url_with_query_and_percent_encoding() -> None:
    source = sql_server(
        "mssql://etl%40firm:p%40ss%3Aw%2Fo%25rd%20x@db.example.com:1433/My%20Firm"
        "?encrypt=yes&TrustServerCertificate=yes&Connection+Timeout=20&driver=ODBC+Driver+18+for+SQL+Server"
    )
    assert (source.user, source.password, source.database) == ("etl@firm", "p@ss:w/o%rd x", "My Firm")
    assert (source.encrypt, source.trust_server_certificate, source.login_timeout) == ("yes", True, 20)


def test_url_raw_at_sign_in_password() -> None:
    source = sql_server("mssql://etl:P@ssw0rd@db.example.com/Firm")
    assert (source.password, source.host, source.port) == ("P@ssw0rd", "db.example.com", None)


def test_url_ipv6_and_instance() -> None:
    assert sql_server("mssql://u:p@[::1]:1433/d").host == "::1"
    source = sql_server("mssql://u:p@db%5CFIRM/d")
    assert (source.host, source.instance) == ("db", "FIRM")


def test_url_odbc_connect() -> None:
    odbc = "Driver={ODBC Driver 18 for SQL Server};Server=tcp:db,1433;Database=Firm;UID=etl;PWD={a;b}"
    source = sql_server("mssql+pyodbc:///?odbc_connect=" + quote_plus(odbc))
    assert (source.host, source.port, source.database, source.password) == ("db", 1433, "Firm", "a;b")


@pytest.mark.parametrize(
    ("text", "drivername", "database"),
    [
        ("sqlite:///relative.db", "sqlite", "relative.db"),
        ("sqlite:////abs/path.db", "sqlite", "/abs/path.db"),
        ("sqlite+pysqlite:///x.db", "sqlite+pysqlite", "x.db"),
        ("sqlite://", "sqlite", None),
        ("postgresql://u:p@localhost:5432/firm", "postgresql+psycopg", "firm"),
        ("postgresql+psycopg://u:p@localhost/firm", "postgresql+psycopg", "firm"),
        ("PostgreSQL://u:p@localhost/firm", "postgresql+psycopg", "firm"),
    ],
)
def test_sqlalchemy_urls(text: str, drivername: str, database: str | None) -> None:
    source = parse_connection_string(text)
    assert isinstance(source, SqlAlchemySource)
    assert source.url.drivername == drivername
    assert source.url.database == database


def test_sqlalchemy_describe_hides_password() -> None:
    source = parse_connection_string("postgresql://etl:hunter2secret@db:5432/firm")
    assert isinstance(source, SqlAlchemySource)
    assert source.describe() == "postgresql+psycopg://etl:***@db:5432/firm"
    assert source.url.password == "hunter2secret"
    assert "hunter2secret" not in repr(source)


# --------------------------------------------------------------------------------------------------
# output


def test_odbc_connection_string_shape() -> None:
    source = sql_server(AZURE_ADO + "Command Timeout=60;ApplicationIntent=ReadOnly;")
    assert source.odbc_connection_string() == (
        "Server=tcp:firm-sql.database.windows.net,1433;Database=Firm;UID=etl;PWD=S3cret!pass;"
        "Encrypt=yes;TrustServerCertificate=no;ApplicationIntent=ReadOnly"
    )
    assert "Timeout" not in source.odbc_connection_string()


def test_odbc_connection_string_quotes_values() -> None:
    source = SqlServerSource("h", None, None, "Firm; Ltd", " etl", "pa;ss}word", host_name_in_certificate="x")
    assert source.odbc_connection_string() == (
        "Server=h;Database={Firm; Ltd};UID={ etl};PWD={pa;ss}}word};Encrypt=yes;"
        "TrustServerCertificate=no;HostNameInCertificate=x"
    )


def test_odbc_connection_string_ipv6() -> None:
    source = SqlServerSource("::1", 1433, None, "d", "u", "p")
    assert source.odbc_connection_string().startswith("Server=tcp:[::1],1433;")
    assert sql_server(source.odbc_connection_string()).host == "::1"


def test_describe() -> None:
    source = sql_server(
        "Server=tcp:db.example.com,1433;Database=Firm;UID=etl;PWD=hunter2secret;TrustServerCertificate=no"
    )
    assert source.describe() == (
        "SQL Server db.example.com,1433 database 'Firm' as user 'etl' "
        "(Encrypt=yes, TrustServerCertificate=no)"
    )
    assert "hunter2secret" not in repr(source)
    assert "hunter2secret" not in str(source)


def test_odbc_output_is_accepted_by_mssql_python() -> None:
    module = pytest.importorskip("mssql_python.connection_string_parser")
    parser_class = getattr(module, "_ConnectionStringParser", None)
    if parser_class is None:
        pytest.skip("mssql-python's internal parser moved")
    source = SqlServerSource(
        "db",
        1433,
        "FIRM",
        "d;b",
        "{u}",
        " p;w}d ",
        encrypt="strict",
        host_name_in_certificate="*.x",
        application_intent="ReadOnly",
    )
    parsed = parser_class(validate_keywords=True)._parse(source.odbc_connection_string())
    assert (parsed["database"], parsed["uid"], parsed["pwd"]) == ("d;b", "{u}", " p;w}d ")
    assert parsed["server"] == "tcp:db\\FIRM,1433"


# --------------------------------------------------------------------------------------------------
# errors: each names what to fix

ERROR_CASES: list[tuple[str, str, str]] = [
    ("empty", "", "empty"),
    ("blank", "   \n ", "empty"),
    ("not a connection string", "db.example.com", "Accepted forms"),
    ("too long", "Server=h;Application Name=" + "x" * MAX_LENGTH, str(MAX_LENGTH)),
    ("NUL", "Server=h\x00;Database=d", "control character"),
    ("newline inside", "Server=h;\nDatabase=d;User ID=u;Password=p", "control character"),
    ("tab inside", "Server=h;\tDatabase=d;User ID=u;Password=p", "control character"),
    ("segment without =", "Server=x;garbage;", "Segment 2"),
    ("empty keyword", "Server=x;=y", "no keyword"),
    ("unterminated brace", "Server=h;Database=d;User ID=u;Password={abc", "'Password'"),
    ("unterminated double quote", 'Server=h;Database=d;User ID=u;Password="abc', "'Password'"),
    ("unterminated single quote", "Server=h;Database='d;User ID=u;Password=p", "'Database'"),
    ("text after brace", "Server=h;Database=d;User ID=u;Password={ab}cd}", "'Password'"),
    ("duplicate server", "Server=a;Server=b;Database=d;User ID=u;Password=p", "'Server'"),
    ("server vs data source", "Server=a;Data Source=b;Database=d;User ID=u;Password=p", "'Data Source'"),
    (
        "database vs initial catalog",
        "Server=a;Database=x;Initial Catalog=y;User ID=u;Password=p",
        "'Database'",
    ),
    (
        "database vs initial catalog 2",
        "Server=a;Database=x;Initial Catalog=y;User ID=u;Password=p",
        "Initial",
    ),
    ("missing server", "Initial Catalog=Firm;User ID=u;Password=p", "Server="),
    ("missing database", "Server=h;User ID=u;Password=p", "Initial Catalog="),
    ("missing database odbc", "Driver={ODBC Driver 18 for SQL Server};Server=h;UID=u;PWD=p", "Database="),
    ("missing user", "Server=h;Database=d;Password=p", "User ID="),
    ("missing user odbc", "Driver={x};Server=h;Database=d;PWD=p", "UID="),
    ("missing password", "Server=h;Database=d;User ID=u", "Password="),
    ("missing password odbc", "Driver={x};Server=h;Database=d;UID=u", "PWD="),
    ("empty password", "Server=h;Database=d;User ID=u;Password=", "Password="),
    ("integrated sspi", "Server=h;Database=d;Integrated Security=SSPI", "Windows integrated security"),
    ("integrated true", "Server=h;Database=d;Integrated Security=true", "Integrated Security"),
    ("trusted connection", "Driver={x};Server=h;Database=d;Trusted_Connection=yes", "Trusted_Connection"),
    ("integrated odd value", "Server=h;Database=d;Integrated Security=maybe", "Integrated Security"),
    ("ad integrated", "Server=h;Database=d;Authentication=ActiveDirectoryIntegrated", "User ID="),
    ("ad integrated spaced", "Server=h;Database=d;Authentication=Active Directory Integrated", "Windows"),
    ("windows auth", "Server=h;Database=d;Authentication=Windows", "Windows integrated security"),
    ("ad password", "Server=h;Database=d;Authentication=ActiveDirectoryPassword", "ActiveDirectoryPassword"),
    ("ad msi", "Server=h;Database=d;Authentication=ActiveDirectoryMSI", "ActiveDirectoryMSI"),
    ("named pipes", r"Server=np:\\.\pipe\sql\query;Database=d;User ID=u;Password=p", "tcp:host,port"),
    ("shared memory", "Server=lpc:h;Database=d;User ID=u;Password=p", "tcp:host,port"),
    ("admin connection", "Server=admin:h;Database=d;User ID=u;Password=p", "tcp:host,port"),
    ("unc pipe", r"Server=\\h\pipe\sql\query;Database=d;User ID=u;Password=p", "tcp:host,port"),
    ("localdb", r"Server=(localdb)\MSSQLLocalDB;Database=d;User ID=u;Password=p", "LocalDB"),
    ("network library pipes", "Server=h;Database=d;User ID=u;Password=p;Network Library=dbnmpntw", "Network"),
    ("port too big", "Server=h,65536;Database=d;User ID=u;Password=p", "port"),
    ("port zero", "Server=h,0;Database=d;User ID=u;Password=p", "port"),
    ("port not a number", "Server=tcp:h,abc;Database=d;User ID=u;Password=p", "port"),
    ("port negative", "Server=tcp:h,-1;Database=d;User ID=u;Password=p", "port"),
    ("port arabic digits", "Server=tcp:h,١٤٣٣;Database=d;User ID=u;Password=p", "port"),
    ("port with colon", "Server=h:1433;Database=d;User ID=u;Password=p", "comma"),
    ("bad host", "Server=db example.com;Database=d;User ID=u;Password=p", "'Server'"),
    ("empty instance", "Server=h\\;Database=d;User ID=u;Password=p", "instance"),
    (
        "conflicting instance",
        r"jdbc:sqlserver://h\A;instanceName=B;databaseName=d;user=u;password=p",
        "instance",
    ),
    (
        "login timeout negative",
        "Server=h;Database=d;User ID=u;Password=p;Connection Timeout=-1",
        "Connection Timeout",
    ),
    (
        "login timeout text",
        "Server=h;Database=d;User ID=u;Password=p;Connect Timeout=soon",
        "Connect Timeout",
    ),
    ("login timeout float", "Server=h;Database=d;User ID=u;Password=p;Timeout=1.5", "'Timeout'"),
    ("command timeout", "Server=h;Database=d;User ID=u;Password=p;Command Timeout=x", "Command Timeout"),
    ("encrypt value", "Server=h;Database=d;User ID=u;Password=p;Encrypt=maybe", "'Encrypt'"),
    (
        "trust value",
        "Server=h;Database=d;User ID=u;Password=p;TrustServerCertificate=1",
        "TrustServerCertificate",
    ),
    ("intent value", "Server=h;Database=d;User ID=u;Password=p;ApplicationIntent=Both", "ApplicationIntent"),
    ("unknown keyword", "Server=h;Frobnicate=1;Database=d;User ID=u;Password=p", "'Frobnicate'"),
    ("unknown keyword after quoted password", "Server=h;User ID=u;Password={p};Frobnicate=1", "'Frobnicate'"),
    # After an unquoted password the "keyword" may be the rest of a password that contains ';'.
    ("unknown keyword after bare password", "Server=h;User ID=u;Password=p;Frobnicate=1", "Segment 4"),
    (
        "unknown keyword message",
        "Server=h;AttachDbFilename=x;Database=d;User ID=u;Password=p",
        "not supported",
    ),
    ("dsn", "DSN=Firm;UID=u;PWD=p", "DSNs are not supported; give Server and Database"),
    ("access token", "Server=h;Database=d;AccessToken=eyJ0eXAi", "AccessToken"),
    ("jdbc other vendor", "jdbc:mysql://h/d", "jdbc:sqlserver://"),
    ("jdbc missing database", "jdbc:sqlserver://h:1433;user=u;password=p", "databaseName="),
    ("jdbc missing user", "jdbc:sqlserver://h:1433;databaseName=d;password=p", "user="),
    ("jdbc missing password", "jdbc:sqlserver://h:1433;databaseName=d;user=u", "password="),
    ("jdbc missing server", "jdbc:sqlserver://;databaseName=d;user=u;password=p", "serverName="),
    ("jdbc bad port", "jdbc:sqlserver://h:0;databaseName=d;user=u;password=p", "port"),
    (
        "jdbc port conflict",
        "jdbc:sqlserver://h:1433;portNumber=1434;databaseName=d;user=u;password=p",
        "portNumber",
    ),
    ("jdbc integrated", "jdbc:sqlserver://h;databaseName=d;integratedSecurity=true", "integratedSecurity"),
    ("url other scheme", "mysql://u:p@h/d", "mysql://"),
    ("url http", "http://example.com/", "Accepted forms"),
    ("url missing database", "mssql://u:p@h:1433", "<database>"),
    ("url missing user", "mssql://h:1433/d", "<user>"),
    ("url missing password", "mssql://u@h:1433/d", "<password>"),
    ("url bad port", "mssql://u:p@h:99999/d", "port"),
    ("url unknown option", "mssql://u:p@h/d?frobnicate=1", "'frobnicate'"),
    ("url query without =", "mssql://u:p@h/d?encrypt", "'='"),
    ("url bad encrypt", "mssql://u:p@h/d?encrypt=maybe", "'encrypt'"),
    ("odbc_connect mixed", "mssql+pyodbc://u:p@h/d?odbc_connect=Server%3Dh", "odbc_connect"),
    ("sqlalchemy bad port", "postgresql://u:p@h:abc/d", "postgresql://"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_error_names_what_to_fix(text: str, expected: str) -> None:
    assert expected in str(error_of(text))


def test_error_is_a_value_error() -> None:
    assert issubclass(ConnectionStringError, ValueError)


def test_unquoted_password_with_semicolon_gets_a_quoting_hint() -> None:
    message = str(error_of("Server=h;Database=d;User ID=u;Password=abc;defghi;Encrypt=yes"))
    assert "Password={...}" in message
    assert "defghi" not in message
    message = str(error_of("Server=h;Database=d;User ID=u;Password=abc;defghi=jkl;Encrypt=yes"))
    assert "Password={...}" in message
    assert "defghi" not in message


def test_non_string_input() -> None:
    with pytest.raises(TypeError):
        parse_connection_string(b"Server=h")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# property-based: round trips

_SPECIALS = list(";={}\"' @:/?#%+&\\,[]*")
_CHARS = st.one_of(st.sampled_from(_SPECIALS), st.characters(exclude_categories=("Cc", "Cs")))
values = st.text(_CHARS, min_size=1, max_size=24)
passwords = st.text(_CHARS, min_size=6, max_size=24).filter(lambda p: "***" not in p)


def _ado(quoter: Callable[[str], str]) -> Callable[[str, str, str], str]:
    def build(user: str, password: str, database: str) -> str:
        return (
            f"Server=tcp:db.example.com,1433;Initial Catalog={quoter(database)};Persist Security Info=False;"
            f"User ID={quoter(user)};Password={quoter(password)};MultipleActiveResultSets=False;"
            "Encrypt=True;TrustServerCertificate=False;Connection Timeout=30;"
        )

    return build


def _odbc(user: str, password: str, database: str) -> str:
    return (
        "Driver={ODBC Driver 18 for SQL Server};Server=tcp:db.example.com,1433;"
        f"Database={brace(database)};UID={brace(user)};PWD={brace(password)};Encrypt=yes;"
        "TrustServerCertificate=no;Connection Timeout=30"
    )


def _jdbc(user: str, password: str, database: str) -> str:
    return (
        f"jdbc:sqlserver://db.example.com:1433;databaseName={brace(database)};user={brace(user)};"
        f"password={brace(password)};encrypt=true;trustServerCertificate=false;loginTimeout=30"
    )


def _url(user: str, password: str, database: str) -> str:
    return (
        f"mssql://{enc(user)}:{enc(password)}@db.example.com:1433/{enc(database)}"
        "?encrypt=yes&TrustServerCertificate=no&Connection+Timeout=30"
    )


FORMS: dict[str, Callable[[str, str, str], str]] = {
    "ado braces": _ado(brace),
    "ado double quotes": _ado(dquote),
    "ado single quotes": _ado(squote),
    "odbc": _odbc,
    "jdbc": _jdbc,
    "url": _url,
}


@settings(max_examples=300, deadline=None)
@given(form=st.sampled_from(sorted(FORMS)), user=values, password=values, database=values)
def test_round_trip_every_form(form: str, user: str, password: str, database: str) -> None:
    source = sql_server(FORMS[form](user, password, database))
    assert (source.host, source.port) == ("db.example.com", 1433)
    assert (source.user, source.password, source.database) == (user, password, database)
    assert (source.encrypt, source.trust_server_certificate, source.login_timeout) == ("yes", False, 30)

    again = sql_server(source.odbc_connection_string())
    assert (again.user, again.password, again.database) == (user, password, database)
    assert again == dataclasses.replace(source, login_timeout=15)


_UNQUOTED = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=";"), min_size=1, max_size=24
).filter(lambda v: v == v.strip() and v[0] not in "{\"'")


@given(password=_UNQUOTED)
def test_round_trip_unquoted_password(password: str) -> None:
    source = sql_server(f"Server=h;Database=d;User ID=u;Password={password};Encrypt=no")
    assert source.password == password


@settings(max_examples=200, deadline=None)
@given(user=values, password=values, database=values, port=st.none() | st.integers(1, 65535))
def test_odbc_output_round_trips(user: str, password: str, database: str, port: int | None) -> None:
    source = SqlServerSource("db.example.com", port, None, database, user, password)
    assert sql_server(source.odbc_connection_string()) == source


# --------------------------------------------------------------------------------------------------
# property-based: the password never leaks

# Each builder puts the password somewhere in a connection string that cannot be used.
LEAK_CASES: dict[str, Callable[[str], str]] = {
    "missing server": lambda p: f"Initial Catalog=Firm;User ID=etl;Password={brace(p)}",
    "missing database": lambda p: f"Server=h;User ID=etl;Password={brace(p)}",
    "missing user": lambda p: f"Server=h;Database=d;Password={dquote(p)}",
    "segment without =": lambda p: f"Server=h;Password={brace(p)};garbage;Database=d",
    "unterminated brace": lambda p: "Server=h;Database=d;User ID=u;Password={" + p.replace("}", "}}"),
    "unterminated quote": lambda p: 'Server=h;Database=d;User ID=u;Password="' + p.replace('"', '""'),
    "text after brace": lambda p: f"Server=h;Database=d;User ID=u;Password={brace(p)}x;Encrypt=yes",
    "duplicate password": lambda p: f"Server=h;Database=d;User ID=u;Password={brace(p)};PWD=other-value",
    "duplicate password 2": lambda p: f"Server=h;Database=d;User ID=u;PWD=other-value;Password={brace(p)}",
    "integrated": lambda p: f"Server=h;Database=d;User ID=u;Password={brace(p)};Integrated Security=SSPI",
    "authentication": lambda p: (
        f"Server=h;Database=d;User ID=u;Password={brace(p)};Authentication={brace(p)}"
    ),
    "named pipes": lambda p: f"Server=np:h;Database=d;User ID=u;Password={brace(p)}",
    "bad port": lambda p: f"Server=h,0;Database=d;User ID=u;Password={brace(p)}",
    "bad timeout": lambda p: f"Server=h;Database=d;User ID=u;Password={brace(p)};Connect Timeout=x",
    "bad encrypt": lambda p: f"Server=h;Database=d;User ID=u;Password={brace(p)};Encrypt=maybe",
    "unknown keyword": lambda p: f"Server=h;Database=d;User ID=u;Password={brace(p)};Frobnicate=1",
    "unknown secret keyword": lambda p: f"Server=h;Database=d;User ID=u;trustStorePassword={brace(p)}",
    "access token": lambda p: f"Server=h;Database=d;AccessToken={brace(p)}",
    "dsn": lambda p: f"DSN=Firm;UID=u;PWD={brace(p)}",
    "control char": lambda p: f"Server=h;\nDatabase=d;User ID=u;Password={brace(p)}",
    "too long": lambda p: f"Password={brace(p)};Application Name=" + "x" * MAX_LENGTH,
    "jdbc bad port": lambda p: f"jdbc:sqlserver://h:0;databaseName=d;user=u;password={brace(p)}",
    "jdbc missing database": lambda p: f"jdbc:sqlserver://h:1433;user=u;password={brace(p)}",
    "jdbc unterminated": lambda p: (
        "jdbc:sqlserver://h;databaseName=d;user=u;password={" + p.replace("}", "}}")
    ),
    "url missing database": lambda p: f"mssql://u:{enc(p)}@h:1433",
    "url bad port": lambda p: f"mssql://u:{enc(p)}@h:99999/d",
    "url raw password bad port": lambda p: f"mssql://u:{p}@h:99999/d",
    "url unknown option": lambda p: f"mssql://u:{enc(p)}@h/d?frobnicate=1",
    "url other scheme": lambda p: f"mysql://u:{enc(p)}@h/d",
    "sqlalchemy bad port": lambda p: f"postgresql://u:{enc(p)}@h:abc/d",
}


NEUTRAL = "Neutral-Pa55"


def _assert_no_leak(error: ConnectionStringError, password: str) -> None:
    for text in (str(error), repr(error), *map(str, error.args)):
        assert password not in text
        assert enc(password) not in text
    # A chained exception would print its own message (perhaps quoting the password) in tracebacks.
    assert error.__cause__ is None
    assert error.__context__ is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(case=st.sampled_from(sorted(LEAK_CASES)), password=passwords)
def test_errors_never_contain_the_password(case: str, password: str) -> None:
    build = LEAK_CASES[case]
    text = build(password)
    # The password must not already be part of the fixed text around it, nor of the message's own words
    # (a password "Driver" is legitimately in the list of accepted forms).
    assume(password not in build(""))
    assume(password not in str(error_of(build(NEUTRAL))))
    with pytest.raises(ConnectionStringError) as info:
        parse_connection_string(text)
    _assert_no_leak(info.value, password)


_LOOSE = st.text(
    st.characters(exclude_categories=("Cc", "Cs", "Z"), exclude_characters=";{}\"'"), min_size=3, max_size=12
)


def _cannot_be_a_keyword(fragment: str) -> bool:
    """Connection-string keywords are ASCII letters, spaces and '_': a fragment whose keyword part (before
    any '=') holds anything else is no keyword, so after `Password=x;` it cannot be a setting either."""
    key = fragment.split("=", 1)[0]
    return not (key.isascii() and key.replace("_", "").isalpha())


# After the ';': anything that is no keyword, and keyword-like names (which an error message would be
# tempted to quote) that are none because they hold a digit.
_NOT_A_KEYWORD = _LOOSE.filter(_cannot_be_a_keyword) | st.from_regex(
    r"[A-Za-z][A-Za-z0-9.\-]{1,9}[0-9]", fullmatch=True
)


@settings(max_examples=200, deadline=None)
@given(head=_LOOSE, tail=_NOT_A_KEYWORD, rest=st.sampled_from(["", "=x", "=x;Encrypt=yes"]))
def test_unquoted_password_with_semicolon_never_leaks(head: str, tail: str, rest: str) -> None:
    # Without quotes the part after ';' looks like a keyword; it must not be named in the message.
    password = f"{head};{tail}"
    text = f"Server=h;Database=d;User ID=u;Password={password}{rest}"
    # A tail that is one of the words the message says anyway (with a neutral fragment there) proves nothing.
    assume(tail not in str(error_of(f"Server=h;Database=d;User ID=u;Password={head};Neutral9{rest}")))
    error = error_of(text)  # the part after ';' is no setting: the string is refused
    _assert_no_leak(error, password)
    assert tail not in str(error)


@settings(max_examples=300, deadline=None)
@given(form=st.sampled_from(sorted(FORMS)), user=values, password=passwords, database=values)
def test_describe_repr_and_redact_never_contain_the_password(
    form: str, user: str, password: str, database: str
) -> None:
    build = FORMS[form]
    text = build(user, password, database)
    source = sql_server(text)
    neutral = dataclasses.replace(source, password=NEUTRAL)

    # What is shown does not depend on the password at all...
    assert (repr(neutral), str(neutral), neutral.describe()) == (repr(source), str(source), source.describe())
    # ...so, unless the password happens to be made of the words around it, it cannot be in there.
    assume(password not in repr(neutral) + neutral.describe())
    for shown in (source.describe(), repr(source), str(source)):
        assert password not in shown

    for original, neutral_original in (
        (text, build(user, NEUTRAL, database)),
        (source.odbc_connection_string(), neutral.odbc_connection_string()),
    ):
        surrounding = redact(f"connection failed for {neutral_original} (attempt 2)")
        assume(password not in surrounding and enc(password) not in surrounding)
        redacted = redact(f"connection failed for {original} (attempt 2)")
        assert password not in redacted
        assert enc(password) not in redacted
        assert "***" in redacted
        assert redacted.startswith("connection failed for ")


@settings(max_examples=100, deadline=None)
@given(password=passwords)
def test_redact_odbc_connect_url(password: str) -> None:
    odbc = f"Driver={{ODBC Driver 18 for SQL Server}};Server=h;Database=d;UID=u;PWD={brace(password)}"
    url = "mssql+pyodbc:///?odbc_connect=" + quote_plus(odbc)
    assume(password not in url.replace(quote_plus(brace(password)), ""))
    redacted = redact(url)
    assert quote_plus(brace(password)) not in redacted
    assert password not in redacted


# --------------------------------------------------------------------------------------------------
# redact on free text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Password=hunter2;Server=h", "Password=***;Server=h"),
        ("pwd = hunter2 ; Server=h", "pwd = ***; Server=h"),
        ("PWD={p;w}};d};Server=h", "PWD=***;Server=h"),
        ('Password="a;""b";Server=h', "Password=***;Server=h"),
        ("Password='a;''b';Server=h", "Password=***;Server=h"),
        (
            "jdbc:sqlserver://h;user=u;password={x;y};encrypt=true",
            "jdbc:sqlserver://h;user=u;password=***;encrypt=true",
        ),
        ("mssql://etl:hunter2@db:1433/Firm", "mssql://etl:***@db:1433/Firm"),
        ("mssql://etl:p@ss@db/Firm and more", "mssql://etl:***@db/Firm and more"),
        ("postgresql+psycopg://etl:x%40y@db/firm", "postgresql+psycopg://etl:***@db/firm"),
        ("mssql://u@h/d?password=hunter2&encrypt=yes", "mssql://u@h/d?password=***&encrypt=yes"),
        ("AccessToken=eyJhbGci.x.y;Server=h", "AccessToken=***;Server=h"),
        ("Access Token=eyJhbGci;Server=h", "Access Token=***;Server=h"),
        ("client_secret={s;t};tenant=x", "client_secret=***;tenant=x"),
        ('{"user": "etl", "password": "hunter2"}', '{"user": "etl", "password": ***}'),
        (
            "Login failed for user 'etl'. Reason: wrong password.",
            "Login failed for user 'etl'. Reason: wrong password.",
        ),
        ("Server=h;Database=d;User ID=u", "Server=h;Database=d;User ID=u"),
        ("User ID={Password={};Password={real}", "User ID={Password={};Password=***"),
        ('User ID="Password=""x";Password=real', 'User ID="Password=""x";Password=***'),
        ("Application Name=x Password=y;Server=h", "Application Name=x Password=***;Server=h"),
        ("Password={never closed;Server=h", "Password=***"),
        ("Password={ab}cd};Server=h", "Password=***;Server=h"),
        ("Password=a&b;Server=h", "Password=***;Server=h"),
        ("", ""),
    ],
)
def test_redact_examples(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_leaves_connection_string_structure() -> None:
    redacted = redact(AZURE_ADO)
    assert "S3cret!pass" not in redacted
    assert redacted.startswith("Server=tcp:firm-sql.database.windows.net,1433;Initial Catalog=Firm;")
    assert "Password=***;MultipleActiveResultSets=False" in redacted
