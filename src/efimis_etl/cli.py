"""The `efimis-etl` command: run the service, print the schema, make demo data, drive imports."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from efimis_etl.reference import render_html, render_markdown
from efimis_etl.schema.tables import render_ddl

if TYPE_CHECKING:
    from efimis_etl.identity import Clients

app = typer.Typer(
    help="Efimis ETL: import a firm's data from SQL Server, validate it, promote it.", no_args_is_help=True
)
schema_app = typer.Typer(help="The Efimis-1.0 schema: DDL and reference.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
clients_app = typer.Typer(
    help="Clients of the built-in token issuer: one or more per firm (tenant). Changes count at once, "
    "also in running services.",
    no_args_is_help=True,
)
app.add_typer(clients_app, name="clients")
console = Console()
errors = Console(stderr=True)

DEFAULT_URL = "http://127.0.0.1:8000"
UrlOption = Annotated[str, typer.Option("--url", envvar="EFIMIS_URL", help="The service's base URL.")]
FINAL = {"Validated", "ValidationFailed", "Failed", "Promoted", "PromotionFailed", "Cancelled"}


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="EFIMIS_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="EFIMIS_PORT")] = 8000,
) -> None:
    """Run the HTTP service (embedded default: SQLite stores under EFIMIS_DATA_DIR, jobs in supervised child processes)."""
    import uvicorn

    from efimis_etl.api.app import create_app

    _check_platform_version()
    console.print(f"Efimis ETL on http://{host}:{port} — API docs at http://{host}:{port}/docs")
    _print_source_policy()
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


def _print_source_policy() -> None:
    """Say at start what tenants' connection strings may reach, so a too-open deployment is visible."""
    from efimis_etl.settings import get_settings

    for line in get_settings().source_policy().describe():
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _check_platform_version() -> None:
    """Scaled out, refuse to start against a platform database of another version, saying what to do."""
    from efimis_etl.jobs.secrets import secret_box
    from efimis_etl.jobs.state import Platform
    from efimis_etl.migrations import PlatformVersionError
    from efimis_etl.settings import get_settings

    settings = get_settings()
    if not settings.scaled_out:
        return  # the embedded default migrates its own SQLite file on start
    try:
        secret_box(settings)  # no queued connection string may ever be stored unencrypted
        Platform(settings.platform_url).check_version()
    except (PlatformVersionError, ValueError) as error:
        errors.print(f"[red]Not starting:[/] {error}")
        raise typer.Exit(2) from None


@app.command()
def migrate() -> None:
    """Create or upgrade the platform's tables (Alembic), and the job queue's when scaled out."""
    from efimis_etl.jobs.state import Platform
    from efimis_etl.migrations import current, head
    from efimis_etl.settings import get_settings

    settings = get_settings()
    platform = Platform(settings.platform_url)
    before = current(platform.engine)
    platform.migrate()
    console.print(f"Platform database: revision {before or 'none'} → {head()}.")
    if settings.scaled_out:
        from efimis_etl.jobs.distributed import apply_queue_schema

        created = apply_queue_schema(settings)
        console.print("Job queue tables: " + ("created." if created else "present."))


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Jobs this process runs at once.")] = 2,
) -> None:
    """Run import and promotion jobs (scaled out): start as many as you like, on any machine."""
    from efimis_etl.logs import install_redaction
    from efimis_etl.settings import get_settings

    settings = get_settings()
    if not settings.scaled_out:
        errors.print(
            "[red]No distributed queue configured:[/] set EFIMIS_PLATFORM_DATABASE_URL (PostgreSQL). On the "
            "embedded default the service runs its jobs itself."
        )
        raise typer.Exit(2)
    import logging

    from efimis_etl.jobs.distributed import run_worker

    _check_platform_version()
    install_redaction()
    _print_source_policy()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker(settings, concurrency=concurrency)


def _clients() -> Clients:
    """The built-in issuer's clients, in the platform database the services use (EFIMIS_ settings)."""
    from efimis_etl.identity import Clients
    from efimis_etl.jobs.state import Platform
    from efimis_etl.migrations import PlatformVersionError
    from efimis_etl.settings import get_settings

    settings = get_settings()
    if settings.auth_jwks_url is not None:
        errors.print(
            "[red]No built-in issuer:[/] tokens come from your identity provider (EFIMIS_AUTH_JWKS_URL); "
            "manage its clients there."
        )
        raise typer.Exit(2)
    platform = Platform(settings.platform_url)
    try:
        if settings.scaled_out:
            platform.check_version()  # migrating is `efimis-etl migrate`'s job there
        else:
            platform.migrate()  # as `serve` does on start: the first command may come before it
    except PlatformVersionError as error:
        errors.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    return Clients(platform.engine)


