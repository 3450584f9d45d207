#!/usr/bin/env python3
"""Where a new connection's CPU goes: HAProxy beside Switchyard (issue 16's profile evidence).

Runs wrk with one new connection per request (`Connection: close`) through each load balancer,
alternating them, the LB pinned to core 1 and wrk and the nginx backend to core 0, exactly as
`Scripts/bench`'s conn-close workload (it reuses that script's backends, LB configurations and
process handling). For every run and LB it reads:

  cpu_us      LB CPU-µs per request (utime+stime of every thread, /proc/PID/stat)
  segs        TCP segments per request, every socket on the host (/proc/net/snmp OutSegs; on
              loopback: both connections, both ways)
  data_segs   segments that carried data, SYN or FIN (TcpExtTCPOrigDataSent)

then, once per LB, profiles a run with `perf record -e cpu-clock` and splits the LB's CPU per
request into kernel TCP/IP (with softirq, memory and locks), system calls and descriptors,
epoll or io_uring, and user space; and counts its system calls per connection with
`perf trace -s` (per `socket(2)`: one per connection for both).

Prints markdown tables of medians. Every process is stopped by PID; every load is bounded.
Usage: Benchmarks/conn-cost/run.py [--runs 7] [--duration 4] [--backends 1|3] [--switchyard BIN]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Scripts"))
import bench  # noqa: E402  (Scripts/bench.py: backends, LB configurations, process handling)

CATEGORIES = ("kernel TCP/IP, softirq, memory, locks", "system calls, descriptors", "epoll / io_uring", "user space")


def snmp() -> dict[str, int]:
    """Tcp and TcpExt counters of the host."""
    out: dict[str, int] = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        with open(path) as f:
            rows = [line.split() for line in f]
        for names, values in zip(rows[::2], rows[1::2]):
            if names[0] in ("Tcp:", "TcpExt:"):
                out.update({f"{names[0]}{n}": int(v) for n, v in zip(names[1:], values[1:])})
    return out


def category(kernel: bool, symbol: str) -> str:
    if not kernel:
        return CATEGORIES[3]
    if symbol.startswith(("io_", "__io_")) or "epoll" in symbol or symbol.startswith("ep_"):
        return CATEGORIES[2]
    if re.search(r"syscall|^entry_|^__x64_sys|^__do_sys|^do_sys|fput|fget|^fd_|alloc_fd|file|filp|inode|dnotify|"
                 r"iput|dentry|d_alloc|sock_alloc|task_work|exit_to_user|close_fd", symbol):
        return CATEGORIES[1]
    return CATEGORIES[0]


def profile(pids: list[int], seconds: float, path: str) -> dict[str, float]:
    """CPU nanoseconds of `pids` over `seconds`, by category."""
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-p", ",".join(map(str, pids)), "-o", path,
                    "--", "sleep", str(seconds)], capture_output=True, timeout=seconds + 30)
    report = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", "dso,sym", "--stdio", "-g", "none"],
                            capture_output=True, text=True, timeout=120).stdout
    m = re.search(r"Event count \(approx.\): (\d+)", report)
    if not m:
        raise RuntimeError("perf report: no event count (is perf allowed? kernel.perf_event_paranoid)")
    total = float(m.group(1))
    split = dict.fromkeys(CATEGORIES, 0.0)
    for line in report.splitlines():
        row = re.match(r"\s+([\d.]+)%\s+\S+\s+\[(.)\]\s+(\S+)", line)
        if row:
            split[category(row.group(2) == "k", row.group(3))] += float(row.group(1)) / 100 * total
    return split


def syscalls_per_connection(pids: list[int], seconds: float, path: str) -> dict[str, float]:
    subprocess.run(["perf", "trace", "-s", "-p", ",".join(map(str, pids)), "-o", path, "--", "sleep", str(seconds)],
                   capture_output=True, timeout=seconds + 30)
    counts: dict[str, int] = {}
    with open(path, errors="replace") as f:
        for line in f:
            row = re.match(r"\s+([a-z_0-9]+)\s+(\d+)\s+\d+\s+[\d.]+", line)
            if row:
                counts[row.group(1)] = counts.get(row.group(1), 0) + int(row.group(2))
    connections = counts.get("socket", 0)
    if not connections:
        return {}
    return {name: n / connections for name, n in sorted(counts.items(), key=lambda kv: -kv[1])
            if name not in ("rt_sigtimedwait", "poll", "futex", "nanosleep", "clock_nanosleep") and n / connections >= 0.05}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per load")
    ap.add_argument("--backends", type=int, default=1, choices=(1, 3))
    ap.add_argument("--switchyard", metavar="BIN", help="switchyard binary (default: build the release binary)")
    ap.add_argument("--lbs", default="haproxy-1t,switchyard-auto-1w", help="comma list of Scripts/bench LB names")
    args = ap.parse_args()
    if args.runs < 1 or args.duration <= 0:
        raise SystemExit("--runs and --duration must be positive")
    if not shutil.which("perf"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "linux-perf"], check=True, timeout=1800)
    bench.ensure_tools(no_install=False, need_matplotlib=False)
    wanted = args.lbs.split(",")
    lbs = [lb for lb in bench.all_lbs(2) if lb.name in wanted]
    if not lbs:
        raise SystemExit(f"no such LB: {args.lbs}")
    binary = os.path.abspath(args.switchyard) if args.switchyard else bench.build_switchyard()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = tempfile.mkdtemp(prefix="switchyard-conn-cost-")
    samples: dict[str, list[dict[str, float]]] = {lb.name: [] for lb in lbs}
    profiles: dict[str, dict[str, float]] = {}
    syscalls: dict[str, dict[str, float]] = {}
    try:
        backends = bench.start_backends({"http"}, tmp, hard)
        bench.set_affinity(backends.pids(), {0})
        ports = iter(bench.free_ports(args.runs * len(lbs) + 2 * len(lbs) + 4, 23000))
        ctx = bench.Ctx(args.duration, {0}, 0, backends.ports["http"])
        pool = backends.pool("http", args.backends)
        for rep in range(args.runs + 1):
            for lb in lbs[rep % len(lbs):] + lbs[:rep % len(lbs)]:
                run = bench.start_lb(lb, True, pool, next(ports), tmp, 4000, hard, binary)  # 32 clients at a time
                try:
                    time.sleep(0.5)
                    pids = run.pids()
                    if rep == args.runs:  # the profiled run: perf over the middle of the load
                        started = time.monotonic()
                        load = subprocess.Popen(["taskset", "-c", "0", "wrk", "-t1", "-c32", f"-d{int(args.duration) + 2}s",
                                                 "--timeout", "2s", "-H", "Connection: close",
                                                 f"http://127.0.0.1:{run.port}/"], stdout=subprocess.PIPE, text=True)
                        time.sleep(1)
                        split = profile(pids, args.duration - 1, os.path.join(tmp, f"{lb.name}.perf"))
                        syscalls[lb.name] = syscalls_per_connection(pids, 0.5, os.path.join(tmp, f"{lb.name}.trace"))
                        out, _ = load.communicate(timeout=args.duration + 30)
                        rate = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
                        requests = rate * (args.duration - 1)
                        profiles[lb.name] = {k: v / 1000 / requests for k, v in split.items()}
                        bench.log(f"{lb.name}: profiled ({time.monotonic() - started:.0f} s)")
                        continue
                    user0, system0 = bench.cpu_split(pids)
                    counters0 = snmp()
                    res = bench.w_wrk(ctx, run.port, close=True)
                    counters1 = snmp()
                    user1, system1 = bench.cpu_split(pids)
                    n = res["requests"]
                    sample = {"cpu_us": ((user1 + system1) - (user0 + system0)) * 1e6 / n,
                              "segs": (counters1["Tcp:OutSegs"] - counters0["Tcp:OutSegs"]) / n,
                              "data_segs": (counters1["TcpExt:TCPOrigDataSent"] - counters0["TcpExt:TCPOrigDataSent"]) / n,
                              "req_s": res["req_s"]}
                    samples[lb.name].append(sample)
                    bench.log(f"run {rep} {lb.name}: " + " ".join(f"{k}={v:.2f}" for k, v in sample.items()))
                finally:
                    bench.PROCS.stop(run.proc)
    finally:
        bench.PROCS.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    ref = lbs[0].name
    med = {name: {k: statistics.median(s[k] for s in rows) for k in rows[0]} for name, rows in samples.items() if rows}
    print(f"## New connection per request ({args.backends} backend{'s' if args.backends > 1 else ''}), "
          f"medians of {args.runs} runs of {args.duration:g} s\n")
    print(f"| LB | req/s | LB CPU-µs/req | ×{ref} | segments/req | data segments/req |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, m in med.items():
        print(f"| {name} | {m['req_s']:,.0f} | {m['cpu_us']:.1f} | {m['cpu_us'] / med[ref]['cpu_us']:.2f} | "
              f"{m['segs']:.2f} | {m['data_segs']:.2f} |")
    print(f"\n## Where it goes (one profiled run each, `perf record -e cpu-clock`), CPU-µs per request\n")
    print("| | " + " | ".join(profiles) + " |")
    print("|---|" + "---:|" * len(profiles))
    for cat in CATEGORIES:
        print(f"| {cat} | " + " | ".join(f"{p[cat]:.1f}" for p in profiles.values()) + " |")
    print("| total | " + " | ".join(f"{sum(p.values()):.1f}" for p in profiles.values()) + " |")
    print(f"\n## System calls per connection (`perf trace -s`, 0.5 s of the load)\n")
    for name, calls in syscalls.items():
        total = sum(calls.values())
        print(f"- {name}: {total:.1f}: " + ", ".join(f"{k} {v:.2f}" for k, v in calls.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
