#!/usr/bin/env python3
"""Soak test of the release binary (run through Scripts/soak).

For --minutes N it runs a mixed load through one proxy on loopback:
  - bulk: clients streaming 1 to 8 MiB echoes, every byte checked;
  - ping-pong: persistent connections exchanging 64-byte messages, every reply checked;
  - churn: short connections (connect, 100 bytes back and forth, close);
  - admin: show stats / show backends / drain / ready / weight on the admin socket;
  - health flaps: one backend stops (its connections reset) for 3 s every 15 s. A churn
    session whose shutdown(SHUT_WR) finds its connection already reset (ENOTCONN) counts as
    reset, not failed, when a flap's stop fell while it ran.
Every second it samples the proxy's resident memory, open descriptors and CPU, and writes
soak.csv, soak.png (matplotlib) and verdict.txt into the output folder. Exit 0 when memory and
descriptors stay flat, no byte is corrupted and no cut stream ends cleanly; 1 otherwise.

Every loop is bounded by the run's end time and every socket operation by a timeout.
"""
from __future__ import annotations

import argparse
import csv
import errno
import hashlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

SOCKET_TIMEOUT = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- backends

class EchoBackend:
    """A threaded echo server on 127.0.0.1 that can be stopped (listener closed, every
    connection reset) and started again on the same port."""

    def __init__(self, name: str):
        self.name = name
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self.killed: set[socket.socket] = set()
        self.listener: socket.socket | None = None
        self.port = 0
        self.start()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(100):
            try:
                listener.bind(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.02)
        listener.listen(256)
        self.port = listener.getsockname()[1]
        with self.lock:
            self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            connections = list(self.connections)
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self.lock:
            self.killed.update(connections)
        for connection in connections:
            try:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # Wakes its thread (recv returns b""), which closes it: a reset, and no FIN first.
                connection.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    @property
    def listening(self) -> bool:
        with self.lock:
            return self.listener is not None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections.add(connection)
            threading.Thread(target=self._echo, args=(connection,), daemon=True).start()

    def _echo(self, connection: socket.socket) -> None:
        connection.settimeout(60)
        try:
            while True:
                data = connection.recv(65536)
                if not data:
                    with self.lock:
                        killed = connection in self.killed
                    if not killed:
                        connection.shutdown(socket.SHUT_WR)
                    break
                connection.sendall(data)
        except OSError:
            pass
        finally:
            with self.lock:
                self.connections.discard(connection)
                self.killed.discard(connection)
            connection.close()


class FlapTimes:
    """When the flapping backend was stopped (its connections reset): a reset a session meets
    is the flap's only if a stop fell while the session ran."""

    SLACK = 1.0  # seconds either side: the reset reaches the client a moment after the stop

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stops: list[float] = []

    def stopped(self) -> None:
        with self.lock:
            self.stops.append(time.monotonic())

    def during(self, start: float, end: float) -> bool:
        with self.lock:
            return any(start - self.SLACK <= stop <= end + self.SLACK for stop in self.stops)


# ---------------------------------------------------------------- counters

@dataclass
class Counters:
    lock: threading.Lock = field(default_factory=threading.Lock)
    values: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)  # first failures, for the verdict

    def add(self, key: str, amount: int = 1, sample: str | None = None) -> None:
        with self.lock:
            self.values[key] = self.values.get(key, 0) + amount
            if sample is not None and len(self.samples) < 20:
                self.samples.append(f"{key}: {sample}")

    def snapshot(self) -> dict:
        with self.lock:
            return dict(self.values)


def pattern(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# ---------------------------------------------------------------- load

def bulk_session(proxy_port: int, rng: random.Random, counters: Counters) -> None:
    size = rng.randint(1 << 20, 8 << 20)
    data = pattern(rng.getrandbits(64), size)
    expected = hashlib.blake2b(data).hexdigest()
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=SOCKET_TIMEOUT)
    send_error: list[BaseException] = []

    def sender() -> None:
        try:
            offset = 0
            while offset < size:
                step = rng.randint(1, 256 << 10)
                s.sendall(data[offset:offset + step])
                offset += step
            s.shutdown(socket.SHUT_WR)
        except OSError as error:
            send_error.append(error)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    received = hashlib.blake2b()
    count = 0
    mismatch = False
    ending = "eof"
    try:
        while True:
            chunk = s.recv(1 << 18)
            if not chunk:
                break
            if data[count:count + len(chunk)] != chunk:
                mismatch = True
            received.update(chunk)
            count += len(chunk)
    except ConnectionResetError:
        ending = "reset"
    except socket.timeout:
        ending = "stall"
    except OSError as error:
        ending = f"error {error}"
    thread.join(SOCKET_TIMEOUT)
    s.close()
    if any(isinstance(e, (ConnectionResetError, BrokenPipeError)) for e in send_error):
        ending = "reset"
    if mismatch or count > size:
        counters.add("integrity_errors", sample=f"bulk: corrupted bytes within {count} of {size}")
    elif ending == "eof" and count == size and received.hexdigest() == expected:
        counters.add("bulk_ok")
        counters.add("bytes_checked", size)
    elif ending == "eof" and count == 0:
        counters.add("clean_eof_before_any_byte", sample=f"bulk: clean EOF before any byte of {size}")
    elif ending == "eof":
        counters.add("integrity_errors", sample=f"bulk: clean EOF after {count} of {size} bytes")
    elif ending == "reset":
        counters.add("reset_sessions")
    else:
        counters.add("failed_sessions", sample=f"bulk: {ending} after {count} of {size}")