@clients_app.command("add")
def clients_add(
    tenant: Annotated[str, typer.Argument(help="The firm's tenant, e.g. acme-legal.")],
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="The client id; made up from the tenant if left out.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"clientId", "clientSecret", "tenant"}.')
    ] = False,
) -> None:
    """Add a client for a tenant and print its secret: the only time it is shown (stored only hashed)."""
    from efimis_etl.identity import ClientError

    try:
        client, secret = _clients().add(tenant, client_id)
    except ClientError as error:
        errors.print(str(error), markup=False, highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        data = {"clientId": client.client_id, "clientSecret": secret, "tenant": client.tenant}
        sys.stdout.write(json.dumps(data) + "\n")
        return
    console.print(
        f"Client {client.client_id} of tenant {client.tenant} created. Its secret is shown only now:\n"
        f"  export EFIMIS_CLIENT_ID={client.client_id}\n  export EFIMIS_CLIENT_SECRET={secret}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@clients_app.command("list")
def clients_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print them as a JSON array.")] = False,
) -> None:
    """Every client: id, tenant, when created and when revoked (never a secret)."""
    clients = _clients().all()
    if as_json:
        rows = [
            {
                "clientId": c.client_id,
                "tenant": c.tenant,
                "createdAt": _iso(c.created_at),
                "revokedAt": _iso(c.revoked_at),
            }
            for c in clients
        ]
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table("client id", "tenant", "created", "revoked")
    for c in clients:
        table.add_row(c.client_id, c.tenant, _iso(c.created_at), _iso(c.revoked_at) or "")
    console.print(table)


@clients_app.command("revoke")
def clients_revoke(client_id: Annotated[str, typer.Argument(help="The client id to revoke.")]) -> None:
    """Revoke a client: its tokens are refused from the next request on, and it gets no new ones."""
    from efimis_etl.identity import ClientError

    try:
        client = _clients().revoke(client_id)
    except ClientError as error:
        errors.print(str(error), markup=False, highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"Client {client.client_id} of tenant {client.tenant} is revoked (since {_iso(client.revoked_at)}).",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _iso(value: Any) -> str | None:
    from efimis_etl.timestamps import iso_z

    return iso_z(value) if value is not None else None


@schema_app.command("sql")
def schema_sql(
    dialect: Annotated[str, typer.Option(help="tsql (Efimis-1.0.sql), postgresql or sqlite.")] = "tsql",
) -> None:
    """Print the DDL that creates the staging tables."""
    if dialect not in ("tsql", "postgresql", "sqlite"):
        errors.print(f"[red]Unknown dialect {dialect!r}:[/] choose tsql, postgresql or sqlite.")
        raise typer.Exit(2)
    sys.stdout.write(render_ddl(dialect))  # type: ignore[arg-type]


@schema_app.command("reference")
def schema_reference(format: Annotated[str, typer.Option(help="markdown or html.")] = "markdown") -> None:
    """Print the schema reference."""
    if format not in ("markdown", "html"):
        errors.print(f"[red]Unknown format {format!r}:[/] choose markdown or html.")
        raise typer.Exit(2)
    sys.stdout.write(render_markdown() if format == "markdown" else render_html())


@app.command("demo-data")
def demo_data(
    path: Annotated[Path, typer.Argument(help="The SQLite file to create.")],
    scale: Annotated[int, typer.Option(min=1, help="Multiplies the number of clients and matters.")] = 1,
    with_errors: Annotated[
        bool, typer.Option("--with-errors", help="Plant known validation problems.")
    ] = False,
) -> None:
    """Write a sample firm's source database, ready to import with sqlite:///PATH."""
    from efimis_etl.demo import row_counts, write_demo_source

    try:
        planted = write_demo_source(path, scale=scale, with_errors=with_errors)
    except FileExistsError as error:
        errors.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    table = Table("table", "rows", title=f"Demo firm written to {path}")
    for name, count in row_counts(path).items():
        table.add_row(name, str(count))
    console.print(table)
    if planted:
        console.print(f"Planted {len(planted)} problems:")
        for p in planted:
            console.print(f"  {p.rule:<32} {p.table}.{p.column} (ImportId {p.import_id})")
    console.print(f"Import it with: efimis-etl import 'sqlite:///{path.resolve()}' --wait")


@app.command()
def validate(
    connection_string: Annotated[str, typer.Argument(help="The source's connection string (quote it).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print every finding as JSON lines.")] = False,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Also write every finding to this CSV.")
    ] = None,
    show: Annotated[int, typer.Option(help="Findings to print (with --json: all).")] = 50,
) -> None:
    """Pre-flight: run the import's checks and rules on the source without importing anything.

    Exit code 1 when there are errors (warnings alone exit 0); 2 when the source cannot be read."""
    import csv

    from efimis_etl.errors import EtlError
    from efimis_etl.preflight import preflight
    from efimis_etl.settings import get_settings
    from efimis_etl.source.connstr import ConnectionStringError

    out = errors if as_json else console
    tasks: dict[str, TaskID] = {}
    try:
        with (
            Progress(
                TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), console=out
            ) as bars,
            preflight(
                get_settings(),
                connection_string,
                on_plan=lambda plan: tasks.update({name: bars.add_task(name, total=n) for name, n in plan}),
                on_progress=lambda table, rows: bars.update(tasks[table], completed=rows),
            ) as report,
        ):
            bars.stop()
            summary = report.summary
            if as_json:
                for finding in report.findings():
                    sys.stdout.write(json.dumps(finding, ensure_ascii=False) + "\n")
            if csv_path is not None:
                with csv_path.open("w", newline="", encoding="utf-8") as handle:
                    writer = csv.DictWriter(
                        handle, fieldnames=list(summary["findings"][0]) if summary["findings"] else ["rule"]
                    )
                    writer.writeheader()
                    writer.writerows(report.findings())
            if not as_json:
                _print_validation(summary, list(_take(report.findings(), show)))
    except (ConnectionStringError, EtlError) as error:
        errors.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    if summary["errors"]:
        raise typer.Exit(1)


