"""The load balancers compared, and the configuration and command line each one runs with.

An `LB` names one setup (HAProxy with 1 thread and splice, Switchyard with the copy relay on N
workers, ...); `all_lbs` lists them in table order. The functions below turn a setup into what
its process is given: a configuration file's text or a command line. Nothing here starts a
process (that is benchlib.lbstart).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from benchlib.installs import NGINX_STREAM_MODULE

REFERENCE = "haproxy-1t"
DIRECT = "direct"
BASELINE = "switchyard-before"  # --baseline BIN: the twin of each switchyard LB, running BIN
HAPROXY_MAXPIPES = 200  # plenty for <= 4 bulk streams; bounded so maxconn fits RLIMIT_NOFILE


@dataclass
class LB:
    name: str
    kind: str            # direct | haproxy | nginx | switchyard
    threads: int
    pinned: bool         # LB on core 1, backends and load generators on core 0
    splice: bool = False  # haproxy: option splice-auto
    relay: str = ""      # switchyard: auto | copy | splice
    observe: str = ""    # switchyard: "" | metrics | metrics+log | status | status+browser (overhead runs)
    args: tuple[str, ...] = ()  # switchyard: further flags (the buffer-size comparison)
    binary: str = ""     # switchyard: this binary instead of the one under test (--baseline)
    versus: str = ""     # the LB this one is set beside in the report's side-by-side table


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
    # Issue 24's status page: its listener on and nobody looking, then a headless chromium holding
    # the page open (it asks for /status.json every second), each beside the same LB without it.
    lbs.append(LB("switchyard-auto-1w-status", "switchyard", 1, True, relay="auto", observe="status",
                  versus="switchyard-auto-1w"))
    lbs.append(LB("switchyard-auto-1w-status-browser", "switchyard", 1, True, relay="auto", observe="status+browser",
                  versus="switchyard-auto-1w"))
    # Two workers unpinned: the LB's cores are not saturated by the load, so the page gets its
    # answer every second (pinned, a saturated core answers it about every 2 s: see README).
    lbs.append(LB("switchyard-auto-2w-status-browser", "switchyard", 2, False, relay="auto", observe="status+browser",
                  versus="switchyard-auto-2w"))
    # Issue 27's per-client controls, with limits no client here reaches: what allow + deny + a
    # per-source concurrency and rate limit cost per request (compare with switchyard-auto-*).
    controls = ("--allow", "127.0.0.0/8,::1", "--deny", "192.0.2.0/24", "--max-connections-per-source", "100000000",
                "--connection-rate-per-source", "100000000/s")
    for w in (1, n):
        lbs.append(LB(f"switchyard-auto-{w}w-controls", "switchyard", w, w == 1, relay="auto", args=controls))
    # Issue 16's buffer-size option: 16 KiB provided buffers instead of the default 64 KiB.
    for mode in ("auto", "copy"):
        lbs.append(LB(f"switchyard-{mode}-1w-16k", "switchyard", 1, True, relay=mode, args=("--buffer-size", "16")))
    # Issue 25's busy-polling: each worker spins briefly on its completion queue before it sleeps.
    for w in (1, n):
        lbs.append(LB(f"switchyard-auto-{w}w-busy", "switchyard", w, w == 1, relay="auto", args=("--busy-polling",)))
    return lbs


def with_baseline(lbs: list[LB], binary: str) -> list[LB]:
    """`lbs` with each switchyard LB followed by its twin that runs `binary` with the very same
    configuration, named switchyard-before-… (switchyard-auto-1w → switchyard-before-auto-1w)."""
    out = []
    for lb in lbs:
        out.append(lb)
        if lb.kind == "switchyard" and not lb.binary:
            out.append(dataclasses.replace(lb, name=BASELINE + lb.name[len("switchyard"):], binary=binary))
    return out


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


def nginx_stream_config(name: str, workers: int, hard_nofile: int, listen_port: int, backend_ports: list[int],
                        tmp: str) -> str:
    """nginx `stream` on 127.0.0.1:listen_port, round-robin over 127.0.0.1 backend ports, with
    `workers` worker processes; pid and error log in `tmp`, named after `name`."""
    return f"""daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {hard_nofile};
pid {tmp}/{name}.pid;
error_log {tmp}/{name}.err warn;
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
"""


def switchyard_serve(binary: str, listen_port: int, backend_ports: list[int], flags: list[str]) -> list[str]:
    """`switchyard serve` on 127.0.0.1:listen_port with `flags`, over 127.0.0.1 backend ports
    (round-robin, its default)."""
    return [binary, "serve", "--listen", f"127.0.0.1:{listen_port}", *flags,
            *[f"127.0.0.1:{p}" for p in backend_ports]]
