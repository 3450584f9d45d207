"""Group tls: TLS terminated by the LB in front of a plain backend (issue 23's measure), driven by
benchlib/tlsload.py: new handshakes per second, full (tls-hs-*) and resumed by session ticket
(tls-resume-*), with ECDSA P-256 and RSA 2048 certificates; one TLS stream into a discarding
backend (tls-bulk); 64-byte ping-pong through TLS (tls-latency). The LB's configuration is
benchlib.tlsconfigs'."""

from __future__ import annotations

import json
import sys

from benchlib.processes import run_load
from benchlib.tlsconfigs import TLSLOAD
from benchlib.workloads.context import Ctx


def w_tls(ctx: Ctx, port: int, name: str) -> dict:
    """Runs the tlsload mode of workload `name` through the LB on `port` for ctx.duration seconds."""
    if name.startswith("tls-hs-") or name.startswith("tls-resume-"):
        mode = ["handshakes", "--clients", "2"] + (["--resume"] if name.startswith("tls-resume-") else [])
    elif name == "tls-bulk":
        mode = ["bulk"]
    elif name == "tls-latency":
        mode = ["pingpong"]
    else:
        raise ValueError(name)
    argv = [sys.executable, TLSLOAD, *mode, "--port", str(port), "--cafile", ctx.cafile,
            "--duration", str(ctx.duration)]
    res = json.loads(run_load(argv, ctx.duration + 30, ctx.load_cpus))
    if not res.get("handshakes", 1) and res.get("errors"):
        raise RuntimeError(f"no handshake succeeded ({res['errors']} errors)")
    return res