def bulk_loop(proxy_port: int, until: float, seed: int, counters: Counters) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        try:
            bulk_session(proxy_port, rng, counters)
        except OSError as error:
            counters.add("failed_sessions", sample=f"bulk connect: {error}")
            time.sleep(0.2)


def pingpong_loop(proxy_port: int, until: float, seed: int, counters: Counters) -> None:
    rng = random.Random(seed)
    s = None
    exchanged = 0  # round trips completed on the current connection
    while time.monotonic() < until:
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", proxy_port), timeout=SOCKET_TIMEOUT)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                exchanged = 0
            message = rng.randbytes(64)
            s.sendall(message)
            reply = b""
            while len(reply) < 64:
                chunk = s.recv(64 - len(reply))
                if not chunk:
                    raise EOFError(f"clean EOF after {len(reply)} of 64 reply bytes")
                reply += chunk
            if reply != message:
                counters.add("integrity_errors", sample="ping-pong: reply differs")
            else:
                counters.add("pingpong_ok")
                exchanged += 1
            time.sleep(0.004)
        except EOFError as error:
            # A clean end in answer to a request: the backend went away, and the proxy passed it
            # on as a FIN instead of a reset. Before any exchange that is issue 14's gap.
            counters.add("clean_eof_before_any_byte" if exchanged == 0 else "integrity_errors",
                         sample=f"ping-pong: {error}, {exchanged} round trips before on this connection")
            s.close()
            s = None
        except (ConnectionResetError, BrokenPipeError):
            counters.add("reset_sessions")
            s.close()
            s = None
        except OSError as error:
            counters.add("failed_sessions", sample=f"ping-pong: {error}")
            if s is not None:
                s.close()
            s = None
            time.sleep(0.2)
    if s is not None:
        s.close()


def churn_loop(proxy_port: int, until: float, seed: int, counters: Counters, flaps: FlapTimes) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        message = rng.randbytes(100)
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", proxy_port), timeout=SOCKET_TIMEOUT) as s:
                s.sendall(message)
                s.shutdown(socket.SHUT_WR)
                reply = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            if reply == message:
                counters.add("churn_ok")
            elif reply == b"":
                counters.add("clean_eof_before_any_byte", sample="churn: clean EOF before any byte")
            else:
                counters.add("integrity_errors", sample=f"churn: {len(reply)} bytes back of 100")
        except (ConnectionResetError, BrokenPipeError):
            counters.add("reset_sessions")
        except OSError as error:
            # ENOTCONN from shutdown(SHUT_WR): the connection was already reset (the proxy passed
            # on its backend's reset) before the client half-closed it; a reset, if a flap's.
            if error.errno == errno.ENOTCONN and flaps.during(started, time.monotonic()):
                counters.add("reset_sessions")
            else:
                counters.add("failed_sessions", sample=f"churn: {error}")
                time.sleep(0.2)
        time.sleep(0.01)


