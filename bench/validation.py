"""Benchmark: validating a staging store against loading it, measured in the same run.

    .venv/bin/python bench/validation.py [--work-items 1000000] [--runs 3]

Loads a synthetic firm (bench/synthetic.py) into a staging store, then runs every validation rule,
and prints each phase's median time and the ratio validation / load — the figure issue 3 asks to keep
a small multiple. Times are never asserted anywhere: they are reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import write_synthetic_firm

from efimis_etl.ids import new_request_id
from efimis_etl.settings import ReadPolicy
from efimis_etl.source.connstr import parse_connection_string
from efimis_etl.staging.load import load_from_source
from efimis_etl.stores import SqliteStores
from efimis_etl.validation.run import validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-items", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="efimis-bench-") as scratch:
        root = Path(scratch)
        source = root / "source.db"
        started = time.perf_counter()
        counts = write_synthetic_firm(source, args.work_items)
        print(
            f"synthetic firm: {sum(counts.values()):,} rows ({args.work_items:,} work items) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        loads, validations = [], []
        for run in range(args.runs):
            stores = SqliteStores(root / "staging", root / "production")
            request_id = new_request_id()
            staging = stores.create_staging(request_id)
            started = time.perf_counter()
            load_from_source(
                parse_connection_string(f"sqlite:///{source}"),
                staging,
                policy=ReadPolicy(batch_size=args.batch_size),
                on_plan=lambda _plan: None,
                on_progress=lambda _table, _rows: None,
            )
            loads.append(time.perf_counter() - started)
            stores.close_staging(staging)
            started = time.perf_counter()
            summary = validate(stores, request_id, "bench", first=5)
            validations.append(time.perf_counter() - started)
            assert summary["errors"] == 0 and summary["warnings"] == 0, summary
            stores.discard_staging(request_id)
            print(f"run {run + 1}: load {loads[-1]:.2f} s, validate {validations[-1]:.2f} s")
        load, validating = statistics.median(loads), statistics.median(validations)
        rows = sum(counts.values())
        print()
        print(f"{'phase':<12}{'median s':>10}{'rows/s':>14}")
        print(f"{'load':<12}{load:>10.2f}{rows / load:>14,.0f}")
        print(f"{'validate':<12}{validating:>10.2f}{rows / validating:>14,.0f}")
        print(f"validation / load = {validating / load:.2f}")


if __name__ == "__main__":
    main()
