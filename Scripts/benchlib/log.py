"""Progress lines on stderr, stamped with the tool's name and the time: `[bench 12:34:56] ...`."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


def logger(tool: str, stream: TextIO | None = None, flush: bool = True) -> Callable[[str], None]:
    """A `log(message)` that prints `[tool HH:MM:SS] message` to `stream` (stderr when None,
    looked up at each call so that a redirected sys.stderr is honoured)."""

    def log(message: str) -> None:
        print(f"[{tool} {time.strftime('%H:%M:%S')}] {message}", file=stream or sys.stderr, flush=flush)

    return log


log = logger("bench")
