"""`Scripts/bench evidence`: where a small request's time goes (issue 25). For one redis GET
run (-c 50) through each load balancer, pinned as the bench pins (LB on core 1, redis and the
client on core 0), it counts over a window of steady traffic, per request:

- TCP segments on each leg, data and pure ACKs (`ss -tin` segs_out/data_segs_out of every
  socket of the leg, both ends, read at the start and end of the window), and the host's
  TcpExt counters that say how ACKs were sent (/proc/net/netstat, what `nstat` reads);
- the LB's system calls, its io_uring_enter or epoll_wait calls, and its context switches and
  wake-ups (`perf stat` tracepoints on the LB's process, when perf works), and its busiest
  thread's voluntary context switches (/proc/PID/task/TID/status, which works everywhere);
- the inter-processor interrupts each core received (/proc/interrupts RES and CAL): waking a
  sleeping thread on the other core costs one, paid by the waker's core too;
- the LB's CPU time per request, and the wake-up delay of its busiest thread (`perf sched`);
- after the traffic stops, the LB's idle CPU (% of a core, from /proc/PID/task/TID/schedstat).

Each LB runs the same load, one after the other; the figures are ratios of counts, so the
noise of a shared machine moves them less than it moves rates. Every process is stopped by PID.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

from benchlib.backends import start_backends
from benchlib.build import build_switchyard
from benchlib.lbconfigs import all_lbs, with_baseline
from benchlib.lbstart import start_lb
from benchlib.log import log
from benchlib.processes import PROCS, free_ports, pinned, set_affinity, stop_all_on_exit
from benchlib.procfs import cpu_split
from benchlib.report import fmt

NETSTAT_KEYS = ["TcpExtDelayedACKs", "TcpExtTCPHPAcks", "TcpExtTCPPureAcks", "TcpExtTCPHPHits",
                "TcpExtTCPAutoCorking", "TcpExtTCPBacklogCoalesce"]
PERF_EVENTS = ["raw_syscalls:sys_enter", "syscalls:sys_enter_io_uring_enter", "syscalls:sys_enter_epoll_wait",
               "sched:sched_switch"]


def redis_commands(port: int) -> int:
    """total_commands_processed of the redis on `port` (INFO stats, asked directly)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"INFO stats\r\n")
        data = b""
        while b"total_commands_processed" not in data or not data.endswith(b"\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(re.search(rb"total_commands_processed:(\d+)", data).group(1))


def host_counters() -> dict[str, int]:
    """TcpExt* and Tcp* counters of /proc/net/netstat and /proc/net/snmp, as nstat names them."""
    out = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        with open(path) as f:
            lines = f.read().splitlines()
        for head, values in zip(lines[::2], lines[1::2]):
            prefix = head.split(":")[0]
            for k, v in zip(head.split()[1:], values.split()[1:]):
                out[prefix + k] = int(v)
    return out


def interrupts() -> dict[str, list[int]]:
    """Per-CPU counts of the rescheduling (RES) and function-call (CAL) inter-processor
    interrupts (/proc/interrupts): a sleeping thread woken from another CPU costs one."""
    out = {}
    with open("/proc/interrupts") as f:
        cpus = len(f.readline().split())
        for line in f:
            parts = line.split()
            if parts and parts[0] in ("RES:", "CAL:"):
                out[parts[0][:-1]] = [int(x) for x in parts[1:1 + cpus]]
    return out


def leg_segments(ports: set[int]) -> dict[str, int]:
    """Sum over every TCP socket with a local or peer port in `ports` of segs_out and
    data_segs_out (`ss -tin`)."""
    out = subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True, text=True, timeout=30).stdout
    segs = data = 0
    lines = out.splitlines()
    for head, info in zip(lines[::2], lines[1::2]):
        fields = head.split()
        local, peer = int(fields[2].rsplit(":", 1)[1]), int(fields[3].rsplit(":", 1)[1])
        if local not in ports and peer not in ports:
            continue
        m = re.search(r"\bsegs_out:(\d+)", info)
        d = re.search(r"\bdata_segs_out:(\d+)", info)
        segs += int(m.group(1)) if m else 0
        data += int(d.group(1)) if d else 0
    return {"segs": segs, "data": data}


