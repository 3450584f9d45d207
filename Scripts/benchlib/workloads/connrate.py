"""Group connrate: wrk HTTP requests through the LB, a connection each (conn-close, conn-close-3)
or kept alive (keepalive)."""

from __future__ import annotations

import re

from benchlib.processes import run_load
from benchlib.workloads.context import Ctx, secs


def w_wrk(ctx: Ctx, port: int, close: bool) -> dict:
    argv = ["wrk", "-t1", "-c32", f"-d{secs(ctx.duration)}s", "--timeout", "2s"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(f"http://127.0.0.1:{port}/")
    out = run_load(argv, ctx.duration + 20, ctx.load_cpus)
    m = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not m or not rps:
        raise RuntimeError(f"wrk: cannot parse: {out[-300:]}")
    errors = 0
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if e:
        errors += sum(int(x) for x in e.groups())
    n = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if n:
        errors += int(n.group(1))
    return {"requests": int(m.group(1)), "req_s": float(rps.group(1)), "errors": errors}
