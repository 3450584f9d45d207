"""Group latency: sockperf ping-pong of 64-byte messages through the LB, round-trip percentiles."""

from __future__ import annotations

import re

from benchlib.processes import run_load
from benchlib.workloads.context import Ctx, secs


def w_sockperf(ctx: Ctx, port: int) -> dict:
    argv = ["sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1", "-p", str(port), "-t", str(secs(ctx.duration)),
            "-m", "64", "--full-rtt"]
    out = run_load(argv, ctx.duration + 20, ctx.load_cpus)
    out = re.sub(r"\x1b\[[0-9;]*m", "", out)

    def pct(p: str) -> float:
        m = re.search(rf"percentile {p}\s*=\s*([\d.]+)", out)
        if not m:
            raise RuntimeError(f"sockperf: no percentile {p} in output")
        return float(m.group(1))

    total = re.search(r"\[Total Run\].*?ReceivedMessages=(\d+)", out)
    return {"p50_us": pct("50.000"), "p99_us": pct("99.000"), "p999_us": pct("99.900"),
            "exchanges": int(total.group(1)) if total else 0}
