"""Benchmark: import, validation and promotion throughput against a raw floor and against dlt.

    scripts/bench                      # 1,000,000 work items, median of 3 runs
    scripts/bench --work-items 200000 --runs 1
    scripts/bench --memory             # also: peak RSS of the import at 1M and at 5M work items

Everything is measured in the same run on the same machine, each measurement in a fresh process (so its
peak RSS is its own):
- **ours**: extract the synthetic firm (SQLite source) and load it into a PostgreSQL staging schema with
  COPY (`PostgresStores`), then validate every rule, then promote into a production schema;
- **floor**: the source cursor streamed straight into psycopg COPY, no conversion, no checks;
- **dlt**: dlt's `sql_database` source with the pyarrow backend into PostgreSQL (skipped, with a note,
  when dlt is not installed: `scripts/bench` installs it in a separate environment).
Prints rows/s, seconds and peak RSS per phase, and the ratios ours/floor and dlt/ours.
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


def phase_ours(source: Path, database: str, batch_size: int) -> dict[str, Any]:
    from efimis_etl.promotion.promote import promote
    from efimis_etl.settings import ReadPolicy, Settings
    from efimis_etl.source.connstr import parse_connection_string
    from efimis_etl.staging.load import load_from_source
    from efimis_etl.stores import make_stores
    from efimis_etl.validation.run import validate

    url = _url(database)
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp()), staging_url=url, production_url=url, batch_size=batch_size
    )
    stores = make_stores(settings)
    request_id = uuid.uuid4().hex
    started = time.perf_counter()
    loader = stores.create_staging(request_id)
    try:
        load_from_source(
            parse_connection_string(f"sqlite:///{source}"),
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


PHASES = {"ours": phase_ours, "floor": phase_floor, "dlt": phase_dlt}


def _run_phase(name: str, source: Path, batch_size: int) -> dict[str, Any] | None:
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
    parser.add_argument("--phase", choices=list(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        if args.phase == "dlt":
            try:
                import dlt  # noqa: F401
            except ImportError:
                print(json.dumps({"skipped": True}))
                return
        print(json.dumps(PHASES[args.phase](args.source, args.database, args.batch_size)))
        return

    from synthetic import write_synthetic_firm

    with tempfile.TemporaryDirectory(prefix="efimis-bench-") as scratch:
        source = Path(scratch) / "firm.db"
        counts = write_synthetic_firm(source, args.work_items)
        rows = sum(counts.values())
        print(f"synthetic firm: {rows:,} rows ({args.work_items:,} work items); median of {args.runs} runs\n")
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in PHASES}
        for run in range(args.runs):
            for name in PHASES:
                measured = _run_phase(name, source, args.batch_size)
                if measured is not None:
                    results[name].append(measured)
                    timings = ", ".join(f"{k} {v:.2f} s" for k, v in measured.items() if k != "rss_mb")
                    print(
                        f"run {run + 1} {name:<6} {timings}, peak RSS {measured['rss_mb']:.0f} MB", flush=True
                    )

        def median(name: str, key: str) -> float:
            return statistics.median(r[key] for r in results[name])

        print(f"\n{'measurement':<22}{'seconds':>10}{'rows/s':>14}{'peak RSS MB':>14}")
        lines = [
            ("floor: cursor → COPY", "floor", "import"),
            ("ours: import", "ours", "import"),
            ("ours: validate", "ours", "validate"),
            ("ours: promote", "ours", "promote"),
            ("dlt (pyarrow)", "dlt", "import"),
        ]
        for label, name, key in lines:
            if results[name]:
                seconds = median(name, key)
                print(f"{label:<22}{seconds:>10.2f}{rows / seconds:>14,.0f}{median(name, 'rss_mb'):>14.0f}")
        ours, floor = median("ours", "import"), median("floor", "import")
        print(f"\nimport / floor        = {ours / floor:.2f}   (target ≤ 1.5)")
        print(f"validate / import     = {median('ours', 'validate') / ours:.2f}   (target ≤ 1)")
        print(f"promote / import      = {median('ours', 'promote') / ours:.2f}   (target ≤ 1)")
        if results["dlt"]:
            print(f"dlt / ours (import)   = {median('dlt', 'import') / ours:.2f}   (target ≥ 2.5)")
        else:
            print("dlt: not installed here (scripts/bench installs it in .venv-bench)")

        if args.memory:
            print()
            small = _run_phase("ours", source, args.batch_size) if args.work_items == 1_000_000 else None
            big_source = Path(scratch) / "firm5m.db"
            write_synthetic_firm(big_source, 5_000_000)
            big = _run_phase("ours", big_source, args.batch_size)
            small = small or {"rss_mb": median("ours", "rss_mb")}
            assert big is not None
            growth = big["rss_mb"] / small["rss_mb"] - 1
            print(
                f"peak RSS: 1M {small['rss_mb']:.0f} MB, 5M {big['rss_mb']:.0f} MB: {growth:+.0%} (target ≤ +20 %)"
            )


if __name__ == "__main__":
    main()
