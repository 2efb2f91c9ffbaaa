"""`efimis-etl dev-sql-server`: the test SQL Server for demos, on 127.0.0.1, until Ctrl-C.

A test-and-demo stand-in (see `tds_server`), not a database server: it answers the importer's queries from
a SQLite source file so the SQL Server path can be tried where no SQL Server runs. With `--instance NAME`
it also answers SQL Server Browser requests (UDP 1434) for that named instance. Its faults (`Faults`) are
options too, so that anyone can reproduce what tests do: a stall mid-result, a dropped connection, refused
logins.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Annotated

import typer

from efimis_devtools.tds_browser import BROWSER_PORT
from efimis_devtools.tds_server import (
    DEFAULT_DATABASE,
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    HOST,
    BrowserPortTaken,
    Faults,
    TdsServer,
)

# SQL Server's own rule for instance names: at most 16 characters, letters, digits, '_' and '$'.
_INSTANCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,15}")


DEFAULT_STALL_SECONDS = 60.0


# The fault options, under their own heading in --help (`tds_server.Faults` does the work).
_FAULTS = "Faults"
StallAfterRows = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Fault: the first query that returns more than N rows sends N of them, then stalls "
        "(--stall-seconds) mid-result before the rest. Once; later queries are answered at once. A "
        "client's query timeout (Command Timeout) cancels the stall, as with SQL Server.",
        rich_help_panel=_FAULTS,
    ),
]
StallSeconds = Annotated[
    float | None,
    typer.Option(
        min=0,
        help=f"How long the --stall-after-rows stall lasts, in seconds ({DEFAULT_STALL_SECONDS:g} if not given).",
        rich_help_panel=_FAULTS,
    ),
]
DropAfterRows = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Fault: the first query that returns more than N rows sends N of them, then the server "
        "closes the connection mid-result. Once: the client's reconnection is served normally.",
        rich_help_panel=_FAULTS,
    ),
]
RefuseLogins = Annotated[
    bool,
    typer.Option(
        "--refuse-logins",
        help="Fault: refuse every login with SQL Server's error 18401 (\"Login failed ... Server is in "
        'script upgrade mode").',
        rich_help_panel=_FAULTS,
    ),
]
OnlySqlContaining = Annotated[
    str | None,
    typer.Option(
        metavar="TEXT",
        help="Apply --stall-after-rows and --drop-after-rows only to queries whose SQL contains TEXT "
        "(case-insensitive), e.g. '[WorkItem]' to let the schema checks and other tables through.",
        rich_help_panel=_FAULTS,
    ),
]


def _wait_for_interrupt() -> None:
    while True:
        time.sleep(3600)


def _faults(
    stall_after_rows: int | None,
    stall_seconds: float | None,
    drop_after_rows: int | None,
    refuse_logins: bool,
    only_sql_containing: str | None,
) -> Faults:
    """The options as `Faults`; a combination that means nothing is refused (exit 2) naming the fix."""
    if stall_seconds is not None and stall_after_rows is None:
        typer.echo("--stall-seconds needs --stall-after-rows N: the stall happens after N rows.", err=True)
        raise typer.Exit(2)
    if only_sql_containing is not None and stall_after_rows is None and drop_after_rows is None:
        typer.echo(
            "--only-sql-containing narrows --stall-after-rows or --drop-after-rows: give one.", err=True
        )
        raise typer.Exit(2)
    if stall_after_rows is None:
        stall_seconds = 0.0  # without --stall-after-rows, `Faults` would stall before every batch
    elif stall_seconds is None:
        stall_seconds = DEFAULT_STALL_SECONDS
    return Faults(
        refuse_logins=refuse_logins,
        stall_after_rows=stall_after_rows,
        stall_seconds=stall_seconds,
        drop_after_rows=drop_after_rows,
        when_sql_contains=only_sql_containing,
    )


def _describe(faults: Faults) -> list[str]:
    """One line per fault switched on, for the start-up banner."""
    scope = f" (queries containing {faults.when_sql_contains!r})" if faults.when_sql_contains else ""
    lines = []
    if faults.refuse_logins:
        lines.append("every login is refused (error 18401)")
    if faults.stall_after_rows is not None:
        lines.append(
            f"the first query returning more than {faults.stall_after_rows} rows{scope} stalls "
            f"{faults.stall_seconds:g} s after them (once)"
        )
    if faults.drop_after_rows is not None:
        lines.append(
            f"the first query returning more than {faults.drop_after_rows} rows{scope} loses its "
            "connection after them (once)"
        )
    return lines


def dev_sql_server(
    source: Annotated[
        Path,
        typer.Argument(
            help="The SQLite source file to serve (make one with: efimis-etl demo-data demo.db).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0 picks a free one).")] = 14330,
    user: Annotated[str, typer.Option(help="The one login the server accepts.")] = DEFAULT_USER,
    password: Annotated[str, typer.Option(help="That login's password.")] = DEFAULT_PASSWORD,
    database: Annotated[str, typer.Option(help="The one database name it accepts.")] = DEFAULT_DATABASE,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls/--no-tls",
            help="Offer TLS 1.2 with a self-signed certificate made at start (clients then need "
            "TrustServerCertificate=True); --no-tls needs Encrypt=False on the client.",
        ),
    ] = True,
    instance: Annotated[
        str | None,
        typer.Option(
            help="Serve as this named instance: also answer SQL Server Browser requests on UDP "
            f"{HOST}:{BROWSER_PORT}, so that Server={HOST}\\NAME (without a port) finds the server.",
        ),
    ] = None,
    stall_after_rows: StallAfterRows = None,
    stall_seconds: StallSeconds = None,
    drop_after_rows: DropAfterRows = None,
    refuse_logins: RefuseLogins = False,
    only_sql_containing: OnlySqlContaining = None,
) -> None:
    """Serve a SQLite source file over TDS as a test SQL Server on 127.0.0.1, until Ctrl-C.

    For tests and demos only: it is not a database server. It answers the importer's read-only queries
    and prints the connection string to paste into an import.
    """
    if instance is not None and not _INSTANCE_NAME.fullmatch(instance):
        typer.echo("--instance takes a name of at most 16 letters, digits, '_' or '$'.", err=True)
        raise typer.Exit(2)
    faults = _faults(stall_after_rows, stall_seconds, drop_after_rows, refuse_logins, only_sql_containing)
    # The server logs each fault as it fires at WARNING: shown, so a demo of a fault says when it struck.
    logging.basicConfig(level=logging.WARNING, format="test SQL Server: %(message)s")
    server = TdsServer(
        source,
        user=user,
        password=password,
        database=database,
        port=port,
        tls=tls,
        instance=instance,
        faults=faults,
    )
    try:
        server.start()
    except BrowserPortTaken as error:
        typer.echo(f"{error} Stop it, or leave out --instance and give the port.", err=True)
        raise typer.Exit(1) from None
    except OSError as error:
        typer.echo(
            f"Cannot listen on {HOST},{port}: {error.strerror or error}. Choose another --port.", err=True
        )
        raise typer.Exit(1) from None
    try:
        _announce(server, source, faults)
        _wait_for_interrupt()
    except KeyboardInterrupt:
        typer.echo("Stopped.")
    finally:
        server.stop()


def _announce(server: TdsServer, source: Path, faults: Faults) -> None:
    """What is served where, the faults switched on, and the connection string to paste."""
    instance = server.instance
    named = f" as instance {instance} (SQL Server Browser on UDP {HOST}:{BROWSER_PORT})" if instance else ""
    typer.echo(
        f"Test SQL Server (a test-and-demo stand-in, not a database server) serving {source} on "
        f"{HOST},{server.port}{named} {'with TLS 1.2 (self-signed)' if server.tls else 'without TLS'}. "
        "Ctrl-C stops it."
    )
    for line in _describe(faults):
        typer.echo(f"Fault: {line}.")
    typer.echo("Connection string for an import:")
    typer.echo(server.ado_connection_string(timeout=15, instance=instance, with_port=instance is None))


def run(args: list[str], *, prog_name: str) -> None:
    """Parse `args` and run `dev_sql_server`: how `efimis-etl dev-sql-server` hands its arguments over."""
    app = typer.Typer(add_completion=False)  # completion belongs to efimis-etl, not to one of its commands
    summary = "Serve a SQLite source over TDS as a stand-in SQL Server (tests, demos)."
    app.command(help=summary)(dev_sql_server)
    typer.main.get_command(app).main(args=args, prog_name=prog_name)
