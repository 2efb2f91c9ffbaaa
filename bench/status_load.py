"""Load run: waves of concurrent status requests against the embedded service while two imports run.

    .venv/bin/python bench/status_load.py [--concurrency 200] [--scale 300]

Starts `efimis-etl serve` (the embedded default, its own data directory in a temporary directory) as a
separate process, submits two imports of a synthetic demo firm (`--scale` times the demo's size), and
while both are still running fires waves of `--concurrency` simultaneous `GET /etl/import-status/…`
requests from this process. Prints p50 / p99 / max latency, the number of requests and of errors
(anything but 200, or no answer within 30 s), and the imports' states during the run. Times are
reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from efimis_etl.demo import row_counts, write_demo_source

SECRET = "bench-demo-client-secret"
RUNNING = {"Queued", "Importing", "Validating"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_service(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFIMIS_")}
    env |= {"EFIMIS_DATA_DIR": str(data_dir), "EFIMIS_DEMO_CLIENT_SECRET": SECRET, "EFIMIS_WORKERS": "2"}
    log = (data_dir.parent / "service.log").open("wb")
    command = [sys.executable, "-m", "efimis_etl.cli", "serve", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _client(url: str) -> httpx.Client:
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=5) as probe:
        while True:
            try:
                if probe.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the service did not start within 60 s (see service.log)")
            time.sleep(0.1)
        grant = {"grant_type": "client_credentials", "client_id": "demo", "client_secret": SECRET}
        token = probe.post("/oauth2/token", data=grant).json()["access_token"]
    return httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})


Sample = float | str  # a latency in seconds, or what went wrong


async def _wave(url: str, headers: dict[str, str], paths: list[str], expect: int) -> list[Sample]:
    """One request per path, all at once, each on a connection of its own (as many clients would: a
    connection kept alive between waves could be closed by the server as it is reused, which is not
    what this measures)."""
    limits = httpx.Limits(max_connections=len(paths), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as client:
        return list(await asyncio.gather(*(_get(client, path, expect) for path in paths)))


async def _get(client: httpx.AsyncClient, path: str, expect: int) -> Sample:
    started = time.perf_counter()
    try:
        response = await client.get(path)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"
    if response.status_code != expect:
        return f"{response.status_code}: {response.text[:200]}"
    return time.perf_counter() - started


async def _measure(
    url: str, headers: dict[str, str], sources: list[Path], concurrency: int, max_waves: int
) -> tuple[list[Sample], list[Sample], int, list[str]]:
    """Idle waves, then waves while both imports run: (idle latencies, loaded latencies, waves, states)."""
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        # The same waves before any job runs, for comparison (an unknown id: its 404 is the answer).
        unknown = [f"/etl/import-status/{'0' * 32}"] * concurrency
        idle = [t for _ in range(3) for t in await _wave(url, headers, unknown, 404)]
        ids = []
        for path in sources:
            response = await client.post("/etl/import", json={"connectionString": f"sqlite:///{path}"})
            ids.append(response.json()["requestId"])
        paths = [f"/etl/import-status/{ids[i % len(ids)]}" for i in range(concurrency)]

        async def states() -> list[str]:
            return [(await client.get(f"/etl/import-status/{i}")).json()["state"] for i in ids]

        loaded: list[Sample] = []
        waves = 0
        while waves < max_waves and all(state in RUNNING for state in await states()):
            loaded += await _wave(url, headers, paths, 200)
            waves += 1
        return idle, loaded, waves, await states()


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--scale", type=int, default=300)
    parser.add_argument("--max-waves", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="efimis-load-") as scratch:
        root = Path(scratch)
        sources = [root / f"firm{i}.db" for i in (1, 2)]
        for seed, path in enumerate(sources, 1):
            write_demo_source(path, scale=args.scale, seed=seed)
        print(f"two sources of {sum(row_counts(sources[0]).values()):,} rows each")
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        service = _start_service(root / "var", port)
        try:
            with _client(url) as client:
                headers = dict(client.headers)
            idle, latencies, waves, states = asyncio.run(
                _measure(url, headers, sources, args.concurrency, args.max_waves)
            )
        finally:
            service.terminate()
            service.wait(30)
    if not latencies:
        raise SystemExit("no wave ran while both imports were running: raise --scale")
    _report(f"3 waves of {args.concurrency} concurrent status requests, no job running", idle)
    _report(
        f"{waves} waves of {args.concurrency} concurrent status requests while both imports ran", latencies
    )
    print(f"imports' states when the last wave ended: {states}; load average {os.getloadavg()[0]:.1f}")


def _report(what: str, samples: list[Sample]) -> None:
    answered = [t for t in samples if isinstance(t, float)]
    errors = collections.Counter(t for t in samples if isinstance(t, str))
    print(
        f"{what}: {len(samples)} requests, p50 {statistics.median(answered) * 1000:.0f} ms, "
        f"p99 {_percentile(answered, 0.99) * 1000:.0f} ms, max {max(answered) * 1000:.0f} ms, "
        f"errors {sum(errors.values())}"
    )
    for error, count in errors.items():
        print(f"  {count} × {error}")


if __name__ == "__main__":
    main()
