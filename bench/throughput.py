"""Benchmark: import, validation and promotion throughput against a raw floor and against dlt.

    scripts/bench                      # 1,000,000 work items, median of 3 runs
    scripts/bench --work-items 200000 --runs 1
    scripts/bench --memory             # also: peak RSS of the import at 1M and at 5M work items

    scripts/bench --json               # one JSON object (seconds are medians) instead of the table

Everything is measured in the same run on the same machine, each measurement in a fresh process (so its
peak RSS is its own):
- **ours**: extract the synthetic firm (SQLite source) and load it into a PostgreSQL staging schema
  (`PostgresStores`), then validate every rule, then promote into a production schema;
- **floor**: the source cursor streamed straight into psycopg COPY, no conversion, no checks;
- **dlt**: dlt's `sql_database` source with the pyarrow backend into PostgreSQL (skipped, with a note,
  when dlt is not installed: `scripts/bench` installs it in a separate environment);
- **embedded**: the same firm through the embedded default (SQLite staging, SQLite production), against
  its own floor: the source cursor into a fresh SQLite file with `executemany`;
- **tds**: a smaller synthetic firm (`--tds-work-items`) behind the test SQL Server
  (`efimis_devtools.tds_server`, which is itself slow), read by Microsoft's driver: our import (into
  PostgreSQL staging) against the raw driver reading the same tables with `arrow_reader`.
Prints rows/s, seconds and peak RSS per phase, and the ratios against each floor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
PG_ADMIN = os.environ.get("EFIMIS_BENCH_PG", "postgresql://root@127.0.0.1:5432/postgres")


def _database(action: str, name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        if action == "create":
            admin.execute(f'CREATE DATABASE "{name}"')
        else:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


# ---------------------------------------------------------------------------------------------- phases
# Each runs in its own process and prints one JSON line with its timings.


def _stage_validate_promote(settings: Any, connection_string: str, batch_size: int) -> dict[str, Any]:
    from efimis_etl.promotion.promote import promote
    from efimis_etl.settings import ReadPolicy
    from efimis_etl.source.connstr import parse_connection_string
    from efimis_etl.staging.load import load_from_source
    from efimis_etl.stores import make_stores
    from efimis_etl.validation.run import validate

    stores = make_stores(settings)
    request_id = uuid.uuid4().hex
    started = time.perf_counter()
    loader = stores.create_staging(request_id)
    try:
        load_from_source(
            parse_connection_string(connection_string),
            loader,
            policy=ReadPolicy(batch_size=batch_size),
            on_plan=lambda plan: None,
            on_progress=lambda table, rows: None,
        )
    finally:
        stores.close_staging(loader)
    imported = time.perf_counter() - started
    started = time.perf_counter()
    summary = validate(stores, request_id, "bench", first=5)
    validated = time.perf_counter() - started
    assert summary["errors"] == 0, summary
    started = time.perf_counter()
    promote(stores, request_id, "bench")
    promoted = time.perf_counter() - started
    return {"import": imported, "validate": validated, "promote": promoted}


def phase_ours(source: Path, database: str, batch_size: int) -> dict[str, Any]:
    from efimis_etl.settings import Settings

    url = _url(database)
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp()), staging_url=url, production_url=url, batch_size=batch_size
    )
    return _stage_validate_promote(settings, f"sqlite:///{source}", batch_size)


def phase_embedded_ours(source: Path, database: str, batch_size: int) -> dict[str, Any]:
    from efimis_etl.settings import Settings

    settings = Settings(data_dir=Path(tempfile.mkdtemp()), batch_size=batch_size)
    return _stage_validate_promote(settings, f"sqlite:///{source}", batch_size)


def phase_embedded_floor(source: Path, database: str, batch_size: int) -> dict[str, Any]:
    import sqlite3

    from sqlalchemy import create_engine

    from efimis_etl.schema.model import ENTITIES
    from efimis_etl.schema.tables import STAGING

    target = Path(tempfile.mkdtemp()) / "floor.sqlite"
    engine = create_engine(f"sqlite:///{target}")
    STAGING.create_all(engine)
    engine.dispose()
    started = time.perf_counter()
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reader, sqlite3.connect(target) as writer:
        for entity in ENTITIES:
            columns = ", ".join(f'"{c.name}"' for c in entity.all_columns)
            cursor = reader.execute(f'SELECT {columns} FROM "{entity.name}"')
            insert = (
                f'INSERT INTO "{entity.name}" ({columns}) VALUES ({", ".join("?" * len(entity.all_columns))})'
            )
            while rows := cursor.fetchmany(batch_size):
                writer.executemany(insert, rows)
                writer.commit()
    return {"import": time.perf_counter() - started}


def phase_tds_driver(source: str, database: str, batch_size: int) -> dict[str, Any]:
    import mssql_python

    from efimis_etl.schema.model import ENTITIES
    from efimis_etl.source.connstr import parse_connection_string

    parsed = parse_connection_string(source)
    started = time.perf_counter()
    connection = mssql_python.connect(parsed.odbc_connection_string(), autocommit=True)  # type: ignore[union-attr]
    rows = 0
    for entity in ENTITIES:
        columns = ", ".join(f"[{c.name}]" for c in entity.all_columns)
        cursor = connection.cursor()
        cursor.execute(f"SELECT {columns} FROM etl.[{entity.name}]")
        for batch in cursor.arrow_reader(batch_size):
            rows += batch.num_rows
        cursor.close()
    connection.close()
    return {"import": time.perf_counter() - started, "rows": rows}


def phase_tds_ours(source: str, database: str, batch_size: int) -> dict[str, Any]:
    from efimis_etl.settings import Settings

    url = _url(database)
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp()), staging_url=url, production_url=url, batch_size=batch_size
    )
    return _stage_validate_promote(settings, source, batch_size)


def phase_floor(source: Path, database: str, batch_size: int) -> dict[str, Any]:
    import sqlite3

    import psycopg

    from efimis_etl.schema.model import ENTITIES
    from efimis_etl.schema.tables import render_ddl

    with psycopg.connect(_url(database)) as target:
        target.execute(render_ddl("postgresql").replace("etl", "floor_etl"))  # type: ignore[arg-type]
        target.commit()
        started = time.perf_counter()
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reader:
            for entity in ENTITIES:
                columns = ", ".join(f'"{c.name}"' for c in entity.all_columns)
                cursor = reader.execute(f'SELECT {columns} FROM "{entity.name}"')
                with target.cursor().copy(f'COPY floor_etl."{entity.name}" ({columns}) FROM STDIN') as copy:
                    while rows := cursor.fetchmany(batch_size):
                        for row in rows:
                            copy.write_row(row)
        target.commit()
        return {"import": time.perf_counter() - started}


def phase_dlt(source: Path, database: str, batch_size: int) -> dict[str, Any]:
    import dlt
    from dlt.sources.sql_database import sql_database

    from efimis_etl.schema.model import ENTITIES

    os.environ["DLT_DATA_DIR"] = tempfile.mkdtemp()
    os.environ["RUNTIME__LOG_LEVEL"] = "ERROR"
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{uuid.uuid4().hex[:8]}",
        # dlt insists on a password; the trust-auth server here ignores it.
        destination=dlt.destinations.postgres(_url(database).replace("://root@", "://root:unused@")),
        dataset_name="dlt_etl",
        pipelines_dir=tempfile.mkdtemp(),
    )
    started = time.perf_counter()
    pipeline.run(
        sql_database(
            f"sqlite:///{source}",
            table_names=[e.name for e in ENTITIES],
            backend="pyarrow",
            chunk_size=batch_size,
        )
    )
    return {"import": time.perf_counter() - started}


PHASES: dict[str, Any] = {
    "ours": phase_ours,
    "floor": phase_floor,
    "dlt": phase_dlt,
    "embedded_ours": phase_embedded_ours,
    "embedded_floor": phase_embedded_floor,
}
TDS_PHASES: dict[str, Any] = {"tds_driver": phase_tds_driver, "tds_ours": phase_tds_ours}


def _run_phase(name: str, source: Path | str, batch_size: int) -> dict[str, Any] | None:
    """One measurement in a fresh process and a fresh database: timings and that process's peak RSS."""
    database = f"efimis_bench_{uuid.uuid4().hex[:10]}"
    _database("create", database)
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--phase",
                name,
                "--source",
                str(source),
                "--database",
                database,
                "--batch-size",
                str(batch_size),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        _, status, usage = os.wait4(process.pid, 0)
        output = process.stdout.read() if process.stdout else ""
        if os.waitstatus_to_exitcode(status) != 0:
            if name == "dlt" and "No module named 'dlt'" in output + " ":
                return None
            raise RuntimeError(f"phase {name} failed:\n{output}")
        result = json.loads(output.strip().splitlines()[-1])
        if result.get("skipped"):
            return None
        result["rss_mb"] = usage.ru_maxrss / 1024
        return result
    finally:
        _database("drop", database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-items", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument(
        "--memory", action="store_true", help="Also compare the import's peak RSS at 1M and 5M."
    )
    parser.add_argument(
        "--tds-work-items",
        type=int,
        default=100_000,
        help="Work items of the firm behind the test SQL Server.",
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON object of medians instead.")
    parser.add_argument("--phase", choices=[*PHASES, *TDS_PHASES], help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        if args.phase == "dlt":
            try:
                import dlt  # noqa: F401
            except ImportError:
                print(json.dumps({"skipped": True}))
                return
        phase = PHASES.get(args.phase) or TDS_PHASES[args.phase]
        source = args.source if args.phase in TDS_PHASES else Path(args.source)
        print(json.dumps(phase(source, args.database, args.batch_size)))
        return

    from synthetic import write_synthetic_firm

    say = (lambda *a, **k: None) if args.json else print
    with tempfile.TemporaryDirectory(prefix="efimis-bench-") as scratch:
        source = Path(scratch) / "firm.db"
        counts = write_synthetic_firm(source, args.work_items)
        rows = sum(counts.values())
        tds_source = Path(scratch) / "tds-firm.db"
        tds_rows = sum(write_synthetic_firm(tds_source, args.tds_work_items).values())
        say(
            f"synthetic firm: {rows:,} rows ({args.work_items:,} work items); behind the test SQL Server: "
            f"{tds_rows:,} rows ({args.tds_work_items:,} work items); median of {args.runs} runs\n"
        )
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in [*PHASES, *TDS_PHASES]}
        server = _start_tds_server(tds_source)
        try:
            for run in range(args.runs):
                for name in [*PHASES, *TDS_PHASES]:
                    where = server.ado_connection_string(encrypt=False) if name in TDS_PHASES else source
                    measured = _run_phase(name, where, args.batch_size)
                    if measured is not None:
                        results[name].append(measured)
                        timings = ", ".join(
                            f"{k} {v:.2f} s" for k, v in measured.items() if k not in ("rss_mb", "rows")
                        )
                        say(
                            f"run {run + 1} {name:<15} {timings}, peak RSS {measured['rss_mb']:.0f} MB",
                            flush=True,
                        )
        finally:
            server.stop()

        def median(name: str, key: str) -> float:
            return statistics.median(r[key] for r in results[name]) if results[name] else float("nan")

        figures = {
            "rows": rows,
            "floor_s": median("floor", "import"),
            "import_s": median("ours", "import"),
            "validate_s": median("ours", "validate"),
            "promote_s": median("ours", "promote"),
            "dlt_s": median("dlt", "import") if results["dlt"] else None,
            "embedded_floor_s": median("embedded_floor", "import"),
            "embedded_import_s": median("embedded_ours", "import"),
            "embedded_validate_s": median("embedded_ours", "validate"),
            "embedded_promote_s": median("embedded_ours", "promote"),
            "tds_rows": tds_rows,
            "tds_driver_s": median("tds_driver", "import"),
            "tds_import_s": median("tds_ours", "import"),
            "peak_rss_mb": max(r["rss_mb"] for r in results["ours"]),
            "embedded_peak_rss_mb": max(r["rss_mb"] for r in results["embedded_ours"]),
            "dlt_peak_rss_mb": max((r["rss_mb"] for r in results["dlt"]), default=None),
            "runs": args.runs,
        }
        if args.memory:
            big_source = Path(scratch) / "firm5m.db"
            write_synthetic_firm(big_source, 5_000_000)
            big = _run_phase("ours", big_source, args.batch_size)
            assert big is not None
            figures["peak_rss_5m_mb"] = big["rss_mb"]
        floor, embedded_floor = figures["floor_s"], figures["embedded_floor_s"]
        figures["ratios"] = {
            "import_vs_floor": figures["import_s"] / floor,
            "validate_vs_floor": figures["validate_s"] / floor,
            "promote_vs_floor": figures["promote_s"] / floor,
            "pipeline_vs_floor": (figures["import_s"] + figures["validate_s"] + figures["promote_s"]) / floor,
            "embedded_import_vs_floor": figures["embedded_import_s"] / embedded_floor,
            "embedded_validate_vs_floor": figures["embedded_validate_s"] / embedded_floor,
            "embedded_promote_vs_floor": figures["embedded_promote_s"] / embedded_floor,
            "tds_import_vs_driver": figures["tds_import_s"] / figures["tds_driver_s"],
        }
        if args.json:
            print(json.dumps(figures, indent=2))
            return
        _print_table(figures, results, args)


def _start_tds_server(source: Path) -> Any:
    from efimis_devtools.tds_server import TdsServerProcess

    return TdsServerProcess(source, tls=False).start()


def _print_table(figures: dict[str, Any], results: dict[str, list[dict[str, Any]]], args: Any) -> None:
    rows = figures["rows"]
    print(f"\n{'measurement':<34}{'seconds':>10}{'rows/s':>14}{'peak RSS MB':>14}")
    lines = [
        ("floor: cursor → COPY", "floor", "import", rows),
        ("ours: import", "ours", "import", rows),
        ("ours: validate", "ours", "validate", rows),
        ("ours: promote", "ours", "promote", rows),
        ("dlt (pyarrow): load only", "dlt", "import", rows),
        ("embedded floor: → executemany", "embedded_floor", "import", rows),
        ("embedded: import", "embedded_ours", "import", rows),
        ("embedded: validate", "embedded_ours", "validate", rows),
        ("embedded: promote", "embedded_ours", "promote", rows),
        ("test SQL Server: driver arrow_reader", "tds_driver", "import", figures["tds_rows"]),
        ("test SQL Server: our import", "tds_ours", "import", figures["tds_rows"]),
    ]
    for label, name, key, count in lines:
        if results[name]:
            seconds = statistics.median(r[key] for r in results[name])
            rss = statistics.median(r["rss_mb"] for r in results[name])
            print(f"{label:<34}{seconds:>10.2f}{count / seconds:>14,.0f}{rss:>14.0f}")
    ratios = figures["ratios"]
    print()
    for key, target in [
        ("import_vs_floor", 1.5),
        ("validate_vs_floor", 2),
        ("promote_vs_floor", 2),
        ("pipeline_vs_floor", 4),
        ("embedded_import_vs_floor", 1.5),
        ("embedded_validate_vs_floor", 2),
        ("embedded_promote_vs_floor", 2),
        ("tds_import_vs_driver", 1.2),
    ]:
        print(f"{key:<28}= {ratios[key]:.2f}   (target ≤ {target})")
    if figures["dlt_s"] is None:
        print("dlt: not installed here (scripts/bench installs it in .venv-bench)")
    else:
        print(f"dlt / ours (import)         = {figures['dlt_s'] / figures['import_s']:.2f}")
    if "peak_rss_5m_mb" in figures:
        growth = figures["peak_rss_5m_mb"] / figures["peak_rss_mb"] - 1
        print(
            f"peak RSS: 1M {figures['peak_rss_mb']:.0f} MB, 5M {figures['peak_rss_5m_mb']:.0f} MB: "
            f"{growth:+.0%} (target ≤ +20 %)"
        )


if __name__ == "__main__":
    main()
