"""Starting and stopping processes by PID, pinning them to cores, waiting for their ports.

Everything started through a `Procs` is tracked and stopped by its PID (with the descendants it
leaves behind, such as nginx workers), never by name. Shared by Scripts/bench, bench-memory and
soak.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from typing import Callable

from benchlib.log import log as bench_log
from benchlib.procfs import descendants, group_members, is_listening


def pinned(argv: list[str], cpus: set[int] | None) -> list[str]:
    """argv run under `taskset -c CPUS` when cpus are given (taskset execs: the PID is the same)."""
    if not cpus:
        return argv
    return ["taskset", "-c", ",".join(map(str, sorted(cpus)))] + argv


def set_affinity(pids: list[int], cpus: set[int]) -> None:
    """Moves every thread of the processes to `cpus`; a thread or process that is gone is skipped."""
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


class Procs:
    """The processes a script started, each stopped by PID on request or by stop_all."""

    def __init__(self, log: Callable[[str], None] = bench_log) -> None:
        self.live: list[tuple[str, subprocess.Popen, object]] = []
        self.log = log

    def start(self, name: str, argv: list[str], logdir: str | None, cpus: set[int] | None = None,
              new_session: bool = False, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
        """Starts argv (pinned to `cpus` if given) with stdin from /dev/null and stdout and stderr
        appended to LOGDIR/NAME.log, or inherited when logdir is None. `new_session` puts it in a
        session of its own, out of reach of the terminal's Ctrl-C, and its process group (whose id
        is its pid) is emptied when it is stopped. `pass_fds` stay open in the child."""
        logf = open(os.path.join(logdir, f"{name}.log"), "ab") if logdir else None
        proc = subprocess.Popen(pinned(argv, cpus), stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT if logf else None, start_new_session=new_session,
                                pass_fds=pass_fds)
        self.live.append((name, proc, logf))
        return proc

    def start_listening(self, name: str, argv: list[str], logdir: str, port: int, cpus: set[int] | None = None,
                        new_session: bool = False) -> subprocess.Popen:
        """start(), then wait until something listens on `port`; if it does not, stops the process
        and raises RuntimeError with the last lines of its log."""
        proc = self.start(name, argv, logdir, cpus, new_session)
        try:
            wait_listening(port, proc)
        except Exception as exc:
            self.stop(proc)
            try:
                with open(os.path.join(logdir, f"{name}.log"), errors="replace") as f:
                    tail = " / ".join(f.read().strip().splitlines()[-3:])
            except OSError:
                tail = ""
            raise RuntimeError(f"{exc}: {tail}") from None
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; descendants still alive then are killed by
        PID, and so is every live member of its process group if it was started in a session of
        its own (chromium's helpers)."""
        entry = next((e for e in self.live if e[1] is proc), None)
        if proc.poll() is None:
            family = descendants(proc.pid)[1:]  # workers, stopped by PID if the parent leaves them
            try:
                if os.getsid(proc.pid) == proc.pid:
                    family += [pid for pid in group_members(proc.pid) if pid not in family and pid != proc.pid]
            except ProcessLookupError:
                pass
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
            if entry[2] is not None:
                entry[2].close()

    def stop_all(self) -> None:
        for _, proc, _ in reversed(list(self.live)):
            try:
                self.stop(proc)
            except Exception as exc:  # keep stopping the others
                self.log(f"stop {proc.pid}: {exc}")


PROCS = Procs()


def _interrupt(signum, _frame):
    # handled like Ctrl-C: the finally blocks stop every process by PID, partial results are written
    raise KeyboardInterrupt(f"signal {signum}")


def stop_all_on_exit(procs: Procs) -> None:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt (so finally blocks run), and whatever
    `procs` still holds at exit is stopped."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    atexit.register(procs.stop_all)


def run_load(argv: list[str], timeout: float, cpus: set[int] | None) -> str:
    """Run a bounded load generator; subprocess.run kills it by PID on timeout."""
    argv = pinned(argv, cpus)
    res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{argv[0] if not cpus else argv[3]} exited {res.returncode}: "
                           f"{(res.stderr or res.stdout)[-400:].strip()}")
    return res.stdout


def free_port() -> int:
    """A port the kernel has just found free on 127.0.0.1 (ephemeral range)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def wait_listening(port: int, proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """Returns once a socket listens on `port` (read from /proc/net/tcp, so no connection is made);
    raises RuntimeError if `proc` exits first or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited {proc.returncode} before listening on {port}")
        if is_listening(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")