def thread_files(pids: list[int], name: str):
    """(tid, text of /proc/PID/task/TID/NAME) of every thread of the processes still there."""
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/{name}") as f:
                    yield int(tid), f.read()
            except OSError:
                pass


def thread_switches(pids: list[int]) -> dict[int, tuple[int, int, int]]:
    """tid -> (voluntary, nonvoluntary context switches, utime+stime ticks) of every thread."""
    out = {}
    stats = dict(thread_files(pids, "stat"))
    for tid, status in thread_files(pids, "status"):
        try:
            stat = stats[tid]
            fields = stat[stat.rindex(")") + 2:].split()
            out[tid] = (int(re.search(r"voluntary_ctxt_switches:\s*(\d+)", status).group(1)),
                        int(re.search(r"nonvoluntary_ctxt_switches:\s*(\d+)", status).group(1)),
                        int(fields[11]) + int(fields[12]))
        except (KeyError, AttributeError, ValueError):
            pass
    return out


def run_nanoseconds(pids: list[int]) -> int:
    """CPU time of every thread of the processes, in nanoseconds (/proc/PID/task/TID/schedstat,
    first field: finer than the 10 ms ticks of /proc/PID/stat)."""
    total = 0
    for _, text in thread_files(pids, "schedstat"):
        try:
            total += int(text.split()[0])
        except (ValueError, IndexError):
            pass
    return total


def perf_works() -> bool:
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "stat", "-e", PERF_EVENTS[1], "--", "true"], capture_output=True, timeout=30)
    return r.returncode == 0


