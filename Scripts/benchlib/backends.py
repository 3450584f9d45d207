"""The loopback backends the workloads run against: iperf3, an nginx HTTP server, sockperf, redis,
PostgreSQL, and tlsload.py's plain echo and discard servers (behind the tls workloads' terminating LBs)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field

from benchlib.log import log
from benchlib.processes import PROCS, free_ports, wait_listening
from benchlib.procfs import descendants
from benchlib.tlsconfigs import TLSLOAD

HTTP_BODY = "switchyard-bench-body-0123456789abcdefghijklmnopqrstuvwxyz\n"  # 64 bytes
HTTP_POOL = 3  # ports the nginx HTTP backend listens on (one server process, like three backends)


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


def http_backend_config(tmp: str, hard_nofile: int, ports: list[int]) -> str:
    """nginx answering every request on 127.0.0.1:PORTS with HTTP_BODY, keep-alive without limit."""
    return f"""daemon off;
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
{"".join(f"        listen 127.0.0.1:{p} backlog=4096;{chr(10)}" for p in ports)}        location / {{ default_type text/plain; return 200 "{HTTP_BODY.strip()}\\n"; }}
    }}
}}
"""


def start_backends(needed: set[str], tmp: str, hard_nofile: int) -> Backends:
    """Starts each backend of `needed` (iperf3, http, sockperf, redis, postgres, echo, discard) on free ports and waits
    until each listens."""
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
                f.write(http_backend_config(tmp, hard_nofile, be.pools[name]))
            argv = ["nginx", "-p", tmp, "-e", f"{tmp}/nginx-backend.err", "-c", conf]
        elif name == "sockperf":
            argv = ["sockperf", "server", "--tcp", "-i", "127.0.0.1", "-p", str(port)]
        elif name == "redis":
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
                    "--dir", tmp, "--logfile", "", "--maxclients", "1000"]
        elif name == "postgres":
            from benchlib.workloads.pgbench import start_postgres  # here: benchlib.workloads imports this module
            be.procs[name] = start_postgres(tmp, port)
            continue
        elif name in ("echo", "discard"):
            argv = [sys.executable, TLSLOAD, "serve", f"--{name}", str(port)]
        else:
            raise ValueError(name)
        be.procs[name] = PROCS.start(f"backend-{name}", argv, tmp)
    for name in names:
        for p in be.pools.get(name, [be.ports[name]]):
            wait_listening(p, be.procs[name])
    log("backends up: " + ", ".join(f"{n}:{p}" for n, p in be.ports.items()))
    return be