def admin_command(path: str, line: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall((line + "\n").encode())
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply.decode(errors="replace")


def admin_loop(path: str, backends: list[str], until: float, counters: Counters) -> None:
    commands = ["show stats json", "show backends json", f"drain {backends[1]}", "show backends",
                f"ready {backends[1]}", f"weight {backends[0]} 2", "show stats", f"weight {backends[0]} 1",
                f"wait {backends[2]} 50ms"]
    index = 0
    while time.monotonic() < until:
        command = commands[index % len(commands)]
        index += 1
        try:
            reply = admin_command(path, command)
            if reply.startswith("OK") or (command.startswith("wait") and reply.startswith("ERROR: ")):
                counters.add("admin_ok")
            else:
                counters.add("admin_errors", sample=f"{command!r} -> {reply.strip()[:120]!r}")
            if command == "show stats json":
                json.loads(reply.split("\n", 1)[1])
        except (OSError, ValueError, IndexError) as error:
            counters.add("admin_errors", sample=f"{command!r}: {error}")
        time.sleep(1.0)


def flap_loop(backend: EchoBackend, until: float, counters: Counters, flaps: FlapTimes) -> None:
    next_flap = time.monotonic() + 10
    while time.monotonic() < until:
        time.sleep(0.2)
        if time.monotonic() >= next_flap and time.monotonic() + 4 < until:
            flaps.stopped()
            backend.stop()
            counters.add("flaps")
            time.sleep(3)
            backend.start()
            next_flap = time.monotonic() + 12


# ---------------------------------------------------------------- sampling and verdict

def proc_sample(pid: int) -> tuple[int, int, int] | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return rss, fds, ticks
    except (OSError, StopIteration, ValueError):
        return None


def slope_per_minute(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var * 60


def plot(rows: list[dict], out: str, verdict_line: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    t = [r["seconds"] for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    axes[0].plot(t, [r["rss_kib"] / 1024 for r in rows], color="tab:blue")
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].plot(t, [r["fds"] for r in rows], color="tab:green")
    axes[1].set_ylabel("open descriptors")
    axes[2].plot(t, [r["cpu_percent"] for r in rows], color="tab:red")
    axes[2].set_ylabel("CPU (% of one core)")
    axes[2].set_xlabel("seconds")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        for r in rows:
            if r["flapping"]:
                ax.axvspan(r["seconds"] - 0.5, r["seconds"] + 0.5, color="orange", alpha=0.15, linewidth=0)
    fig.suptitle(f"Switchyard soak: {verdict_line}\n(orange: a backend is down)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if not (0 < args.minutes <= 24 * 60):
        print("soak: --minutes must be more than 0 and at most 1440", file=sys.stderr)
        return 64
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    os.makedirs(args.out, exist_ok=True)

    backends = [EchoBackend(f"b{i}") for i in range(1, 4)]
    names = [f"127.0.0.1:{b.port}" for b in backends]
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    proxy_port = probe.getsockname()[1]
    probe.close()
    admin_path = os.path.join(args.out, "admin.sock")
    proxy_log = open(os.path.join(args.out, "proxy.log"), "w")
    proxy = subprocess.Popen(
        [args.binary, "serve", "--listen", f"127.0.0.1:{proxy_port}", "--workers", "2",
         "--admin-socket", admin_path, "--connect-timeout", "1s",
         "--health-interval", "500ms", "--health-timeout", "300ms", "--rise", "2", "--fall", "2", *names],
        stdin=subprocess.DEVNULL, stdout=proxy_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", proxy_port), timeout=1).close()
                break
            except OSError:
                if proxy.poll() is not None or time.monotonic() > deadline:
                    log(f"the proxy did not start; see {proxy_log.name}")
                    return 1
                time.sleep(0.05)
        time.sleep(1.5)  # health checks confirm every backend
        start_sample = proc_sample(proxy.pid)
        assert start_sample is not None
        fds_before = start_sample[1]
        log(f"seed {seed}; proxy pid {proxy.pid} on 127.0.0.1:{proxy_port}; {args.minutes} min; output in {args.out}")

        counters = Counters()
        flaps = FlapTimes()
        started = time.monotonic()
        until = started + args.minutes * 60
        threads = []
        for i in range(3):
            threads.append(threading.Thread(target=bulk_loop, args=(proxy_port, until, seed + i, counters), daemon=True))
        for i in range(3):
            threads.append(threading.Thread(target=pingpong_loop, args=(proxy_port, until, seed + 10 + i, counters), daemon=True))
        for i in range(2):
            threads.append(threading.Thread(target=churn_loop, args=(proxy_port, until, seed + 20 + i, counters, flaps), daemon=True))
        threads.append(threading.Thread(target=admin_loop, args=(admin_path, names, until, counters), daemon=True))
        threads.append(threading.Thread(target=flap_loop, args=(backends[2], until, counters, flaps), daemon=True))
        for thread in threads:
            thread.start()

        rows: list[dict] = []
        last_ticks, last_time = start_sample[2], time.monotonic()
        next_report = started + 30
        while time.monotonic() < until and proxy.poll() is None:
            time.sleep(max(0.0, 1 - (time.monotonic() - last_time)))
            sample = proc_sample(proxy.pid)
            now = time.monotonic()
            if sample is None:
                break
            rss, fds, ticks = sample
            cpu = (ticks - last_ticks) / CLK_TCK / (now - last_time) * 100
            last_ticks, last_time = ticks, now
            snapshot = counters.snapshot()
            rows.append({"seconds": round(now - started, 1), "rss_kib": rss, "fds": fds, "cpu_percent": round(cpu, 1),
                         "flapping": int(not backends[2].listening), **{k: snapshot.get(k, 0) for k in (
                             "bulk_ok", "pingpong_ok", "churn_ok", "reset_sessions", "integrity_errors",
                             "clean_eof_before_any_byte", "failed_sessions", "admin_errors")}})
            if now >= next_report:
                log(f"{round(now - started)} s: RSS {rss / 1024:.1f} MiB, {fds} fds, CPU {cpu:.0f} %, {snapshot}")
                next_report += 30
        for thread in threads:
            thread.join(SOCKET_TIMEOUT + 5)
        for backend in backends:
            if not backend.listening:
                backend.start()
        # Settle: every client has closed; idle pipes go after a tick.
        settle_deadline = time.monotonic() + 10
        fds_after = None
        while time.monotonic() < settle_deadline:
            sample = proc_sample(proxy.pid)
            if sample is None:
                break
            fds_after = sample[1]
            if fds_after <= fds_before + 2:
                break
            time.sleep(0.25)
        alive = proxy.poll() is None
        try:
            open_connections = json.loads(admin_command(admin_path, "show stats json").split("\n", 1)[1])["open_connections"]
        except (OSError, ValueError, IndexError, KeyError):
            open_connections = None
    finally:
        if proxy.poll() is None:
            proxy.send_signal(signal.SIGTERM)
            try:
                proxy.wait(10)
            except subprocess.TimeoutExpired:
                proxy.kill()
                proxy.wait()
        for backend in backends:
            backend.stop()
        proxy_log.close()

    with open(os.path.join(args.out, "soak.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["seconds"])
        writer.writeheader()
        writer.writerows(rows)

    totals = counters.snapshot()
    # Memory: after a warm-up (a quarter of the run, at most 5 minutes) the RSS trend must be flat:
    # the fitted slope over the rest, times its length, under max(4 MiB, 5 % of the median).
    warm = min(len(rows) // 4, 300)
    tail = rows[warm:]
    growth_kib = slope_per_minute([r["seconds"] for r in tail], [r["rss_kib"] for r in tail]) * (len(tail) / 60)
    median_rss = sorted(r["rss_kib"] for r in tail)[len(tail) // 2] if tail else 0
    memory_limit = max(4096, median_rss * 0.05)
    fds_max = max((r["fds"] for r in rows), default=0)
    checks = [
        ("proxy still running", alive, f"exit status {proxy.returncode}" if not alive else "yes"),
        ("memory flat", bool(tail) and growth_kib < memory_limit,
         f"RSS trend {growth_kib:+.0f} KiB over the last {len(tail)} s (limit {memory_limit:.0f}); "
         f"median {median_rss / 1024:.1f} MiB, max {max((r['rss_kib'] for r in rows), default=0) / 1024:.1f} MiB"),
        ("descriptors back to their level", fds_after is not None and fds_after <= fds_before + 2,
         f"{fds_before} before, {fds_after} after, {fds_max} at most during the run"),
        ("no connection left open", open_connections == 0, f"open connections after the run: {open_connections}"),
        ("zero integrity errors", totals.get("integrity_errors", 0) == 0, f"{totals.get('integrity_errors', 0)}"),
        ("no cut stream ended cleanly", totals.get("clean_eof_before_any_byte", 0) == 0,
         f"{totals.get('clean_eof_before_any_byte', 0)} sessions ended in a clean EOF before any byte (issue 14)"),
        ("no stalled or failed session", totals.get("failed_sessions", 0) == 0, f"{totals.get('failed_sessions', 0)}"),
        ("admin commands answered", totals.get("admin_errors", 0) == 0 and totals.get("admin_ok", 0) > 0,
         f"{totals.get('admin_ok', 0)} ok, {totals.get('admin_errors', 0)} errors"),
        ("load ran", totals.get("bulk_ok", 0) > 0 and totals.get("pingpong_ok", 0) > 0 and totals.get("churn_ok", 0) > 0,
         f"{totals.get('bulk_ok', 0)} bulk ({totals.get('bytes_checked', 0) >> 20} MiB checked), "
         f"{totals.get('pingpong_ok', 0)} ping-pongs, {totals.get('churn_ok', 0)} short connections, "
         f"{totals.get('reset_sessions', 0)} reset by flaps, {totals.get('flaps', 0)} flaps"),
    ]
    passed = all(ok for _, ok, _ in checks)
    verdict_line = ("PASS" if passed else "FAIL") + f" ({args.minutes:g} min, seed {seed})"
    lines = [f"soak verdict: {verdict_line}"] + [f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}" for name, ok, detail in checks]
    if counters.samples:
        lines.append("  first failures:")
        lines += [f"    {sample}" for sample in counters.samples]
    plotted = plot(rows, os.path.join(args.out, "soak.png"), verdict_line) if rows else False
    if not plotted:
        lines.append("  (no plot: matplotlib is not installed)")
    with open(os.path.join(args.out, "verdict.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
