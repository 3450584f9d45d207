"""The tools the benchmark runs, installed with apt-get (and matplotlib with pip) when missing."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys

from benchlib.log import log

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

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


def ensure_tools(no_install: bool, need_matplotlib: bool, need_browser: bool = False) -> None:
    """Installs the packages of the missing TOOLS (and nginx's stream module) with apt-get, and
    matplotlib with pip when `need_matplotlib`; with `no_install`, a missing package ends the run.
    `need_browser` adds chromium (large: about a minute), for the LBs with the status page open."""
    tools = dict(TOOLS, chromium="chromium") if need_browser else TOOLS
    missing = sorted({pkg for tool, pkg in tools.items() if not shutil.which(tool)})
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
