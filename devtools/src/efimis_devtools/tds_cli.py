"""`efimis-etl dev-sql-server`: the test SQL Server for demos, on 127.0.0.1, until Ctrl-C.

A test-and-demo stand-in (see `tds_server`), not a database server: it answers the importer's queries from
a SQLite source file so the SQL Server path can be tried where no SQL Server runs. With `--instance NAME`
it also answers SQL Server Browser requests (UDP 1434) for that named instance.
"""

from __future__ import annotations

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
    TdsServer,
)

# SQL Server's own rule for instance names: at most 16 characters, letters, digits, '_' and '$'.
_INSTANCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,15}")


def _wait_for_interrupt() -> None:
    while True:
        time.sleep(3600)


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
) -> None:
    """Serve a SQLite source file over TDS as a test SQL Server on 127.0.0.1, until Ctrl-C.

    For tests and demos only: it is not a database server. It answers the importer's read-only queries
    and prints the connection string to paste into an import.
    """
    if instance is not None and not _INSTANCE_NAME.fullmatch(instance):
        typer.echo("--instance takes a name of at most 16 letters, digits, '_' or '$'.", err=True)
        raise typer.Exit(2)
    server = TdsServer(
        source, user=user, password=password, database=database, port=port, tls=tls, instance=instance
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
        named = (
            f" as instance {instance} (SQL Server Browser on UDP {HOST}:{BROWSER_PORT})" if instance else ""
        )
        typer.echo(
            f"Test SQL Server (a test-and-demo stand-in, not a database server) serving {source} on "
            f"{HOST},{server.port}{named} {'with TLS 1.2 (self-signed)' if tls else 'without TLS'}. "
            "Ctrl-C stops it."
        )
        typer.echo("Connection string for an import:")
        typer.echo(server.ado_connection_string(timeout=15, instance=instance, with_port=instance is None))
        _wait_for_interrupt()
    except KeyboardInterrupt:
        typer.echo("Stopped.")
    finally:
        server.stop()


def run(args: list[str], *, prog_name: str) -> None:
    """Parse `args` and run `dev_sql_server`: how `efimis-etl dev-sql-server` hands its arguments over."""
    app = typer.Typer(add_completion=False)  # completion belongs to efimis-etl, not to one of its commands
    summary = "Serve a SQLite source over TDS as a stand-in SQL Server (tests, demos)."
    app.command(help=summary)(dev_sql_server)
    typer.main.get_command(app).main(args=args, prog_name=prog_name)
