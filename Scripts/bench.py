#!/usr/bin/env python3
"""Switchyard benchmark: switchyard vs HAProxy vs nginx stream vs direct, on loopback.

Starts loopback backends (iperf3, nginx HTTP, sockperf, redis), then for every repetition and
workload starts each selected load balancer in front of the workload's backend (alternating the
load balancers so drift hits all alike), runs one bounded load through it and reads the load
balancer's CPU time (utime+stime of every process and thread, /proc/PID/stat) before and after.

Writes to --out (default: <repo>/bench-results/, git-ignored):
  results-STAMP.md     markdown tables of medians, with ratios to haproxy-1t and to direct
  samples-STAMP.json   every raw sample, plus the medians
  ratios-STAMP.png     chart of the ratios to haproxy-1t

Every process started here is stopped by its PID (on success, error, Ctrl-C and SIGTERM), every
load has its own duration flag plus a subprocess timeout, and temporary configs and logs live in a
mktemp directory removed at the end.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import fnmatch
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
REFERENCE = "haproxy-1t"
HAPROXY_MAXPIPES = 200  # plenty for <= 4 bulk streams; bounded so maxconn fits RLIMIT_NOFILE
DIRECT = "direct"

# binary -> Debian bookworm package providing it
TOOLS = {
    "haproxy": "haproxy",
    "nginx": "nginx",
    "iperf3": "iperf3",
    "wrk": "wrk",
    "sockperf": "sockperf",
    "redis-server": "redis-server",
    "redis-benchmark": "redis-tools",
    "taskset": "util-linux",
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# /proc helpers


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()  # fields from "state" (field 3) on


def descendants(pid: int) -> list[int]:
    """pid and every live descendant (nginx master + workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """(utime, stime) of the processes (all their threads), in seconds."""
    user = system = 0
    for pid in pids:
        try:
            f = _stat_fields(pid)
            user += int(f[11])    # utime (field 14)
            system += int(f[12])  # stime (field 15)
        except (OSError, ValueError, IndexError):
            pass
    return user / CLK_TCK, system / CLK_TCK


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_KIB
        except (OSError, ValueError, IndexError):
            pass
    return total


def set_affinity(pids: list[int], cpus: set[int]) -> None:
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass


def tcp_sockets() -> list[tuple[int, int, int]]:
    """(local port, remote port, state) of every IPv4/IPv6 TCP socket."""
    out = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    out.append((int(parts[1].rsplit(":", 1)[1], 16),
                                int(parts[2].rsplit(":", 1)[1], 16), int(parts[3], 16)))
        except OSError:
            pass
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_scraper(port: int) -> None:
    """Scrapes http://127.0.0.1:PORT/metrics once a second for as long as the run lasts, as a
    Prometheus server would (a daemon thread; failures while the LB is not up yet are ignored)."""
    import threading
    import urllib.request

    def loop() -> None:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
            except Exception:
                pass
            time.sleep(1)

    threading.Thread(target=loop, daemon=True).start()


def is_listening(port: int) -> bool:
    return any(lp == port and st == 0x0A for lp, _, st in tcp_sockets())


def free_ports(count: int, start: int = 21000) -> list[int]:
    """Ports below the ephemeral range that nothing is bound to right now."""
    ports, port = [], start
    while len(ports) < count and port < 32000:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            ports.append(port)
        except OSError:
            pass
        finally:
            s.close()
        port += 1
    if len(ports) < count:
        raise RuntimeError("not enough free ports")
    return ports


# --------------------------------------------------------------------------------------------
# process management: everything we start is tracked and stopped by PID


class Procs:
    def __init__(self) -> None:
        self.live: list[tuple[str, subprocess.Popen, object]] = []

    def start(self, name: str, argv: list[str], logdir: str, cpus: set[int] | None = None) -> subprocess.Popen:
        if cpus:
            argv = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] + argv  # taskset execs: same PID
        logf = open(os.path.join(logdir, f"{name}.log"), "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        self.live.append((name, proc, logf))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        entry = next((e for e in self.live if e[1] is proc), None)
        if proc.poll() is None:
            family = descendants(proc.pid)[1:]  # workers, stopped by PID if the parent leaves them
            try:
                proc.terminate()
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
            except ProcessLookupError:
                pass
            for pid in family:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if entry:
            self.live.remove(entry)
            entry[2].close()

    def stop_all(self) -> None:
        for _, proc, _ in reversed(list(self.live)):
            try:
                self.stop(proc)
            except Exception as exc:  # keep stopping the others
                log(f"stop {proc.pid}: {exc}")


PROCS = Procs()


def _on_signal(signum, _frame):
    # handled like Ctrl-C: the finally blocks stop every process by PID, partial results are written
    raise KeyboardInterrupt(f"signal {signum}")


def run_load(argv: list[str], timeout: float, cpus: set[int] | None) -> str:
    """Run a bounded load generator; subprocess.run kills it by PID on timeout."""
    if cpus:
        argv = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] + argv
    res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{argv[0] if not cpus else argv[3]} exited {res.returncode}: "
                           f"{(res.stderr or res.stdout)[-400:].strip()}")
    return res.stdout


