"""Starting one load balancer of benchlib.lbconfigs in front of backend ports, and its process."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import urllib.request

from benchlib.browser import HeadlessPage, page_cpus
from benchlib.lbconfigs import LB, haproxy_config, nginx_stream_config, switchyard_serve
from benchlib.processes import PROCS, free_port, wait_listening
from benchlib.procfs import descendants

STATUS_DATA = "/status.json"  # what the status page asks for every second


class Running:
    """A started load balancer (or none, for direct), and the browser holding its status page
    open if it has one (in a session of its own: not one of `pids`, its CPU is not the LB's)."""

    def __init__(self, lb: LB, port: int, proc: subprocess.Popen | None, page: HeadlessPage | None = None):
        self.lb, self.port, self.proc, self.page = lb, port, proc, page

    def pids(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        return descendants(self.proc.pid)

    def stop(self) -> None:
        """Stops the browser, then the LB, each by PID."""
        try:
            if self.page is not None:
                self.page.stop()
        finally:
            if self.proc is not None:
                PROCS.stop(self.proc)


def start_scraper(port: int) -> None:
    """Scrapes http://127.0.0.1:PORT/metrics once a second for as long as the run lasts, as a
    Prometheus server would (a daemon thread; failures while the LB is not up yet are ignored)."""

    def loop() -> None:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
            except Exception:
                pass
            time.sleep(1)

    threading.Thread(target=loop, daemon=True).start()


def lb_argv(lb: LB, backend_ports: list[int], listen_port: int, tmp: str, maxconn: int, hard_nofile: int,
            switchyard_bin: str | None, status_port: int | None = None) -> list[str]:
    """The command line that runs `lb` (writing its configuration file into `tmp` where it has one),
    with the status page on `status_port` when its `observe` has one."""
    if lb.kind == "haproxy":
        conf = os.path.join(tmp, f"{lb.name}.cfg")
        with open(conf, "w") as f:
            f.write(haproxy_config(lb.threads, maxconn, listen_port, backend_ports, splice=lb.splice))
        return ["haproxy", "-db", "-f", conf]
    if lb.kind == "nginx":
        conf = os.path.join(tmp, f"{lb.name}.conf")
        with open(conf, "w") as f:
            f.write(nginx_stream_config(lb.name, lb.threads, hard_nofile, listen_port, backend_ports, tmp))
        return ["nginx", "-p", tmp, "-e", f"{tmp}/{lb.name}.err", "-c", conf]
    if lb.kind == "switchyard":
        binary = lb.binary or switchyard_bin
        if not binary:
            raise RuntimeError("no switchyard binary")
        flags = ["--workers", str(lb.threads), "--relay", lb.relay, "--admin-socket", os.path.join(tmp, f"{lb.name}.sock")]
        if "metrics" in lb.observe:
            metrics_port = free_port()
            flags += ["--metrics", f"127.0.0.1:{metrics_port}"]
            start_scraper(metrics_port)
        if "status" in lb.observe:
            flags += ["--status", f"127.0.0.1:{status_port}"]
        if "log" in lb.observe:
            flags += ["--access-log", os.path.join(tmp, f"{lb.name}.access.log"), "--access-log-format", "json"]
        flags += list(lb.args)
        return switchyard_serve(binary, listen_port, backend_ports, flags)
    raise ValueError(lb.kind)


def start_lb(lb: LB, pinned: bool, backend_ports: list[int], listen_port: int, tmp: str, maxconn: int,
             hard_nofile: int, switchyard_bin: str | None) -> Running:
    """Starts `lb` balancing round-robin over `backend_ports` (one or more 127.0.0.1 ports)."""
    if lb.kind == "direct":
        return Running(lb, backend_ports[0], None)
    cpus = {1} if pinned else None
    status_port = free_port() if "status" in lb.observe else None
    argv = lb_argv(lb, backend_ports, listen_port, tmp, maxconn, hard_nofile, switchyard_bin, status_port)
    run = Running(lb, listen_port, PROCS.start_listening(lb.name, argv, tmp, listen_port, cpus))
    if "browser" in lb.observe:
        try:
            wait_listening(status_port, run.proc)
            run.page = HeadlessPage(f"http://127.0.0.1:{status_port}/", tmp, page_cpus(pinned))
            # the page is live once it has asked for its data (bounded; the run fails otherwise)
            deadline = time.monotonic() + 10
            while run.page.requests_to(STATUS_DATA) == 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the status page made no request for {STATUS_DATA} within 10 s")
                time.sleep(0.2)
        except BaseException:
            run.stop()
            raise
    return run
