"""What the kernel says about processes and sockets, read from /proc (proc(5)).

Every function reads; none starts, signals or waits for anything (that is benchlib.processes).
"""

from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
TCP_ESTABLISHED = 0x01
TCP_LISTEN = 0x0A


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat from "state" (field 3) on: the command name, which may hold
    spaces and parentheses, is cut at its last ")". Raises OSError when the process is gone."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def descendants(pid: int) -> list[int]:
    """pid and every live descendant (nginx master + workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = stat_fields(int(entry))
        except (OSError, ValueError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry))
    return out


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime, stime) of the process, every thread included, in clock ticks (CLK_TCK a second).
    Raises OSError when the process is gone."""
    f = stat_fields(pid)
    return int(f[11]), int(f[12])  # utime (field 14), stime (field 15)


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """(utime, stime) of the processes (all their threads), in seconds; a process that is gone
    counts nothing."""
    user = system = 0
    for pid in pids:
        try:
            u, s = cpu_ticks(pid)
            user += u
            system += s
        except (OSError, ValueError, IndexError):
            pass
    return user / CLK_TCK, system / CLK_TCK


def rss_kib(pids: list[int]) -> int:
    """Resident memory of the processes together (/proc/PID/statm), in KiB; a process that is
    gone counts nothing."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_KIB
        except (OSError, ValueError, IndexError):
            pass
    return total


def status_kib(pid: int, key: str) -> int:
    """A KiB figure of /proc/PID/status, such as VmRSS or VmHWM (the peak). Raises OSError when
    the process is gone and RuntimeError when the key is missing."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def open_descriptors(pid: int) -> int:
    """How many descriptors the process holds open. Raises OSError when it is gone."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def tcp_sockets() -> list[tuple[int, int, int]]:
    """(local port, remote port, state) of every IPv4/IPv6 TCP socket."""
    out = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    out.append((int(parts[1].rsplit(":", 1)[1], 16),
                                int(parts[2].rsplit(":", 1)[1], 16), int(parts[3], 16)))
        except OSError:
            pass
    return out


def is_listening(port: int) -> bool:
    return any(lp == port and st == TCP_LISTEN for lp, _, st in tcp_sockets())


def tcp_retransmitted_segments() -> int:
    """The host's TcpRetransSegs (/proc/net/snmp): every run is on loopback, so the delta over a
    run counts the retransmissions of the client's, the LB's and the backend's sockets alike."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("RetransSegs")])