def wait_listening(port: int, proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited {proc.returncode} before listening on {port}")
        if is_listening(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


# --------------------------------------------------------------------------------------------
# setup: packages, matplotlib, switchyard build


def ensure_tools(no_install: bool, need_matplotlib: bool) -> None:
    missing = sorted({pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)})
    if not os.path.exists(NGINX_STREAM_MODULE):
        missing.append("libnginx-mod-stream")
    if missing:
        if no_install:
            raise SystemExit(f"missing packages: {' '.join(missing)} (and --no-install given)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        log("apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=900)
        available = []
        for pkg in missing:
            pol = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True, timeout=60).stdout
            m = re.search(r"Candidate:\s*(\S+)", pol)
            if m and m.group(1) != "(none)":
                available.append(pkg)
            else:
                log(f"package {pkg} not available; workloads needing it will fail")
        if available:
            log(f"apt-get install -y {' '.join(available)}")
            subprocess.run(["apt-get", "install", "-y", "-qq", *available], check=True, env=env, timeout=1800)
    if need_matplotlib and importlib.util.find_spec("matplotlib") is None and not no_install:
        log("pip install matplotlib")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], timeout=900)
        if r.returncode != 0:
            log("matplotlib install failed: no chart")
        importlib.invalidate_caches()


def build_switchyard() -> str:
    log("swift build -c release (this can take minutes)")
    subprocess.run(["swift", "build", "-c", "release"], cwd=REPO, check=True, timeout=3600)
    bindir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO, check=True,
                            capture_output=True, text=True, timeout=600).stdout.strip()
    return os.path.join(bindir, "switchyard")


# --------------------------------------------------------------------------------------------
# backends


@dataclass
class Backends:
    ports: dict[str, int]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # the HTTP backend listens on HTTP_POOL ports: conn-close-3 balances over all of them
    pools: dict[str, list[int]] = field(default_factory=dict)

    def pool(self, name: str, size: int) -> list[int]:
        ports = self.pools.get(name, [self.ports[name]])
        if size > len(ports):
            raise ValueError(f"backend {name} has {len(ports)} ports, {size} wanted")
        return ports[:size]

    def pids(self) -> list[int]:
        out = []
        for p in self.procs.values():
            if p.poll() is None:
                out.extend(descendants(p.pid))
        return out


HTTP_BODY = "switchyard-bench-body-0123456789abcdefghijklmnopqrstuvwxyz\n"  # 64 bytes
HTTP_POOL = 3  # ports the nginx HTTP backend listens on (one server process, like three backends)