def perf_stat(pid: int, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(["perf", "stat", "-x", ",", "-e", ",".join(PERF_EVENTS), "-p", str(pid), "--",
                             "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def parse_perf_stat(err: str) -> dict[str, int]:
    out = {}
    for line in err.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0].strip().isdigit():
            out[parts[2]] = int(parts[0])
    return out


def sched_delay(pid_tid: int, seconds: float, tmp: str) -> dict[str, float]:
    """Average and maximum wake-up-to-run delay (ms) of thread `pid_tid` over `seconds`
    (perf sched record + perf sched latency)."""
    data = os.path.join(tmp, f"sched-{pid_tid}.data")
    subprocess.run(["perf", "sched", "record", "-o", data, "--", "sleep", str(seconds)],
                   capture_output=True, timeout=seconds + 60)
    out = subprocess.run(["perf", "sched", "latency", "-i", data, "-p"], capture_output=True, text=True,
                         timeout=120).stdout
    os.unlink(data)
    for line in out.splitlines():
        if f":{pid_tid} " in line or line.strip().split("|")[0].strip().endswith(f":{pid_tid}"):
            cols = [c.strip() for c in line.split("|")]
            avg = re.search(r"avg:\s*([\d.]+)", line)
            mx = re.search(r"max:\s*([\d.]+)", line)
            switches = re.search(r"\|\s*(\d+)\s*\|\s*avg", line)
            return {"wake_delay_avg_us": float(avg.group(1)) * 1000 if avg else float("nan"),
                    "wake_delay_max_us": float(mx.group(1)) * 1000 if mx else float("nan"),
                    "sched_switches": int(switches.group(1)) if switches else 0, "task": cols[0]}
    return {}


def core_busy() -> list[tuple[int, int]]:
    """(busy, total) jiffies of each CPU, from /proc/stat."""
    cores = []
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + (v[4] if len(v) > 4 else 0)
                cores.append((sum(v) - idle, sum(v)))
    return cores


def measure(lb, backends, port: int, switchyard_bin: str | None, tmp: str, window: float, use_perf: bool,
            maxconn: int, hard: int, idle: float, clients: int = 50) -> dict:
    redis_port = backends.ports["redis"]
    run = start_lb(lb, True, backends.pool("redis", 1), port, tmp, maxconn, hard, switchyard_bin)
    load = None
    try:
        n = int(60_000 * (window * (3 if use_perf else 2) + 4))
        load = subprocess.Popen(pinned(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "get", "-n",
                                        str(n), "-c", str(clients), "-q"], {0}),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # every client connected, steady traffic
        pids = run.pids()
        r0, c0, net0 = redis_commands(redis_port), cpu_split(pids), host_counters()
        client0, backend0 = leg_segments({port}), leg_segments({redis_port})
        th0, irq0, busy0 = thread_switches(pids), interrupts(), core_busy()
        stat = perf_stat(pids[0], window) if use_perf else None
        t0 = time.monotonic()
        if stat:
            _, err = stat.communicate(timeout=window + 60)
        else:
            time.sleep(window)
        wall = time.monotonic() - t0
        r1, c1, net1 = redis_commands(redis_port), cpu_split(pids), host_counters()
        client1, backend1 = leg_segments({port}), leg_segments({redis_port})
        th1, irq1, busy1 = thread_switches(pids), interrupts(), core_busy()
        requests = max(1, r1 - r0)
        res = {"req_s": requests / wall, "cpu_us_per_req": ((c1[0] + c1[1]) - (c0[0] + c0[1])) * 1e6 / requests}
        for leg, a, b in (("client", client0, client1), ("backend", backend0, backend1)):
            segs, data = b["segs"] - a["segs"], b["data"] - a["data"]
            res[f"{leg}_segs_per_req"] = segs / requests
            res[f"{leg}_acks_per_req"] = (segs - data) / requests
        for k in NETSTAT_KEYS:
            res[k] = (net1.get(k, 0) - net0.get(k, 0)) / requests
        for cpu, (a, b) in enumerate(zip(busy0, busy1)):
            # How busy each core was: core 0 holds the client and redis, core 1 the LB.
            res[f"core{cpu}_busy_pct"] = 100.0 * (b[0] - a[0]) / max(1, b[1] - a[1])
        busiest = max(th1, key=lambda t: th1[t][2] - th0.get(t, (0, 0, 0))[2])
        res["worker_vcsw_per_req"] = (th1[busiest][0] - th0[busiest][0]) / requests
        res["worker_ivcsw_per_req"] = (th1[busiest][1] - th0[busiest][1]) / requests
        for kind in irq1:
            for cpu in (0, 1):
                if cpu < len(irq1[kind]):
                    res[f"{kind}_cpu{cpu}_per_req"] = (irq1[kind][cpu] - irq0[kind][cpu]) / requests
        if stat:
            counts = parse_perf_stat(err)
            for ev in PERF_EVENTS:
                if ev in counts:
                    res[ev.split(":")[1] + "_per_req"] = counts[ev] / requests
            res.update(sched_delay(busiest, min(window, 1.0), tmp))
        # After the traffic: what the LB costs while idle (the bar: a worker under 1 % of a core).
        load.kill()
        load.wait(10)
        time.sleep(1.0)
        idle0, i0 = run_nanoseconds(pids), time.monotonic()
        time.sleep(idle)
        res["idle_cpu_pct"] = 100.0 * (run_nanoseconds(pids) - idle0) / 1e9 / (time.monotonic() - i0)
        return res
    finally:
        if load is not None and load.poll() is None:
            load.kill()
            load.wait(10)
        if run.proc is not None:
            PROCS.stop(run.proc)


COLUMNS = [("req_s", "req/s"), ("cpu_us_per_req", "LB CPU-µs/req"),
           ("client_segs_per_req", "client leg segs/req"), ("client_acks_per_req", "of which pure ACKs"),
           ("backend_segs_per_req", "backend leg segs/req"), ("backend_acks_per_req", "of which pure ACKs"),
           ("TcpExtDelayedACKs", "delayed ACKs/req"), ("sys_enter_per_req", "LB syscalls/req"),
           ("sys_enter_io_uring_enter_per_req", "io_uring_enter/req"), ("sys_enter_epoll_wait_per_req", "epoll_wait/req"),
           ("worker_vcsw_per_req", "worker sleeps (voluntary cs)/req"), ("worker_ivcsw_per_req", "involuntary cs/req"),
           ("sched_switch_per_req", "LB sched_switch/req"),
           ("RES_cpu1_per_req", "reschedule IPIs to the LB's core/req"), ("RES_cpu0_per_req", "to the load's core/req"),
           ("CAL_cpu1_per_req", "function-call IPIs to the LB's core/req"), ("CAL_cpu0_per_req", "to the load's core/req"), ("wake_delay_avg_us", "wake-up delay avg µs"),
           ("wake_delay_max_us", "max µs"), ("core0_busy_pct", "load's core (client + redis) busy %"),
           ("core1_busy_pct", "LB's core busy %"), ("idle_cpu_pct", "idle CPU after the traffic, % of a core")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lbs", default="haproxy-1t,switchyard-auto-1w", help="comma list of LB names (Scripts/bench's)")
    ap.add_argument("--switchyard", metavar="BIN", help="switchyard binary (default: swift build -c release)")
    ap.add_argument("--baseline", metavar="BIN", help="another switchyard binary, run as switchyard-before-...")
    ap.add_argument("--args", default="", help="extra flags for the switchyard LBs (e.g. --busy-polling)")
    ap.add_argument("--runs", type=int, default=3, help="repetitions (medians reported)")
    ap.add_argument("--window", type=float, default=2.0, help="seconds counted per run")
    ap.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default 50)")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured after each run's traffic")
    args = ap.parse_args(argv)
    wanted = [x.strip() for x in args.lbs.split(",") if x.strip()]
    lbs = [lb for lb in all_lbs(2) if lb.name in wanted]
    if args.args:
        import dataclasses
        lbs = [dataclasses.replace(lb, args=lb.args + tuple(args.args.split())) if lb.kind == "switchyard" else lb
               for lb in lbs]
    if args.baseline:
        lbs = with_baseline(lbs, os.path.abspath(args.baseline))
    switchyard_bin = os.path.abspath(args.switchyard) if args.switchyard else None
    if any(lb.kind == "switchyard" and not lb.binary for lb in lbs) and not switchyard_bin:
        switchyard_bin = build_switchyard()
    use_perf = perf_works()
    if not use_perf:
        log("perf unavailable: no syscall, enter or wake-up counts (context switches from /proc still)")
    stop_all_on_exit(PROCS)
    tmp = tempfile.mkdtemp(prefix="switchyard-evidence-")
    results: dict[str, list[dict]] = {}
    try:
        backends = start_backends({"redis"}, tmp, 65536)
        set_affinity(backends.pids(), {0})
        ports = iter(free_ports(args.runs * len(lbs) + 5, 24000))
        for rep in range(args.runs):
            for lb in lbs[rep % len(lbs):] + lbs[:rep % len(lbs)]:
                load = os.getloadavg()[0]
                res = measure(lb, backends, next(ports), switchyard_bin, tmp, args.window, use_perf, 2000, 65536,
                              args.idle, args.clients)
                res["load"] = load
                results.setdefault(lb.name, []).append(res)
                log(f"rep {rep} {lb.name}: " + " ".join(f"{k}={v:.3g}" for k, v in res.items() if isinstance(v, float)))
    finally:
        PROCS.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nredis-benchmark GET -c {args.clients}, LB pinned to core 1, {args.runs} runs x {args.window}s windows, medians; "
          f"load average {statistics.median(r['load'] for rs in results.values() for r in rs):.1f}\n")
    names = list(results)
    print("| per request | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key, label in COLUMNS:
        vals = [[r[key] for r in results[n] if isinstance(r.get(key), (int, float))] for n in names]
        if not any(vals):
            continue
        print(f"| {label} | " + " | ".join(fmt(statistics.median(v)) if v else "–" for v in vals) + " |")
    return 0
