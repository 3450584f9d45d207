#!/usr/bin/env python3
"""Entry point of Scripts/bench: the benchmark is the package benchlib beside this file (its
__init__ lists the modules; `Scripts/bench --help` says what a run does)."""

import sys

from benchlib.cli import main

# Benchmarks/conn-cost/run.py imports this module for these pieces of the benchmark.
from benchlib.build import build_switchyard  # noqa: F401
from benchlib.backends import start_backends  # noqa: F401
from benchlib.installs import ensure_tools  # noqa: F401
from benchlib.lbconfigs import all_lbs  # noqa: F401
from benchlib.lbstart import start_lb  # noqa: F401
from benchlib.log import log  # noqa: F401
from benchlib.processes import PROCS, free_ports, set_affinity  # noqa: F401
from benchlib.procfs import cpu_split  # noqa: F401
from benchlib.workloads import Ctx  # noqa: F401
from benchlib.workloads.connrate import w_wrk  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
