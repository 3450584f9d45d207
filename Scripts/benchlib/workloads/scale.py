"""Group scale: the LB's resident memory per idle connection (idle-conns)."""

from __future__ import annotations

import socket
import time

from benchlib.lbstart import Running
from benchlib.procfs import TCP_ESTABLISHED, rss_kib, tcp_sockets
from benchlib.workloads.context import Ctx


def w_idle(ctx: Ctx, run: Running) -> dict:
    """Open ctx.conns idle connections through the LB from this process; LB RSS before/after."""
    pids = run.pids()
    if not pids:
        raise RuntimeError("skipped: no LB process to measure")
    time.sleep(0.3)
    before = rss_kib(pids)
    socks: list[socket.socket] = []
    deadline = time.monotonic() + 60 + ctx.duration
    try:
        while len(socks) < ctx.conns and time.monotonic() < deadline:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", run.port))
            except OSError:
                s.close()
                if run.proc is not None and run.proc.poll() is not None:
                    raise RuntimeError("LB died while opening connections")
                time.sleep(0.05)
                continue
            socks.append(s)
        # wait until the LB has opened its upstream side of (nearly) every connection
        upstream = 0
        while time.monotonic() < deadline:
            upstream = sum(1 for _, rp, st in tcp_sockets() if rp == ctx.backend_port and st == TCP_ESTABLISHED)
            if upstream >= len(socks):
                break
            time.sleep(0.2)
        time.sleep(max(0.5, min(ctx.duration, 2.0)))
        after = rss_kib(run.pids())
        alive = run.proc is not None and run.proc.poll() is None
    finally:
        for s in socks:
            s.close()
    if not alive:
        raise RuntimeError("LB died holding idle connections")
    n = len(socks)
    return {"conns": n, "upstream_established": upstream, "rss_before_mib": before / 1024,
            "rss_after_mib": after / 1024, "kib_per_conn": (after - before) / n if n else float("nan")}