def start_backends(needed: set[str], tmp: str, hard_nofile: int) -> Backends:
    names = sorted(needed)
    be = Backends(dict(zip(names, free_ports(len(names), 21000))))
    for name in names:
        port = be.ports[name]
        if name == "http":
            be.pools[name] = [port] + [p for p in free_ports(HTTP_POOL + 2, 22000) if p != port][:HTTP_POOL - 1]
        if name == "iperf3":
            argv = ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)]
        elif name == "http":
            conf = os.path.join(tmp, "nginx-backend.conf")
            with open(conf, "w") as f:
                f.write(f"""daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile {hard_nofile};
pid {tmp}/nginx-backend.pid;
error_log {tmp}/nginx-backend.err warn;
events {{ worker_connections {hard_nofile}; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nb-body;
    proxy_temp_path {tmp}/nb-proxy;
    fastcgi_temp_path {tmp}/nb-fcgi;
    uwsgi_temp_path {tmp}/nb-uwsgi;
    scgi_temp_path {tmp}/nb-scgi;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    client_header_timeout 300s;
    server {{
{"".join(f"        listen 127.0.0.1:{p} backlog=4096;{chr(10)}" for p in be.pools[name])}        location / {{ default_type text/plain; return 200 "{HTTP_BODY.strip()}\\n"; }}
    }}
}}
""")
            argv = ["nginx", "-p", tmp, "-e", f"{tmp}/nginx-backend.err", "-c", conf]
        elif name == "sockperf":
            argv = ["sockperf", "server", "--tcp", "-i", "127.0.0.1", "-p", str(port)]
        elif name == "redis":
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
                    "--dir", tmp, "--logfile", "", "--maxclients", "1000"]
        else:
            raise ValueError(name)
        be.procs[name] = PROCS.start(f"backend-{name}", argv, tmp)
    for name in names:
        for p in be.pools.get(name, [be.ports[name]]):
            wait_listening(p, be.procs[name])
    log("backends up: " + ", ".join(f"{n}:{p}" for n, p in be.ports.items()))
    return be


# --------------------------------------------------------------------------------------------
# load balancers


@dataclass
class LB:
    name: str
    kind: str            # direct | haproxy | nginx | switchyard
    threads: int
    pinned: bool         # LB on core 1, backends and load generators on core 0
    splice: bool = False  # haproxy: option splice-auto
    relay: str = ""      # switchyard: auto | copy | splice
    observe: str = ""    # switchyard: "" | metrics | metrics+log (the observability overhead runs)
    args: tuple[str, ...] = ()  # switchyard: further flags (the buffer-size comparison)


def all_lbs(n: int) -> list[LB]:
    lbs = [LB(DIRECT, "direct", 0, False),
           LB("haproxy-1t", "haproxy", 1, True),
           LB("haproxy-1t-splice", "haproxy", 1, True, splice=True),
           LB(f"haproxy-{n}t", "haproxy", n, False),
           LB(f"haproxy-{n}t-splice", "haproxy", n, False, splice=True),
           LB("nginx-1w", "nginx", 1, True),
           LB(f"nginx-{n}w", "nginx", n, False)]
    for w in (1, n):
        for mode in ("auto", "copy", "splice"):
            lbs.append(LB(f"switchyard-{mode}-{w}w", "switchyard", w, w == 1, relay=mode))
    # Observability overhead: metrics scraped every second, and metrics plus a JSON access log.
    lbs.append(LB("switchyard-auto-1w-metrics", "switchyard", 1, True, relay="auto", observe="metrics"))
    lbs.append(LB("switchyard-auto-1w-metrics-log", "switchyard", 1, True, relay="auto", observe="metrics+log"))
    # Issue 27's per-client controls, with limits no client here reaches: what allow + deny + a
    # per-source concurrency and rate limit cost per request (compare with switchyard-auto-*).
    controls = ("--allow", "127.0.0.0/8,::1", "--deny", "192.0.2.0/24", "--max-connections-per-source", "100000000",
                "--connection-rate-per-source", "100000000/s")
    for w in (1, n):
        lbs.append(LB(f"switchyard-auto-{w}w-controls", "switchyard", w, w == 1, relay="auto", args=controls))
    # Issue 16's buffer-size option: 16 KiB provided buffers instead of the default 64 KiB.
    for mode in ("auto", "copy"):
        lbs.append(LB(f"switchyard-{mode}-1w-16k", "switchyard", 1, True, relay=mode, args=("--buffer-size", "16")))
    return lbs


