"""Group bulk: iperf3 streams through the LB (bulk-1, bulk-4, and -R for the reverse direction)."""

from __future__ import annotations

import json
import time

from benchlib.processes import run_load
from benchlib.workloads.context import Ctx, secs


def w_iperf(ctx: Ctx, port: int, streams: int, reverse: bool) -> dict:
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(secs(ctx.duration)), "-P", str(streams),
            "-J", "--connect-timeout", "3000"] + (["-R"] if reverse else [])
    last = None
    for attempt in range(3):  # the iperf3 server may still be finishing the previous test
        try:
            out = run_load(argv, ctx.duration + 20, ctx.load_cpus)
            data = json.loads(out)
            if "error" in data:
                raise RuntimeError(data["error"])
            recv = data["end"]["sum_received"]
            return {"bytes": recv["bytes"], "gbit_s": recv["bits_per_second"] / 1e9}
        except (RuntimeError, ValueError, KeyError) as exc:
            last = exc
            time.sleep(1 + attempt)
    raise RuntimeError(f"iperf3: {last}")
