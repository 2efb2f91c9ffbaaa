"""Profile validation: where its time goes, statement by statement, against the raw floor of the same rows.

    .venv/bin/python bench/validation_profile.py [--work-items 200000] [--runs 3] [--backend sqlite|pg]

Stages a synthetic firm (bench/synthetic.py, cached beside the system's temporary files) once, then runs
validation `--runs` times on the same staging store (each run rolled back, so each starts from the
reader's findings alone), timing the whole of `validate` and each rule statement. Prints the median of
each, the statements sorted by time, and the floor of the same rows (cursor → COPY on PostgreSQL,
cursor → executemany into a fresh file on SQLite) for the ratio the issue sets a target for.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import write_synthetic_firm

from efimis_etl.schema.model import ENTITIES
from efimis_etl.schema.tables import render_ddl
from efimis_etl.settings import ReadPolicy, Settings
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.staging.load import load_from_source
from efimis_etl.stores import TenantStores, make_stores
from efimis_etl.validation import run

PG_ADMIN = "postgresql://root@127.0.0.1:5432/postgres"


class _RolledBack(Exception):
    pass


def _label(statement: str) -> str:
    """The rule codes and table a statement inserts findings for (its first literals)."""
    if made := re.match(r'CREATE TEMPORARY TABLE "_Flagged_(\w+)"', statement):
        return f"(rows flagged for the row-local rules) on {made.group(1)}"
    if statement.lstrip().startswith("DROP"):
        return "(dropping the flagged rows)"
    literals = re.findall(r"'([a-z-]+)' AS \w+, '(?:error|warning)' AS \w+, '([A-Za-z]+)'", statement)
    codes = sorted({code for code, _ in literals})
    tables = sorted({table for _, table in literals})
    return f"{'+'.join(codes) or '?'} on {'+'.join(tables) or '?'}"


def profile(stores: TenantStores, request_id: str) -> tuple[float, dict[str, float]]:
    timings: dict[str, float] = defaultdict(float)
    started = time.perf_counter()
    try:
        with stores.validation_session(request_id, "bench") as (conn, schema):
            timings["(session setup: ANALYZE, copies)"] = time.perf_counter() - started
            for statement in run.compiled_rules(type(conn.dialect), schema):
                at = time.perf_counter()
                conn.exec_driver_sql(statement)
                timings[_label(statement)] += time.perf_counter() - at
            at = time.perf_counter()
            run.summarize(conn, first=5)
            timings["(summary)"] = time.perf_counter() - at
            total = time.perf_counter() - started
            raise _RolledBack
    except _RolledBack:
        pass
    return total, timings


def floor(source: Path, kind: str, url: str | None, scratch: Path) -> float:
    started = time.perf_counter()
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reader:
        if kind == "pg":
            assert url
            with psycopg.connect(url.replace("+psycopg", "")) as target:
                schema = f"floor_{uuid.uuid4().hex[:6]}"
                target.execute(render_ddl("postgresql").replace("etl", schema))  # type: ignore[arg-type]
                target.commit()
                started = time.perf_counter()
                for entity in ENTITIES:
                    columns = ", ".join(f'"{c.name}"' for c in entity.all_columns)
                    cursor = reader.execute(f'SELECT {columns} FROM "{entity.name}"')
                    with target.cursor().copy(
                        f'COPY {schema}."{entity.name}" ({columns}) FROM STDIN'
                    ) as copy:
                        while rows := cursor.fetchmany(5000):
                            for row in rows:
                                copy.write_row(row)
                target.commit()
                return time.perf_counter() - started
        path = scratch / f"floor-{uuid.uuid4().hex}.db"
        with sqlite3.connect(path) as target:
            target.executescript(render_ddl("sqlite"))
            for entity in ENTITIES:
                columns = ", ".join(f'"{c.name}"' for c in entity.all_columns)
                marks = ", ".join("?" for _ in entity.all_columns)
                cursor = reader.execute(f'SELECT {columns} FROM "{entity.name}"')
                while rows := cursor.fetchmany(5000):
                    target.executemany(f'INSERT INTO "{entity.name}" ({columns}) VALUES ({marks})', rows)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-items", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "pg"], default="sqlite")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    source = Path(tempfile.gettempdir()) / f"efimis-synthetic-{args.work_items}.db"
    if not source.exists():
        partial = source.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        write_synthetic_firm(partial, args.work_items)
        partial.rename(source)
    with tempfile.TemporaryDirectory(prefix="efimis-profile-") as scratch:
        url = None
        database = f"efimis_profile_{uuid.uuid4().hex[:8]}"
        if args.backend == "pg":
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{database}"')
            url = f"postgresql+psycopg://root@127.0.0.1:5432/{database}"
        try:
            stores = make_stores(
                Settings(data_dir=Path(scratch) / "var", staging_url=url, production_url=url)
            )
            request_id = uuid.uuid4().hex
            loader = stores.create_staging(request_id)
            started = time.perf_counter()
            try:
                load_from_source(
                    parse_connection_string(f"sqlite:///{source}"),
                    loader,
                    policy=ReadPolicy(batch_size=5000),
                    on_plan=lambda _plan: None,
                    on_progress=lambda _table, _rows: None,
                )
            finally:
                stores.close_staging(loader)
            print(f"staged in {time.perf_counter() - started:.1f} s")
            totals, per_statement = [], defaultdict(list)
            floors = []
            for n in range(args.runs):
                floors.append(floor(source, args.backend, url, Path(scratch)))
                total, timings = profile(stores, request_id)
                totals.append(total)
                for label, seconds in timings.items():
                    per_statement[label].append(seconds)
                print(f"run {n + 1}: validate {total:.2f} s, floor {floors[-1]:.2f} s")
            stores.dispose()
        finally:
            if args.backend == "pg":
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    validate, base = statistics.median(totals), statistics.median(floors)
    print(
        f"\n{args.backend}, {args.work_items:,} work items: validate {validate:.2f} s (median of {args.runs}), "
        f"floor {base:.2f} s, validate / floor = {validate / base:.2f}\n"
    )
    medians = sorted(((statistics.median(v), k) for k, v in per_statement.items()), reverse=True)
    print(f"{len(medians)} labels; top {args.top}:")
    for seconds, label in medians[: args.top]:
        print(f"{seconds:8.3f} s  {100 * seconds / validate:5.1f} %  {label}")


if __name__ == "__main__":
    main()