class Running:
    """A started load balancer (or none, for direct)."""

    def __init__(self, lb: LB, port: int, proc: subprocess.Popen | None):
        self.lb, self.port, self.proc = lb, port, proc

    def pids(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        return descendants(self.proc.pid)


def haproxy_config(threads: int, maxconn: int, listen_port: int, backend_ports: list[int], splice: bool = False) -> str:
    """HAProxy `mode tcp` on 127.0.0.1:listen_port, round-robin over 127.0.0.1 backend ports,
    64 KiB buffers (as Switchyard's); `splice` adds `option splice-auto`. Also Scripts/bench-memory's."""
    servers = "".join(f"    server s{i + 1} 127.0.0.1:{p}\n" for i, p in enumerate(backend_ports))
    return f"""global
    nbthread {threads}
    maxconn {maxconn}
{f"    maxpipes {HAPROXY_MAXPIPES}" if splice else ""}
    tune.bufsize 65536

defaults
    mode tcp
    timeout connect 5s
    timeout client 10m
    timeout server 10m
{"    option splice-auto" if splice else ""}

frontend fe
    bind 127.0.0.1:{listen_port}
    default_backend be

backend be
    balance roundrobin
{servers}"""


def start_lb(lb: LB, pinned: bool, backend_ports: list[int], listen_port: int, tmp: str, maxconn: int,
             hard_nofile: int, switchyard_bin: str | None) -> Running:
    """Starts `lb` balancing round-robin over `backend_ports` (one or more 127.0.0.1 ports)."""
    if lb.kind == "direct":
        return Running(lb, backend_ports[0], None)
    cpus = {1} if pinned else None
    if lb.kind == "haproxy":
        conf = os.path.join(tmp, f"{lb.name}.cfg")
        with open(conf, "w") as f:
            f.write(haproxy_config(lb.threads, maxconn, listen_port, backend_ports, splice=lb.splice))
        argv = ["haproxy", "-db", "-f", conf]
    elif lb.kind == "nginx":
        conf = os.path.join(tmp, f"{lb.name}.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
master_process on;
worker_processes {lb.threads};
worker_rlimit_nofile {hard_nofile};
pid {tmp}/{lb.name}.pid;
error_log {tmp}/{lb.name}.err warn;
load_module {NGINX_STREAM_MODULE};
events {{ worker_connections {hard_nofile}; }}
stream {{
    upstream be {{
{"".join(f"        server 127.0.0.1:{p};{chr(10)}" for p in backend_ports)}    }}
    server {{
        listen 127.0.0.1:{listen_port} backlog=4096;
        proxy_pass be;
        proxy_connect_timeout 5s;
        proxy_timeout 10m;
    }}
}}
""")
        argv = ["nginx", "-p", tmp, "-e", f"{tmp}/{lb.name}.err", "-c", conf]
    elif lb.kind == "switchyard":
        if not switchyard_bin:
            raise RuntimeError("no switchyard binary")
        argv = [switchyard_bin, "serve", "--listen", f"127.0.0.1:{listen_port}", "--workers", str(lb.threads),
                "--relay", lb.relay, "--admin-socket", os.path.join(tmp, f"{lb.name}.sock")]
        if lb.observe:
            metrics_port = free_port()
            argv += ["--metrics", f"127.0.0.1:{metrics_port}"]
            start_scraper(metrics_port)
        if "log" in lb.observe:
            argv += ["--access-log", os.path.join(tmp, f"{lb.name}.access.log"), "--access-log-format", "json"]
        argv += list(lb.args)
        argv += [f"127.0.0.1:{p}" for p in backend_ports]
    else:
        raise ValueError(lb.kind)
    proc = PROCS.start(lb.name, argv, tmp, cpus)
    try:
        wait_listening(listen_port, proc)
    except Exception as exc:
        PROCS.stop(proc)
        try:
            with open(os.path.join(tmp, f"{lb.name}.log"), errors="replace") as f:
                tail = " / ".join(f.read().strip().splitlines()[-3:])
        except OSError:
            tail = ""
        raise RuntimeError(f"{exc}: {tail}") from None
    return Running(lb, listen_port, proc)


# --------------------------------------------------------------------------------------------
# workloads: each returns (metrics, unit count for CPU normalisation or None)


@dataclass
class Workload:
    name: str
    group: str
    backend: str
    primary: tuple[str, bool]          # metric, higher is better
    cost: str | None                   # LB CPU metric (lower is better)
    columns: list[str]
    pool: int = 1                      # backends the LB balances over (ports of `backend`)


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
    Workload("redis-set", "redis", "redis", ("req_s", True), "cpu_us_per_req", ["req_s", "cpu_us_per_req", "lb_cores", "lb_user_pct"]),
    Workload("redis-get", "redis", "redis", ("req_s", True), "cpu_us_per_req", ["req_s", "cpu_us_per_req", "lb_cores", "lb_user_pct"]),
    Workload("idle-conns", "scale", "http", ("kib_per_conn", False), None,
             ["kib_per_conn", "rss_before_mib", "rss_after_mib", "conns"]),
]


@dataclass
class Ctx:
    duration: float
    load_cpus: set[int] | None
    conns: int
    backend_port: int


def _secs(d: float) -> int:
    return max(1, int(round(d)))


def w_iperf(ctx: Ctx, port: int, streams: int, reverse: bool) -> dict:
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(_secs(ctx.duration)), "-P", str(streams),
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


def w_sockperf(ctx: Ctx, port: int) -> dict:
    argv = ["sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1", "-p", str(port), "-t", str(_secs(ctx.duration)),
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


def w_wrk(ctx: Ctx, port: int, close: bool) -> dict:
    argv = ["wrk", "-t1", "-c32", f"-d{_secs(ctx.duration)}s", "--timeout", "2s"]
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


def w_redis(ctx: Ctx, port: int, op: str) -> dict:
    n = max(2000, int(20000 * ctx.duration))
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", op, "-n", str(n), "-c", "32", "-q"]
    out = run_load(argv, max(30.0, ctx.duration * 10), ctx.load_cpus)
    m = re.findall(r"([A-Z]+): ([\d.]+) requests per second", out.replace("\r", "\n"))
    if not m:
        raise RuntimeError(f"redis-benchmark: cannot parse: {out[-300:]}")
    return {"requests": n, "req_s": float(m[-1][1])}


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
            upstream = sum(1 for _, rp, st in tcp_sockets() if rp == ctx.backend_port and st == 0x01)
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


def tcp_retransmitted_segments() -> int:
    """The host's TcpRetransSegs (/proc/net/snmp): every run is on loopback, so the delta over a
    run counts the retransmissions of the client's, the LB's and the backend's sockets alike."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("RetransSegs")])


def run_workload(w: Workload, ctx: Ctx, run: Running) -> dict:
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
    elif w.name.startswith("redis-"):
        res = w_redis(ctx, port, w.name.split("-", 1)[1])
    elif w.name == "idle-conns":
        res = w_idle(ctx, run)
    else:
        raise ValueError(w.name)
    res["wall_s"] = time.monotonic() - t0
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
        if res.get("exchanges"):
            res["cpu_us_per_exchange"] = cpu * 1e6 / res["exchanges"]
    return res


# --------------------------------------------------------------------------------------------
# reporting


def medians(samples: list[dict]) -> dict:
    """(workload, lb) -> metric -> median over the successful samples."""
    acc: dict[tuple[str, str], dict[str, list[float]]] = {}
    for s in samples:
        if "error" in s:
            continue
        d = acc.setdefault((s["workload"], s["lb"]), {})
        for k, v in s["metrics"].items():
            if isinstance(v, (int, float)):
                d.setdefault(k, []).append(float(v))
    return {key: {k: statistics.median(v) for k, v in d.items()} for key, d in acc.items()}


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    a = abs(v)
    if v == int(v) and a < 1e15:
        return f"{int(v):,}"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _ratio(v, ref) -> str:
    if v is None or ref in (None, 0):
        return "–"
    return f"{v / ref:.2f}"


UNITS = {
    "gbit_s": "Gbit/s ↑", "cpu_s_per_gb": "LB CPU-s/GB ↓", "lb_cpu_s": "LB CPU-s", "lb_cores": "LB cores busy",
    "lb_user_pct": "LB user %",
    "p50_us": "RTT p50 µs ↓", "p99_us": "p99 µs", "p999_us": "p99.9 µs", "cpu_us_per_exchange": "LB CPU-µs/exch ↓",
    "req_s": "req/s ↑", "cpu_us_per_req": "LB CPU-µs/req ↓", "errors": "errors",
    "kib_per_conn": "KiB/conn ↓", "rss_before_mib": "RSS before MiB", "rss_after_mib": "RSS after MiB", "conns": "conns",
}


def markdown(med: dict, samples: list[dict], workloads: list[Workload], lbs: list[LB], meta: dict) -> str:
    lines = [f"# Switchyard benchmark {meta['stamp']}", "",
             f"runs={meta['runs']} duration={meta['duration']}s workers(N)={meta['n']} host cores={os.cpu_count()} "
             f"kernel={os.uname().release}; medians of successful samples. "
             f"`×ref` = ratio to {REFERENCE} (pinned: LB on core 1, load+backends on core 0), "
             f"`×direct` = ratio to no LB. ↑ higher is better, ↓ lower is better.", ""]
    errors = {}
    for s in samples:
        if "error" in s:
            errors.setdefault((s["workload"], s["lb"]), []).append(s["error"])
    for w in workloads:
        cols = []
        for c in w.columns:
            cols.append((c, False))
            if c == w.primary[0]:
                cols += [(c, "ref"), (c, "direct")]
            elif c == w.cost:
                cols += [(c, "ref")]
        header = ["LB"]
        for c, r in cols:
            header.append(UNITS.get(c, c) if not r else ("×ref" if r == "ref" else "×direct"))
        lines += [f"## {w.name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        ref = med.get((w.name, REFERENCE), {})
        direct = med.get((w.name, DIRECT), {})
        for lb in lbs:
            m = med.get((w.name, lb.name))
            if m is None:
                err = errors.get((w.name, lb.name))
                if err:
                    lines.append(f"| {lb.name} | failed: {err[-1][:80].replace('|', '/')} |" + " |" * (len(header) - 2))
                continue
            row = [lb.name]
            for c, r in cols:
                if not r:
                    row.append(_fmt(m.get(c)))
                elif r == "ref":
                    row.append(_ratio(m.get(c), ref.get(c)))
                else:
                    row.append(_ratio(m.get(c), direct.get(c)))
            lines.append("| " + " | ".join(row) + " |")
        if not lines[-1].startswith("| "):
            lines += ["", "_no samples_"]
        lines.append("")
    return "\n".join(lines)


def chart(med: dict, workloads: list[Workload], lbs: list[LB], path: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no chart")
        return False
    others = [lb for lb in lbs if lb.name != REFERENCE]
    cmap = plt.get_cmap("tab20")
    colors = {lb.name: cmap(i % 20) for i, lb in enumerate(others)}  # same colour in every panel
    panels = [("performance (primary metric) / haproxy-1t", lambda w: w.primary[0], workloads),
              ("LB CPU per unit of work / haproxy-1t (lower is better)", lambda w: w.cost,
               [w for w in workloads if w.cost])]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(10, 1.6 * len(workloads) + 4), 9), squeeze=False)
    for ax, (title, metric_of, wls) in zip(axes[:, 0], panels):
        shown = [lb for lb in others
                 if not (lb.kind == "direct" and metric_of is not panels[0][1])
                 and any(med.get((w.name, lb.name), {}).get(metric_of(w)) is not None for w in wls)]
        width = 0.8 / max(1, len(shown))
        for i, lb in enumerate(shown):
            xs, ys = [], []
            for j, w in enumerate(wls):
                metric = metric_of(w)
                v = med.get((w.name, lb.name), {}).get(metric)
                r = med.get((w.name, REFERENCE), {}).get(metric)
                if v is not None and r:
                    xs.append(j + (i - (len(shown) - 1) / 2) * width)
                    ys.append(v / r)
            ax.bar(xs, ys, width, label=lb.name, color=colors[lb.name])
        ax.axhline(1.0, color="black", linewidth=0.8)
        labels = [f"{w.name}\n{metric_of(w)}{'' if w.primary[1] or metric_of(w) != w.primary[0] else ' (lower better)'}"
                  for w in wls]
        ax.set_xticks(range(len(wls)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_title(title)
        ax.set_ylabel(f"ratio to {REFERENCE}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=min(7, max(1, len(labels))), loc="upper center")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------------------------
# main


def select(items, wanted: str | None, attr_names, what: str):
    """Exact names, kinds/groups, or shell patterns (e.g. 'switchyard-*-1w')."""
    if not wanted:
        return list(items)
    keys = [k.strip() for k in wanted.split(",") if k.strip()]

    def hit(it, k):
        return any(getattr(it, a) == k for a in attr_names) or fnmatch.fnmatchcase(it.name, k)

    unknown = [k for k in keys if not any(hit(it, k) for it in items)]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; choose from "
                         f"{', '.join(sorted({getattr(it, a) for it in items for a in attr_names}))}")
    return [it for it in items if any(hit(it, k) for k in keys)]


def main() -> int:
    n_default = os.cpu_count() or 2
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="repetitions per (workload, LB); median reported")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per load (default 10)")
    ap.add_argument("--only", help="comma list of workloads or groups: " + ", ".join(
        sorted({w.group for w in WORKLOADS} | {w.name for w in WORKLOADS})))
    ap.add_argument("--lbs", help="comma list of LB names or kinds (direct, haproxy, nginx, switchyard) or names "
                                  "like haproxy-1t, switchyard-copy-2w")
    ap.add_argument("--switchyard", metavar="BIN", help="switchyard binary (skips swift build -c release)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench-results"), help="output directory")
    ap.add_argument("--workers", type=int, default=n_default, help="N for the multi-thread runs (default: cores)")
    ap.add_argument("--conns", type=int, default=10000, help="idle connections for the scale workload")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get/pip")
    args = ap.parse_args()

    workloads = select(WORKLOADS, args.only, ("name", "group"), "workload")
    lbs = select(all_lbs(args.workers), args.lbs, ("name", "kind"), "load balancer")
    if args.runs < 1 or args.duration <= 0:
        raise SystemExit("--runs and --duration must be positive")
    pinned_possible = (os.cpu_count() or 1) >= 2
    if not pinned_possible:
        log("fewer than 2 cores: pinned runs run unpinned")

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(PROCS.stop_all)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by every LB and backend
    # a single-process LB holds two descriptors per proxied connection, plus listeners, logs and
    # (HAProxy with splice) HAPROXY_MAXPIPES pipes of two descriptors each
    conns = min(args.conns, (hard - 2 * HAPROXY_MAXPIPES - 200) // 2)
    if conns < args.conns and any(w.group == "scale" for w in workloads):
        log(f"RLIMIT_NOFILE hard limit {hard}: idle-conns uses {conns} connections, not {args.conns}")
    maxconn = conns + 50

    ensure_tools(args.no_install, need_matplotlib=True)
    switchyard_bin = args.switchyard
    if any(lb.kind == "switchyard" for lb in lbs):
        if switchyard_bin:
            switchyard_bin = os.path.abspath(switchyard_bin)
        else:
            switchyard_bin = build_switchyard()
        if not os.access(switchyard_bin, os.X_OK):
            raise SystemExit(f"switchyard binary not executable: {switchyard_bin}")

    os.makedirs(args.out, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    meta = {"stamp": stamp, "runs": args.runs, "duration": args.duration, "n": args.workers, "conns": conns,
            "lbs": [lb.name for lb in lbs], "workloads": [w.name for w in workloads],
            "switchyard": switchyard_bin, "kernel": os.uname().release, "cores": os.cpu_count()}
    samples: list[dict] = []
    tmp = tempfile.mkdtemp(prefix="switchyard-bench-")
    interrupted = False
    try:
        backends = start_backends({w.backend for w in workloads}, tmp, hard)
        lb_ports = iter(free_ports(args.runs * len(workloads) * len(lbs) + 10, 23000))
        total = args.runs * len(workloads) * len(lbs)
        if any(w.group == "scale" for w in workloads) and any(lb.kind == "direct" for lb in lbs):
            total -= args.runs
        done = 0
        for rep in range(args.runs):
            for w in workloads:
                # alternate the LBs; rotate the starting one each repetition so none is always first
                order = lbs[rep % len(lbs):] + lbs[:rep % len(lbs)]
                for lb in order:
                    done += 1
                    if w.group == "scale" and lb.kind == "direct":
                        continue  # nothing between client and backend to measure
                    pinned = lb.pinned and pinned_possible
                    set_affinity(backends.pids(), {0} if pinned else set(range(os.cpu_count() or 1)))
                    ctx = Ctx(args.duration, {0} if pinned else None, conns, backends.ports[w.backend])
                    sample = {"rep": rep, "workload": w.name, "lb": lb.name, "pinned": pinned,
                              "time": time.time()}
                    run = None
                    try:
                        run = start_lb(lb, pinned, backends.pool(w.backend, w.pool), next(lb_ports), tmp, maxconn,
                                       hard, switchyard_bin)
                        sample["metrics"] = run_workload(w, ctx, run)
                        m = sample["metrics"]
                        log(f"[{done}/{total}] rep {rep} {w.name:10} {lb.name:22} " + " ".join(
                            f"{k}={_fmt(m[k])}" for k in w.columns if k in m))
                    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
                        sample["error"] = str(exc)
                        log(f"[{done}/{total}] rep {rep} {w.name:10} {lb.name:22} FAILED: {exc}")
                    finally:
                        if run is not None and run.proc is not None:
                            PROCS.stop(run.proc)
                    samples.append(sample)
                    for name, p in backends.procs.items():
                        if p.poll() is not None:
                            raise RuntimeError(f"backend {name} exited ({p.returncode}); see its log")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping everything, writing partial results")
    finally:
        PROCS.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    med = medians(samples)
    md = markdown(med, samples, workloads, lbs, meta)
    with open(f"{os.path.join(args.out, 'samples-' + stamp)}.json", "w") as f:
        json.dump({"meta": meta, "samples": samples,
                   "medians": [{"workload": k[0], "lb": k[1], **v} for k, v in sorted(med.items())]}, f, indent=1)
    with open(os.path.join(args.out, f"results-{stamp}.md"), "w") as f:
        f.write(md + "\n")
    png = os.path.join(args.out, f"ratios-{stamp}.png")
    made = bool(med) and chart(med, workloads, lbs, png)
    print(md)
    log(f"wrote {args.out}/results-{stamp}.md, samples-{stamp}.json" + (f", ratios-{stamp}.png" if made else ""))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
