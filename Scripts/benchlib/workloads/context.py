"""What every workload is given for one run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ctx:
    duration: float
    load_cpus: set[int] | None
    conns: int
    backend_port: int
    cafile: str = ""  # tls workloads: the LB's certificate (self-signed: the client's CA file)


def secs(d: float) -> int:
    """A duration as the whole seconds (at least 1) that the load generators take."""
    return max(1, int(round(d)))
