"""The release build of Switchyard that the benchmarks run."""

from __future__ import annotations

import os
import subprocess
from typing import Callable

from benchlib.log import log as bench_log

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_switchyard(log: Callable[[str], None] = bench_log) -> str:
    """Runs `swift build -c release` in the repository and returns the path of the switchyard binary."""
    log("swift build -c release (this can take minutes)")
    subprocess.run(["swift", "build", "-c", "release"], cwd=REPO, check=True, timeout=3600)
    bindir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO, check=True,
                            capture_output=True, text=True, timeout=600).stdout.strip()
    return os.path.join(bindir, "switchyard")
