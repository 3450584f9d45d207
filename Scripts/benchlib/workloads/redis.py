"""Group redis: redis-benchmark SET or GET through the LB, with the client count and pipeline
depth of the workload (redis-get / redis-set: -c 50; -c200: 200 clients; redis-pipelined: -P 16),
its rate and latency percentiles from redis-benchmark's --csv line."""

from __future__ import annotations

import csv
import io

from benchlib.processes import run_load
from benchlib.workloads.context import Ctx

# Requests a run asks for per second of --duration: about what one LB worker serves here, so that a
# run lasts about --duration (a pipelined client sends 16 at a time and goes about ten times faster).
REQUESTS_PER_SECOND = 25_000
PIPELINED_REQUESTS_PER_SECOND = 200_000


def redis_argv(port: int, op: str, clients: int, pipeline: int, requests: int) -> list[str]:
    return ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", op, "-n", str(requests),
            "-c", str(clients), "-P", str(pipeline), "--csv"]


def parse_redis_csv(out: str) -> dict:
    """rate and p50/p99 (µs) of the last test in redis-benchmark's --csv output (redis 7: test, rps,
    avg, min, p50, p95, p99, max latency in ms)."""
    rows = [r for r in csv.reader(io.StringIO(out.replace("\r", "\n"))) if len(r) >= 8 and r[0] != "test"]
    if not rows:
        raise RuntimeError(f"redis-benchmark: cannot parse: {out[-300:]}")
    row = rows[-1]
    return {"req_s": float(row[1]), "p50_us": float(row[4]) * 1000, "p99_us": float(row[6]) * 1000}


def w_redis(ctx: Ctx, port: int, op: str, clients: int = 50, pipeline: int = 1) -> dict:
    rate = PIPELINED_REQUESTS_PER_SECOND if pipeline > 1 else REQUESTS_PER_SECOND
    n = max(2000, int(rate * ctx.duration))
    out = run_load(redis_argv(port, op, clients, pipeline, n), max(30.0, ctx.duration * 10), ctx.load_cpus)
    return {"requests": n, **parse_redis_csv(out)}
