"""The workloads: what each one measures (WORKLOADS) and how one run of one is measured
(run_workload). The load generator of each group lives in the module named for the group:
bulk (iperf3), latency (sockperf), connrate (wrk), redis (redis-benchmark), pgbench (pgbench -S
against PostgreSQL), scale (idle connections opened from this process), tls (benchlib/tlsload.py
through a terminating LB)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from benchlib.backends import HTTP_POOL
from benchlib.lbstart import Running
from benchlib.procfs import cpu_split, tcp_retransmitted_segments
from benchlib.workloads.bulk import w_iperf
from benchlib.workloads.connrate import w_wrk
from benchlib.workloads.context import Ctx
from benchlib.workloads.latency import w_sockperf
from benchlib.workloads.pgbench import w_pgbench
from benchlib.workloads.redis import w_redis
from benchlib.workloads.scale import w_idle
from benchlib.workloads.tls import w_tls


@dataclass
class Workload:
    name: str
    group: str
    backend: str
    primary: tuple[str, bool]          # metric, higher is better
    cost: str | None                   # LB CPU metric (lower is better)
    columns: list[str]
    pool: int = 1                      # backends the LB balances over (ports of `backend`)
    tls: str = ""                      # the LB terminates TLS with a certificate of this key kind (ecdsa, rsa)


REQUEST_COLUMNS = ["req_s", "p50_us", "p99_us", "cpu_us_per_req", "lb_cores", "lb_user_pct"]
# redis workload name -> (operation, clients, pipeline depth)
REDIS_RUNS = {"redis-set": ("set", 50, 1), "redis-get": ("get", 50, 1), "redis-set-c200": ("set", 200, 1),
              "redis-get-c200": ("get", 200, 1), "redis-pipelined": ("get", 50, 16)}

WORKLOADS = [
    Workload("bulk-1", "bulk", "iperf3", ("gbit_s", True), "cpu_s_per_gb", ["gbit_s", "cpu_s_per_gb", "retrans", "lb_cores", "lb_user_pct"]),
    Workload("bulk-1-R", "bulk", "iperf3", ("gbit_s", True), "cpu_s_per_gb", ["gbit_s", "cpu_s_per_gb", "retrans", "lb_cores", "lb_user_pct"]),
    Workload("bulk-4", "bulk", "iperf3", ("gbit_s", True), "cpu_s_per_gb", ["gbit_s", "cpu_s_per_gb", "retrans", "lb_cores", "lb_user_pct"]),
    Workload("bulk-4-R", "bulk", "iperf3", ("gbit_s", True), "cpu_s_per_gb", ["gbit_s", "cpu_s_per_gb", "retrans", "lb_cores", "lb_user_pct"]),
    Workload("latency", "latency", "sockperf", ("p50_us", False), "cpu_us_per_exchange",
             ["p50_us", "p99_us", "p999_us", "cpu_us_per_exchange", "lb_cores", "lb_user_pct"]),
    Workload("conn-close", "connrate", "http", ("req_s", True), "cpu_us_per_req", ["req_s", "cpu_us_per_req", "lb_cores", "lb_user_pct", "errors"]),
    Workload("conn-close-3", "connrate", "http", ("req_s", True), "cpu_us_per_req", ["req_s", "cpu_us_per_req", "lb_cores", "lb_user_pct", "errors"],
             pool=HTTP_POOL),
    Workload("keepalive", "connrate", "http", ("req_s", True), "cpu_us_per_req", ["req_s", "cpu_us_per_req", "lb_cores", "lb_user_pct", "errors"]),
    # small request/response (issue 25): rate, latency percentiles and LB CPU per request
    *[Workload(name, group, backend, ("req_s", True), "cpu_us_per_req", REQUEST_COLUMNS)
      for name, group, backend in [("redis-set", "redis", "redis"), ("redis-get", "redis", "redis"),
                                   ("redis-set-c200", "redis", "redis"), ("redis-get-c200", "redis", "redis"),
                                   ("redis-pipelined", "redis", "redis"), ("pgbench", "pgbench", "postgres")]],
    Workload("idle-conns", "scale", "http", ("kib_per_conn", False), None,
             ["kib_per_conn", "rss_before_mib", "rss_after_mib", "conns"]),
    *[Workload(f"tls-{how}-{kind}", "tls", "echo", ("hs_s", True), "cpu_us_per_handshake",
               ["hs_s", "cpu_us_per_handshake", "resumed_pct", "lb_cores", "lb_user_pct", "errors", "load1"], tls=kind)
      for how in ("hs", "resume") for kind in ("ecdsa", "rsa")],
    Workload("tls-bulk", "tls", "discard", ("gbit_s", True), "cpu_s_per_gb",
             ["gbit_s", "cpu_s_per_gb", "lb_cores", "lb_user_pct", "load1"], tls="ecdsa"),
    Workload("tls-latency", "tls", "echo", ("p50_us", False), "cpu_us_per_exchange",
             ["p50_us", "p99_us", "p999_us", "cpu_us_per_exchange", "lb_cores", "lb_user_pct", "load1"], tls="ecdsa"),
]


def run_workload(w: Workload, ctx: Ctx, run: Running) -> dict:
    """Runs `w` through `run` and returns its metrics, with the LB's CPU time over the run
    (every process and thread of it) and the per-unit costs derived from it."""
    port = run.port
    pids = run.pids()
    user0, system0 = cpu_split(pids)
    retrans0 = tcp_retransmitted_segments()
    t0 = time.monotonic()
    if w.group == "bulk":
        res = w_iperf(ctx, port, 4 if w.name.startswith("bulk-4") else 1, w.name.endswith("-R"))
    elif w.name == "latency":
        res = w_sockperf(ctx, port)
    elif w.name in ("conn-close", "conn-close-3", "keepalive"):
        res = w_wrk(ctx, port, w.name.startswith("conn-close"))
    elif w.name in REDIS_RUNS:
        res = w_redis(ctx, port, *REDIS_RUNS[w.name])
    elif w.name == "pgbench":
        res = w_pgbench(ctx, port)
    elif w.name == "idle-conns":
        res = w_idle(ctx, run)
    elif w.group == "tls":
        res = w_tls(ctx, port, w.name)
    else:
        raise ValueError(w.name)
    res["wall_s"] = time.monotonic() - t0
    res["load1"] = os.getloadavg()[0]  # the shared machine's load beside every figure
    res["retrans"] = tcp_retransmitted_segments() - retrans0
    pids = sorted(set(pids) | set(run.pids()))
    if pids:
        user1, system1 = cpu_split(pids)
        user, cpu = user1 - user0, (user1 + system1) - (user0 + system0)
        res["lb_cpu_s"] = cpu
        if cpu > 0:
            # the LB's own code (and its libraries) against the kernel work it asks for
            res["lb_user_pct"] = 100.0 * user / cpu
        res["lb_cores"] = cpu / res["wall_s"] if res["wall_s"] > 0 else 0.0
        if "bytes" in res and res["bytes"]:
            res["cpu_s_per_gb"] = cpu / (res["bytes"] / 1e9)
        if res.get("requests"):
            res["cpu_us_per_req"] = cpu * 1e6 / res["requests"]
        if res.get("handshakes"):
            res["cpu_us_per_handshake"] = cpu * 1e6 / res["handshakes"]
        if res.get("exchanges"):
            res["cpu_us_per_exchange"] = cpu * 1e6 / res["exchanges"]
    return res
