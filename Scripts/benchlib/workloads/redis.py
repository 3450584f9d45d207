"""Group redis: redis-benchmark SET or GET through the LB."""

from __future__ import annotations

import re

from benchlib.processes import run_load
from benchlib.workloads.context import Ctx


def w_redis(ctx: Ctx, port: int, op: str) -> dict:
    n = max(2000, int(20000 * ctx.duration))
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", op, "-n", str(n), "-c", "32", "-q"]
    out = run_load(argv, max(30.0, ctx.duration * 10), ctx.load_cpus)
    m = re.findall(r"([A-Z]+): ([\d.]+) requests per second", out.replace("\r", "\n"))
    if not m:
        raise RuntimeError(f"redis-benchmark: cannot parse: {out[-300:]}")
    return {"requests": n, "req_s": float(m[-1][1])}
