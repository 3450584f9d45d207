"""Group pgbench: `pgbench -S` (select-only, 16 clients) through the LB against a real PostgreSQL
that the bench starts on loopback: initdb in a temporary directory, run as the `postgres` user
when the bench runs as root (PostgreSQL refuses root) or as the bench's own user otherwise,
`pgbench -i` at scale 1, stopped by PID with the other backends. Latency percentiles come from
pgbench's per-transaction log (`-l`, microseconds)."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import statistics
import subprocess
import tempfile

from benchlib.processes import PROCS, run_load, wait_listening
from benchlib.workloads.context import Ctx, secs

PG_USER = "postgres"  # the database role pgbench connects as (made by initdb -U)
PGBENCH_CLIENTS = 16


def server_user() -> str | None:
    """The account the server runs as: postgres (root may not run it), or None for our own."""
    return "postgres" if os.geteuid() == 0 else None


def pg_bin(name: str) -> str:
    """initdb/postgres live outside PATH on Debian (/usr/lib/postgresql/V/bin)."""
    found = shutil.which(name) or next(reversed(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if not found:
        raise RuntimeError(f"{name} not found: install postgresql")
    return found


def start_postgres(tmp: str, port: int) -> subprocess.Popen:
    """initdb into a fresh directory, start the server on 127.0.0.1:PORT (unix socket in that
    directory too), load pgbench's tables at scale 1, and return the server's process."""
    user = server_user()
    data = tempfile.mkdtemp(prefix="pgdata-", dir=tmp)
    if user:
        pw = pwd.getpwnam(user)
        os.chmod(tmp, 0o755)  # the server's user must reach its directory
        os.chown(data, pw.pw_uid, pw.pw_gid)
    subprocess.run([pg_bin("initdb"), "-D", data, "-U", PG_USER, "-A", "trust", "--no-sync", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=300, user=user, cwd=data)
    argv = [pg_bin("postgres"), "-D", data, "-p", str(port), "-k", data, "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=300",
            "-c", "shared_buffers=64MB"]
    proc = PROCS.start("backend-postgres", argv, tmp, user=user)
    wait_listening(port, proc, timeout=60)
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, PG_USER],
                   check=True, capture_output=True, timeout=300)
    return proc


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def w_pgbench(ctx: Ctx, port: int) -> dict:
    logdir = tempfile.mkdtemp(prefix="pgbench-log-")
    try:
        argv = ["pgbench", "-S", "-n", "-c", str(PGBENCH_CLIENTS), "-j", "1", "-T", str(secs(ctx.duration)),
                "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, "-l", "--log-prefix", os.path.join(logdir, "tx"),
                PG_USER]
        out = run_load(argv, ctx.duration + 60, ctx.load_cpus)
        m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
        done = re.search(r"number of transactions actually processed: (\d+)", out)
        if not m or not done:
            raise RuntimeError(f"pgbench: cannot parse: {out[-300:]}")
        latencies = []
        for path in glob.glob(os.path.join(logdir, "tx*")):
            with open(path) as f:
                latencies += [float(line.split()[2]) for line in f if line.strip()]
        latencies.sort()
        res = {"requests": int(done.group(1)), "req_s": float(m.group(1))}
        if latencies:
            res.update(p50_us=statistics.median(latencies), p99_us=percentile(latencies, 0.99))
        return res
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