def _take(rows: Any, n: int) -> Any:
    for i, row in enumerate(rows):
        if i >= n:
            return
        yield row


def _token(client: httpx.Client) -> str:
    """A bearer token: EFIMIS_TOKEN as given, else one from the service's built-in issuer."""
    if token := os.environ.get("EFIMIS_TOKEN"):
        return token
    client_id, secret = os.environ.get("EFIMIS_CLIENT_ID"), os.environ.get("EFIMIS_CLIENT_SECRET")
    if not client_id or not secret:
        errors.print(
            "[red]No credentials:[/] set EFIMIS_CLIENT_ID and EFIMIS_CLIENT_SECRET (the demo client's are "
            "printed when the service first starts), or EFIMIS_TOKEN."
        )
        raise typer.Exit(2)
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    if response.status_code != 200:
        errors.print(f"[red]Could not get a token ({response.status_code}):[/] {response.text}")
        raise typer.Exit(2)
    return str(response.json()["access_token"])


def _call(
    url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            client.headers["Authorization"] = f"Bearer {_token(client)}"
            response = client.request(method, path, json=body, params=params)
    except httpx.HTTPError as error:
        errors.print(f"[red]Cannot reach the service at {url}:[/] {error}. Start it with: efimis-etl serve")
        raise typer.Exit(2) from None
    data: dict[str, Any] = response.json()
    if response.status_code >= 400:
        message = data.get("error", {}).get("message", response.text)
        errors.print(f"[red]{response.status_code}:[/] {message}")
        raise typer.Exit(1)
    return data


@app.command("import")
def import_(
    connection_string: Annotated[str, typer.Argument(help="The source's connection string (quote it).")],
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until the import ends.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Queue an import; with --wait, show per-table progress and the validation summary."""
    accepted = _call(url, "POST", "/etl/import", {"connectionString": connection_string})
    request_id = accepted["requestId"]
    console.print(f"{accepted['message']} requestId: [bold]{request_id}[/]")
    if wait:
        _finish(url, _follow(url, request_id))


STATE_STYLE = {
    "Validated": "green",
    "Promoted": "green",
    "ValidationFailed": "red",
    "Failed": "red",
    "PromotionFailed": "red",
    "Cancelled": "yellow",
}


@app.command()
def imports(
    state: Annotated[
        str | None,
        typer.Option(
            help="Only imports in this state: Queued, Importing, Validating, Validated, "
            "ValidationFailed, Failed, Promoting, Promoted, PromotionFailed or Cancelled."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many of the newest first.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON page as the API gives it.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """List your firm's imports, newest first: requestId, state, source, times, rows, errors, warnings."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if state is not None:
        params["state"] = state
    data = _call(url, "GET", "/etl/imports", params=params)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    table = Table()
    # The id, state and times whole on one line each (an id is copied from here); a long source folds.
    for heading in ("requestId", "state", "created", "finished", "rows", "errors", "warnings"):
        table.add_column(heading, no_wrap=True)
    table.add_column("source", overflow="fold")
    for i in data["imports"]:
        finished = i["promotionFinishedAt"] or i["importFinishedAt"]
        rows = f"{i['rowsLoaded']}/{i['rowsExpected']}" if i["rowsExpected"] is not None else "—"
        # Text(): a source or state from the service is shown as it is, never read as rich markup.
        table.add_row(
            Text(i["requestId"]),
            Text(i["state"], style=STATE_STYLE.get(i["state"], "blue")),
            Text(i["createdAt"]),
            Text(finished or "—"),
            Text(rows),
            Text("—" if i["errors"] is None else str(i["errors"])),
            Text("—" if i["warnings"] is None else str(i["warnings"])),
            Text(i["source"]),
        )
    console.print(table)
    shown = len(data["imports"])
    first = data["offset"] + 1 if shown else data["offset"]
    console.print(f"{first}–{data['offset'] + shown} of {data['total']}", markup=False, highlight=False)


@app.command()
def status(
    request_id: Annotated[str, typer.Argument(help="The requestId.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw status JSON.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Show where an import or promotion stands."""
    data = _call(url, "GET", f"/etl/import-status/{request_id}")
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    _print_status(data)
    _exit_code(data)


@app.command()
def promote(
    request_id: Annotated[str, typer.Argument(help="The requestId of a Validated import.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the promotion ends.")] = False,
    production_revision: Annotated[
        int | None,
        typer.Option(
            "--production-revision", help="Refuse (nothing written) if production moved since this preview."
        ),
    ] = None,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Promote a Validated import to production."""
    body: dict[str, Any] = {"requestId": request_id}
    if production_revision is not None:
        body["productionRevision"] = production_revision
    accepted = _call(url, "POST", "/etl/promote-to-production", body)
    console.print(f"{accepted['message']} requestId: [bold]{request_id}[/]")
    if wait:
        _finish(url, _follow(url, request_id))


@app.command()
def preview(
    request_id: Annotated[str, typer.Argument(help="The requestId of an import that may be promoted.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw preview JSON.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Show what promoting an import would change now (writes nothing)."""
    data = _call(url, "GET", f"/etl/import/{request_id}/promotion-preview")
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    console.print(f"[bold]{request_id}[/] against production revision {data['productionRevision']}")
    summary = Table("table", "rows", "inserted", "updated", "unchanged", title="Promotion preview")
    for t in data["tables"]:
        summary.add_row(
            t["table"], str(t["rows"]), str(t["inserted"]), str(t["updated"]), str(t["unchanged"])
        )
    console.print(summary)
    for t in data["tables"]:
        for row in t["sample"]:
            for c in row["changes"]:
                console.print(
                    f"  {t['table']} {row['importId']} {c['column']}: {c['before']!r} → {c['after']!r}",
                    markup=False,
                    highlight=False,
                )
    console.print(
        f"Promote exactly this with: efimis-etl promote {request_id} --production-revision "
        f"{data['productionRevision']}"
    )


@app.command()
def revert(
    request_id: Annotated[str, typer.Argument(help="The requestId of a Promoted import.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Undo a promotion: delete the rows it inserted, restore the rows it updated (one transaction)."""
    if not yes and not typer.confirm(f"Revert the promotion of {request_id} in production?"):
        raise typer.Exit(1)
    data = _call(url, "POST", f"/etl/import/{request_id}/revert")
    console.print(f"[bold]{request_id}[/] {data['state']}: production is as it was before its promotion.")


@app.command()
def cancel(
    request_id: Annotated[
        str, typer.Argument(help="The requestId of a Queued, Importing or Validating import.")
    ],
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until its job has stopped and its staging data is deleted.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Cancel an import that has not finished (a promotion cannot be cancelled: it is one transaction)."""
    data = _call(url, "POST", f"/etl/import/{request_id}/cancel")
    console.print(f"[bold]{request_id}[/] {data['state']}: its job is stopping.")
    if not wait:
        return
    interval = float(os.environ.get("EFIMIS_POLL_SECONDS", "0.5"))
    # The service sets importFinishedAt once the job has stopped and the staging data is deleted.
    while not data["importFinishedAt"]:
        time.sleep(interval)
        data = _call(url, "GET", f"/etl/import-status/{request_id}")
    console.print(f"[bold]{request_id}[/] {data['state']}: its job has stopped; its staging data is deleted.")


def _follow(url: str, request_id: str) -> dict[str, Any]:
    tasks: dict[str, TaskID] = {}
    interval = float(os.environ.get("EFIMIS_POLL_SECONDS", "0.5"))
    with Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=False,
    ) as progress:
        state = progress.add_task("state: …", total=None)
        while True:
            data = _call(url, "GET", f"/etl/import-status/{request_id}")
            progress.update(state, description=f"state: {data['state']}")
            for table in data["tables"]:
                if table["table"] not in tasks:
                    tasks[table["table"]] = progress.add_task(
                        table["table"], total=table["rowsExpected"] or 0
                    )
                progress.update(tasks[table["table"]], completed=table["rowsLoaded"])
            if data["state"] in FINAL:
                progress.update(state, total=1, completed=1)
                return data
            time.sleep(interval)


def _finish(url: str, data: dict[str, Any]) -> None:
    _print_status(data, tables=False)
    _exit_code(data)


def _exit_code(data: dict[str, Any]) -> None:
    if data["state"] in {"ValidationFailed", "Failed", "PromotionFailed", "Cancelled"}:
        raise typer.Exit(1)


def _print_status(data: dict[str, Any], *, tables: bool = True) -> None:
    console.print(f"[bold]{data['requestId']}[/] {data['state']} — {data['source']}")
    if tables and data["tables"]:
        table = Table("table", "expected", "read", "loaded")
        for t in data["tables"]:
            table.add_row(t["table"], str(t["rowsExpected"]), str(t["rowsRead"]), str(t["rowsLoaded"]))
        console.print(table)
    if data.get("failure"):
        console.print(f"[red]{data['failure']['code']}:[/] {data['failure']['reason']}")
    if data.get("validation"):
        _print_validation(data["validation"], data["validation"]["findings"])
    promotion = data.get("promotion")
    if promotion:
        moved = Table("table", "rows", "inserted", "updated", "unchanged", title="Promotion")
        for t in promotion["tables"]:
            moved.add_row(
                t["table"], str(t["rows"]), str(t["inserted"]), str(t["updated"]), str(t["unchanged"])
            )
        console.print(moved)


def _print_validation(validation: dict[str, Any], findings: list[dict[str, Any]]) -> None:
    colour = "red" if validation["errors"] else "green"
    console.print(
        f"[{colour}]Validation: {validation['errors']} errors, {validation['warnings']} warnings[/]"
    )
    if validation["byRule"]:
        rules = Table("rule", "severity", "count", "what it finds")
        for r in validation["byRule"]:
            rules.add_row(r["rule"], r["severity"], str(r["count"]), r["description"])
        console.print(rules)
    for finding in findings:
        console.print(f"  [{finding['rule']}] {finding['message']}", markup=False, highlight=False)
    total = validation["errors"] + validation["warnings"]
    if total > len(findings):
        console.print(f"  … and {total - len(findings)} more (all of them: findings endpoint, or --csv).")


@app.command(
    "dev-sql-server",
    # The test SQL Server is a separate package (efimis-devtools) that the service must not need: its
    # arguments and --help are handed over untouched, so its options are defined once, over there, and
    # this module imports it only when the command runs.
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def dev_sql_server(ctx: typer.Context) -> None:
    """Serve a SQLite source over TDS as a stand-in SQL Server (tests, demos; from efimis-devtools)."""
    try:
        from efimis_devtools.tds_cli import run
    except ModuleNotFoundError as error:
        if error.name != "efimis_devtools":
            raise
        errors.print(
            "The test SQL Server is not installed: it is the separate efimis-devtools package "
            "(devtools/ in the repository). Install it by running scripts/setup in the repository.",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1) from None
    run(ctx.args, prog_name=ctx.command_path)


if __name__ == "__main__":
    app()
