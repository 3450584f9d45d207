#!/usr/bin/env python3
"""Soak test of the release binary (run through Scripts/soak).

For --minutes N it runs a mixed load through one proxy on loopback:
  - bulk: clients streaming 1 to 8 MiB echoes, every byte checked;
  - ping-pong: persistent connections exchanging 64-byte messages, every reply checked;
  - churn: short connections (connect, 100 bytes back and forth, close);
  - admin: show stats / show backends / drain / ready / weight on the admin socket;
  - health flaps: one backend stops (its connections reset) for 3 s every 15 s.
That is the normal traffic. Each normal client has a source address of its own (127.0.0.11 and
up). A reset it sees counts as the flap's only while a flap is in progress (or within
FLAP_GRACE seconds after it); any other reset is a failure.

With --hostile the run alternates calm and hostile phases (30 s each, shorter for short runs so
there are at least two of each), and during a hostile phase a hostile mix runs beside the normal
traffic:
  - non-readers: 40 downloads (a second service whose backend streams) and 20 echo clients that
    send 1 MiB, none of which ever reads;
  - tricklers: 10 echo clients sending one byte every 10 to 100 ms;
  - abandoners: clients that connect, maybe send a few bytes, and close at once or leave the
    connection open for 1 to 5 s;
  - a flood: 200 source addresses (127.0.1.1 to 127.0.1.200) opening 6 connections each every
    10 s, against `max-connections-per-source: 4` when the binary knows that key (found with
    `switchyard check-config`; without it the flood is served in full).
Every hostile loop is bounded in count and by its phase's end. The mix runs in a process of its
own, so that its loops do not slow the normal clients' Python down. The report gives, for the calm
and the hostile phases apart, the normal traffic's failures (must be 0) and its ping-pong and
churn latency (p50, p99).

Every second it samples the proxy's resident memory, open descriptors and CPU, and writes
soak.csv, soak.png (matplotlib) and verdict.txt into the output folder. Exit 0 when memory and
descriptors stay flat, no byte is corrupted, no cut stream ends cleanly and the normal traffic
has no failure; 1 otherwise.

Every loop is bounded by the run's end time and every socket operation by a timeout.
"""
from __future__ import annotations

import argparse
import array
import csv
import errno
import hashlib
import json
import multiprocessing
import os
import queue
import random
import resource
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

# Scripts/bench's process control and /proc readers (Scripts/benchlib, beside this file)
from benchlib.log import logger
from benchlib.processes import Procs, free_port, wait_listening
from benchlib.procfs import CLK_TCK, cpu_ticks, open_descriptors, status_kib

SOCKET_TIMEOUT = 10.0
# A reset a client notices this long after its flap ended still counts as the flap's (its thread
# may not have run in between on a loaded machine).
FLAP_GRACE = 2.0
# errno values that mean the peer reset the connection, whichever call noticed it: recv and send
# (ECONNRESET), send after the reset was read (EPIPE), shutdown(SHUT_WR) after it (ENOTCONN: the
# socket is already closed, tcp(7)).
RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN}

# The backends' accept queue: a flood passes up to FLOOD_SOURCES * FLOOD_PER_SOURCE connections to
# them at once; with a shorter queue the kernel drops SYNs, the proxy's connects time out and the
# backends are marked down (the test backends' limit, not the proxy's).
BACKEND_BACKLOG = 4096
# The hostile mix (--hostile); see the docstring.
PHASE_SECONDS = 30.0
PER_SOURCE_LIMIT = 4
FLOOD_SOURCES = 200
FLOOD_PER_SOURCE = PER_SOURCE_LIMIT + 2
FLOOD_EVERY = 10.0
FLOOD_HOLD = 3.0
DOWNLOAD_NONREADERS = 40
ECHO_NONREADERS = 20
ECHO_NONREADER_BYTES = 1 << 20
TRICKLERS = 10
TRICKLE_MAX_BYTES = 1000
ABANDON_MAX_OPEN = 100
ABANDON_PER_SECOND = 20


log = logger("soak", sys.stdout)


def is_reset(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in RESET_ERRNOS


def normal_source(index: int) -> tuple[str, int]:
    """The local address of normal client `index`: one source each, so a per-source limit of
    PER_SOURCE_LIMIT never refuses them."""
    return (f"127.0.0.{11 + index}", 0)


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
        listener.listen(BACKEND_BACKLOG)
        self.port = listener.getsockname()[1]
        with self.lock:
            self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> int:
        """Stops listening and resets every connection; returns how many it reset."""
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
        return len(connections)

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


class DownloadBackend:
    """A threaded server on 127.0.0.1 that streams up to 256 MiB to each client (the hostile
    mix's downloads, which are never read), giving up on a send blocked for 60 s."""

    LIMIT = 256 << 20

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(BACKEND_BACKLOG)
        self.port = self.listener.getsockname()[1]
        self.chunk = pattern(0xD0, 64 << 10)
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._stream, args=(connection,), daemon=True).start()

    def _stream(self, connection: socket.socket) -> None:
        connection.settimeout(60)
        try:
            sent = 0
            while sent < self.LIMIT:
                connection.sendall(self.chunk)
                sent += len(self.chunk)
        except OSError:
            pass
        finally:
            connection.close()


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

    # Keys that hold the largest value seen rather than a sum.
    MAXIMA = {"hostile_flood_most_served_by_one_source"}

    def maximum(self, key: str, value: int) -> None:
        with self.lock:
            self.values[key] = max(self.values.get(key, 0), value)

    def merge(self, values: dict, samples: list) -> None:
        """Adds another process's counters."""
        with self.lock:
            for key, value in values.items():
                self.values[key] = max(self.values.get(key, 0), value) if key in self.MAXIMA else self.values.get(key, 0) + value
            self.samples += samples[:max(0, 20 - len(self.samples))]

    def snapshot(self) -> dict:
        with self.lock:
            return dict(self.values)


def pattern(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


class Schedule:
    """Calm and hostile phases: without --hostile the whole run is calm; with it, phases of
    `length` seconds alternate, calm first."""

    def __init__(self, started: float, until: float, hostile: bool):
        self.started, self.until, self.hostile = started, until, hostile
        self.length = min(PHASE_SECONDS, (until - started) / 4)

    def phase(self, at: float | None = None) -> str:
        at = time.monotonic() if at is None else at
        if not self.hostile or int((at - self.started) // self.length) % 2 == 0:
            return "calm"
        return "hostile"

    def hostile_windows(self) -> list[tuple[float, float]]:
        if not self.hostile:
            return []
        windows = []
        start = self.started + self.length
        while start < self.until:
            windows.append((start, min(start + self.length, self.until)))
            start += 2 * self.length
        return windows


class FlapLog:
    """When the flapped backend was down: a reset a normal client sees is the flap's only within
    one of these windows (plus FLAP_GRACE)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.windows: list[list[float]] = []  # [stopped, restarted or inf]
        self.cut = 0  # backend connections the flaps reset

    def stopped(self) -> None:
        with self.lock:
            self.windows.append([time.monotonic(), float("inf")])

    def add_cut(self, connections: int) -> None:
        with self.lock:
            self.cut += connections

    def restarted(self) -> None:
        with self.lock:
            self.windows[-1][1] = time.monotonic()

    def covers(self, at: float) -> bool:
        with self.lock:
            return any(stopped <= at <= restarted + FLAP_GRACE for stopped, restarted in self.windows)


class Latencies:
    """Seconds per ping-pong round trip and per short connection, by phase."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values = {(kind, phase): array.array("d") for kind in ("pingpong", "churn") for phase in ("calm", "hostile")}

    def add(self, kind: str, phase: str, seconds: float) -> None:
        with self.lock:
            self.values[(kind, phase)].append(seconds)

    def percentiles(self, kind: str, phase: str) -> tuple[int, float, float] | None:
        """(count, p50 ms, p99 ms), or None without a sample."""
        with self.lock:
            values = sorted(self.values[(kind, phase)])
        if not values:
            return None
        return len(values), values[len(values) // 2] * 1000, values[min(len(values) - 1, int(len(values) * 0.99))] * 1000


@dataclass
class Normal:
    """What every normal client shares: where the proxy is, the phases, the flaps, the counters."""
    proxy_port: int
    until: float
    schedule: Schedule
    flaps: FlapLog
    counters: "Counters"
    latencies: Latencies

    def failed(self, key: str, sample: str, at: float | None = None) -> None:
        """Counts a failure of normal traffic under `key`, overall and for its phase."""
        self.counters.add(key, sample=sample)
        self.counters.add(f"normal_failures_{self.schedule.phase(at)}")

    def reset(self, kind: str, at: float) -> None:
        """A normal session ended in a reset noticed at `at`: the flap's, or a failure."""
        if self.flaps.covers(at):
            self.counters.add("reset_sessions")
        else:
            self.failed("resets_outside_flaps", f"{kind}: reset {at - self.schedule.started:.1f} s into the run, no flap then", at)


# ---------------------------------------------------------------- normal traffic

def bulk_session(normal: Normal, source: tuple[str, int], rng: random.Random) -> None:
    size = rng.randint(1 << 20, 8 << 20)
    data = pattern(rng.getrandbits(64), size)
    expected = hashlib.blake2b(data).hexdigest()
    s = socket.create_connection(("127.0.0.1", normal.proxy_port), timeout=SOCKET_TIMEOUT, source_address=source)
    send_error: list[tuple[BaseException, float]] = []

    def sender() -> None:
        try:
            offset = 0
            while offset < size:
                step = rng.randint(1, 256 << 10)
                s.sendall(data[offset:offset + step])
                offset += step
            s.shutdown(socket.SHUT_WR)
        except OSError as error:
            send_error.append((error, time.monotonic()))

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    received = hashlib.blake2b()
    count = 0
    mismatch = False
    ending = "eof"
    reset_at = 0.0
    try:
        while True:
            chunk = s.recv(1 << 18)
            if not chunk:
                break
            if data[count:count + len(chunk)] != chunk:
                mismatch = True
            received.update(chunk)
            count += len(chunk)
    except socket.timeout:
        ending = "stall"
    except OSError as error:
        ending, reset_at = ("reset", time.monotonic()) if is_reset(error) else (f"error {error}", 0.0)
    thread.join(SOCKET_TIMEOUT)
    s.close()
    for error, at in send_error:
        if is_reset(error) and ending == "eof":
            ending, reset_at = "reset", at
    if mismatch or count > size:
        normal.failed("integrity_errors", f"bulk: corrupted bytes within {count} of {size}")
    elif ending == "eof" and count == size and received.hexdigest() == expected:
        normal.counters.add("bulk_ok")
        normal.counters.add("bytes_checked", size)
    elif ending == "eof" and count == 0:
        normal.failed("clean_eof_before_any_byte", f"bulk: clean EOF before any byte of {size}")
    elif ending == "eof":
        normal.failed("integrity_errors", f"bulk: clean EOF after {count} of {size} bytes")
    elif ending == "reset":
        normal.reset("bulk", reset_at)
    else:
        normal.failed("failed_sessions", f"bulk: {ending} after {count} of {size}")


def bulk_loop(normal: Normal, source: tuple[str, int], seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < normal.until:
        try:
            bulk_session(normal, source, rng)
        except OSError as error:
            normal.failed("failed_sessions", f"bulk connect: {error}")
            time.sleep(0.2)


def pingpong_loop(normal: Normal, source: tuple[str, int], seed: int) -> None:
    rng = random.Random(seed)
    s = None
    exchanged = 0  # round trips completed on the current connection
    while time.monotonic() < normal.until:
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", normal.proxy_port), timeout=SOCKET_TIMEOUT, source_address=source)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                exchanged = 0
            message = rng.randbytes(64)
            began = time.monotonic()
            s.sendall(message)
            reply = b""
            while len(reply) < 64:
                chunk = s.recv(64 - len(reply))
                if not chunk:
                    raise EOFError(f"clean EOF after {len(reply)} of 64 reply bytes")
                reply += chunk
            if reply != message:
                normal.failed("integrity_errors", "ping-pong: reply differs")
            else:
                normal.counters.add("pingpong_ok")
                normal.latencies.add("pingpong", normal.schedule.phase(began), time.monotonic() - began)
                exchanged += 1
            time.sleep(0.004)
        except EOFError as error:
            # A clean end in answer to a request: the backend went away, and the proxy passed it
            # on as a FIN instead of a reset. Before any exchange that is issue 14's gap.
            normal.failed("clean_eof_before_any_byte" if exchanged == 0 else "integrity_errors",
                          f"ping-pong: {error}, {exchanged} round trips before on this connection")
            s.close()
            s = None
        except OSError as error:
            if is_reset(error):
                normal.reset("ping-pong", time.monotonic())
            else:
                normal.failed("failed_sessions", f"ping-pong: {error}")
                time.sleep(0.2)
            if s is not None:
                s.close()
            s = None
    if s is not None:
        s.close()


def churn_loop(normal: Normal, source: tuple[str, int], seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < normal.until:
        message = rng.randbytes(100)
        began = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", normal.proxy_port), timeout=SOCKET_TIMEOUT, source_address=source) as s:
                s.sendall(message)
                s.shutdown(socket.SHUT_WR)
                reply = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            if reply == message:
                normal.counters.add("churn_ok")
                normal.latencies.add("churn", normal.schedule.phase(began), time.monotonic() - began)
            elif reply == b"":
                normal.failed("clean_eof_before_any_byte", "churn: clean EOF before any byte")
            else:
                normal.failed("integrity_errors", f"churn: {len(reply)} bytes back of 100")
        except OSError as error:
            # ENOTCONN from shutdown(SHUT_WR) is a reset that landed before it.
            if is_reset(error):
                normal.reset("churn", time.monotonic())
            else:
                normal.failed("failed_sessions", f"churn: {error}")
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


def flap_loop(backend: EchoBackend, until: float, counters: Counters, flaps: FlapLog) -> None:
    next_flap = time.monotonic() + 10
    while time.monotonic() < until:
        time.sleep(0.2)
        if time.monotonic() >= next_flap and time.monotonic() + 4 < until:
            # The window opens before the first reset is sent and closes after the restart.
            flaps.stopped()
            flaps.add_cut(backend.stop())
            counters.add("flaps")
            time.sleep(3)
            backend.start()
            flaps.restarted()
            next_flap = time.monotonic() + 12


# ---------------------------------------------------------------- the hostile mix
#
# Each kind runs in one thread, only during hostile phases, and ends (closing every socket it
# opened) when its phase ends. Its outcomes are counted under hostile_*; none is a failure of
# the normal traffic, but a corrupted echo is an integrity error like any other.

def hostile_connect(source: str, port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((source, 0))
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def close_all(sockets) -> None:
    for s in sockets:
        try:
            s.close()
        except OSError:
            pass


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def in_hostile_phases(schedule: Schedule, body) -> None:
    """Runs body(end) once per hostile phase, end being that phase's end."""
    for start, end in schedule.hostile_windows():
        sleep_until(start)
        if time.monotonic() < end - 1:
            body(end)


def nonreaders(proxy_port: int, download_port: int, counters: Counters, end: float) -> None:
    """Downloads and echo clients that never read, held until `end`."""
    held: list[socket.socket] = []
    try:
        for index in range(DOWNLOAD_NONREADERS + ECHO_NONREADERS):
            if time.monotonic() >= end:
                break
            download = index < DOWNLOAD_NONREADERS
            try:
                held.append(hostile_connect(f"127.0.2.{151 + index % 100}", download_port if download else proxy_port))
                counters.add("hostile_nonreaders")
            except OSError:
                counters.add("hostile_connect_errors")
        # The echo clients push up to 1 MiB each, until nothing more is taken for 2 s.
        pending = {s: ECHO_NONREADER_BYTES for s in held[DOWNLOAD_NONREADERS:]}
        chunk = bytes(64 << 10)
        last_progress = time.monotonic()
        while pending and time.monotonic() < min(end, last_progress + 2):
            for s in list(pending):
                try:
                    s.setblocking(False)
                    sent = s.send(chunk[:min(len(chunk), pending[s])])
                    pending[s] -= sent
                    counters.add("hostile_nonreader_bytes", sent)
                    last_progress = time.monotonic()
                    if pending[s] == 0:
                        del pending[s]
                except BlockingIOError:
                    pass
                except OSError:
                    del pending[s]
            time.sleep(0.01)
        sleep_until(end)
    finally:
        close_all(held)


def tricklers(proxy_port: int, counters: Counters, seed: int, end: float) -> None:
    """Echo clients sending one byte every 10 to 100 ms (at most TRICKLE_MAX_BYTES each) until
    `end`; what comes back must be a prefix of what was sent."""
    rng = random.Random(seed)
    clients = []  # [socket, sent, received, next send time]
    try:
        for index in range(TRICKLERS):
            try:
                s = hostile_connect(f"127.0.2.{101 + index}", proxy_port)
                s.setblocking(False)
                clients.append([s, bytearray(), bytearray(), time.monotonic()])
                counters.add("hostile_tricklers")
            except OSError:
                counters.add("hostile_connect_errors")
        while clients and time.monotonic() < end:
            now = time.monotonic()
            for client in list(clients):
                s, sent, received, due = client
                try:
                    while True:
                        data = s.recv(4096)
                        if not data:
                            raise ConnectionResetError("closed")
                        received += data
                except BlockingIOError:
                    pass
                except OSError:
                    counters.add("hostile_trickler_ends")
                    clients.remove(client)
                    s.close()
                    continue
                if now >= due and len(sent) < TRICKLE_MAX_BYTES:
                    byte = bytes([rng.randrange(256)])
                    try:
                        if s.send(byte) == 1:
                            sent += byte
                            counters.add("hostile_trickled_bytes")
                    except OSError:
                        pass
                    client[3] = now + rng.uniform(0.010, 0.100)
            time.sleep(0.005)
        for s, sent, received, _ in clients:
            if bytes(received) != bytes(sent[:len(received)]):
                counters.add("integrity_errors", sample=f"trickler: {len(received)} bytes back differ from the {len(sent)} sent")
    finally:
        close_all(client[0] for client in clients)


def abandoners(proxy_port: int, counters: Counters, seed: int, end: float) -> None:
    """Clients that connect, send 0 to 50 bytes, and close at once or leave the connection open
    for 1 to 5 s; at most ABANDON_PER_SECOND a second and ABANDON_MAX_OPEN open."""
    rng = random.Random(seed)
    open_until: list[tuple[float, socket.socket]] = []
    budget = int(ABANDON_PER_SECOND * (end - time.monotonic())) + 1
    try:
        for index in range(budget):
            if time.monotonic() >= end:
                break
            now = time.monotonic()
            for item in [item for item in open_until if item[0] <= now]:
                open_until.remove(item)
                item[1].close()
            if len(open_until) < ABANDON_MAX_OPEN:
                try:
                    s = hostile_connect(f"127.0.2.{1 + index % 50}", proxy_port, timeout=2.0)
                    if rng.random() < 0.5:
                        s.send(rng.randbytes(rng.randint(1, 50)))
                    if rng.random() < 0.5:
                        s.close()
                    else:
                        open_until.append((now + rng.uniform(1, 5), s))
                    counters.add("hostile_abandoned")
                except OSError:
                    counters.add("hostile_connect_errors")
            sleep_until(now + 1 / ABANDON_PER_SECOND)
    finally:
        close_all(s for _, s in open_until)


def flood_burst(proxy_port: int, counters: Counters) -> None:
    """FLOOD_PER_SOURCE connections from each of FLOOD_SOURCES addresses at once, each sending
    16 bytes and waiting for their echo; all held for FLOOD_HOLD s, then closed. With the
    per-source limit, at most PER_SOURCE_LIMIT of one source may be served."""
    began = time.monotonic()
    selector = selectors.DefaultSelector()
    states = {}  # socket -> [source index, bytes back]
    try:
        for source in range(FLOOD_SOURCES):
            for _ in range(FLOOD_PER_SOURCE):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.bind((f"127.0.1.{source + 1}", 0))
                    s.setblocking(False)
                    s.connect_ex(("127.0.0.1", proxy_port))
                except OSError:
                    s.close()
                    counters.add("hostile_connect_errors")
                    continue
                states[s] = [source, b""]
                selector.register(s, selectors.EVENT_WRITE)
        served = [0] * FLOOD_SOURCES
        message = b"flood-16-bytes!\n"
        unresolved = len(states)
        while unresolved and time.monotonic() < began + FLOOD_HOLD + 2:
            for key, events in selector.select(timeout=0.1):
                s = key.fileobj
                source, back = states[s]
                try:
                    if events & selectors.EVENT_WRITE:
                        code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if code:
                            raise OSError(code, os.strerror(code))
                        s.send(message)
                        selector.modify(s, selectors.EVENT_READ)
                        continue
                    data = s.recv(64)
                    if not data:
                        raise ConnectionResetError("closed")
                    back += data
                    states[s][1] = back
                    if len(back) >= len(message):
                        if back[:len(message)] != message:
                            counters.add("integrity_errors", sample="flood: echo differs")
                        served[source] += 1
                        counters.add("hostile_flood_served")
                        selector.unregister(s)
                        unresolved -= 1
                except OSError:
                    counters.add("hostile_flood_refused")
                    selector.unregister(s)
                    unresolved -= 1
        counters.add("hostile_flood_opened", len(states))
        counters.add("hostile_flood_unanswered", unresolved)
        counters.add("hostile_flood_bursts")
        counters.maximum("hostile_flood_most_served_by_one_source", max(served, default=0))
        sleep_until(began + FLOOD_HOLD)
    finally:
        selector.close()
        close_all(states)


def flood(proxy_port: int, counters: Counters, end: float) -> None:
    while time.monotonic() + FLOOD_HOLD + 2 < end:
        began = time.monotonic()
        flood_burst(proxy_port, counters)
        sleep_until(min(end, began + FLOOD_EVERY))


def hostile_process(schedule: Schedule, proxy_port: int, download_port: int, seed: int, results) -> None:
    """Runs the hostile mix in a process of its own (so that its loops do not hold the normal
    clients' interpreter lock: the normal traffic's latency is the proxy's, not the harness's),
    then puts its counters' values and first failures on `results`."""
    counters = Counters()
    threads = [threading.Thread(target=in_hostile_phases, args=(schedule, body), daemon=True) for body in (
        lambda end: nonreaders(proxy_port, download_port, counters, end),
        lambda end: tricklers(proxy_port, counters, seed + 30, end),
        lambda end: abandoners(proxy_port, counters, seed + 40, end),
        lambda end: flood(proxy_port, counters, end))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, schedule.until - time.monotonic()) + SOCKET_TIMEOUT)
    results.put((counters.snapshot(), counters.samples))


# ---------------------------------------------------------------- sampling and verdict

def proc_sample(pid: int) -> tuple[int, int, int] | None:
    """(RSS in KiB, open descriptors, utime + stime in clock ticks) of the proxy; None once it is gone."""
    try:
        return status_kib(pid, "VmRSS"), open_descriptors(pid), sum(cpu_ticks(pid))
    except (OSError, RuntimeError, ValueError, IndexError):
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
            if r["hostile"]:
                ax.axvspan(r["seconds"] - 0.5, r["seconds"] + 0.5, color="purple", alpha=0.08, linewidth=0)
    fig.suptitle(f"Switchyard soak: {verdict_line}\n(orange: a backend is down; purple: the hostile mix runs)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def proxy_config(admin_path: str, proxy_port: int, backends: list[str], download: tuple[int, int] | None,
                 per_source_limit: int | None) -> str:
    """The proxy's YAML configuration: the service `main` the normal traffic uses (with
    `max-connections-per-source` when given) and, for the hostile mix, a service `download`
    (listen port, backend port) whose backend streams."""
    lines = ["workers: 2", f"admin-socket: {json.dumps(admin_path)}", "services:", "  main:",
             f'    listen: ["127.0.0.1:{proxy_port}"]', "    connect-timeout: 1s",
             "    health: {interval: 500ms, timeout: 300ms, rise: 2, fall: 2}"]
    if per_source_limit is not None:
        lines.append(f"    max-connections-per-source: {per_source_limit}")
    lines.append(f"    backends: {json.dumps(backends)}")
    if download is not None:
        lines += ["  download:", f'    listen: ["127.0.0.1:{download[0]}"]', "    health: off",
                  f'    backends: ["127.0.0.1:{download[1]}"]']
    return "\n".join(lines) + "\n"


def knows_per_source_limit(binary: str) -> bool:
    """Whether `binary` takes the `max-connections-per-source` key (issue 27's per-client
    controls), asked of `switchyard check-config` so that the soak runs before and after them."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "probe.yaml")
        with open(path, "w") as f:
            f.write(proxy_config(os.path.join(folder, "admin.sock"), free_port(), ["127.0.0.1:9"], None, PER_SOURCE_LIMIT))
        result = subprocess.run([binary, "check-config", path], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    return result.returncode == 0


def latency_line(latencies: Latencies, kind: str, phase: str) -> str:
    figures = latencies.percentiles(kind, phase)
    if figures is None:
        return f"{kind} none"
    count, p50, p99 = figures
    return f"{kind} {count} (p50 {p50:.2f} ms, p99 {p99:.2f} ms)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--hostile", action="store_true",
                        help="alternate calm phases with phases where the hostile mix runs beside the normal traffic")
    args = parser.parse_args()
    if not (0 < args.minutes <= 24 * 60):
        print("soak: --minutes must be more than 0 and at most 1440", file=sys.stderr)
        return 64
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    os.makedirs(args.out, exist_ok=True)

    # The flood alone holds FLOOD_SOURCES * FLOOD_PER_SOURCE sockets at once.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    backends = [EchoBackend(f"b{i}") for i in range(1, 4)]
    names = [f"127.0.0.1:{b.port}" for b in backends]
    download = DownloadBackend() if args.hostile else None
    proxy_port = free_port()
    download_port = free_port() if args.hostile else 0
    limited = args.hostile and knows_per_source_limit(args.binary)
    admin_path = os.path.join(args.out, "admin.sock")
    config_path = os.path.join(args.out, "switchyard.yaml")
    with open(config_path, "w") as f:
        f.write(proxy_config(admin_path, proxy_port, names, (download_port, download.port) if download else None,
                             PER_SOURCE_LIMIT if limited else None))
    hostile = None
    procs = Procs(log)
    proxy = procs.start("proxy", [args.binary, "serve", "--config", config_path], args.out)  # args.out/proxy.log
    try:
        try:
            wait_listening(proxy_port, proxy, timeout=10)
        except RuntimeError:
            log(f"the proxy did not start; see {os.path.join(args.out, 'proxy.log')}")
            return 1
        time.sleep(1.5)  # health checks confirm every backend
        start_sample = proc_sample(proxy.pid)
        assert start_sample is not None
        fds_before = start_sample[1]
        log(f"seed {seed}; proxy pid {proxy.pid} on 127.0.0.1:{proxy_port}; {args.minutes} min; output in {args.out}")
        if args.hostile:
            log("hostile mix on; " + (f"max-connections-per-source: {PER_SOURCE_LIMIT}" if limited
                                      else "this binary has no max-connections-per-source: the flood is not limited"))

        counters = Counters()
        flaps = FlapLog()
        latencies = Latencies()
        started = time.monotonic()
        until = started + args.minutes * 60
        schedule = Schedule(started, until, args.hostile)
        normal = Normal(proxy_port, until, schedule, flaps, counters, latencies)
        threads = []
        for i in range(3):
            threads.append(threading.Thread(target=bulk_loop, args=(normal, normal_source(i), seed + i), daemon=True))
        for i in range(3):
            threads.append(threading.Thread(target=pingpong_loop, args=(normal, normal_source(10 + i), seed + 10 + i), daemon=True))
        for i in range(2):
            threads.append(threading.Thread(target=churn_loop, args=(normal, normal_source(20 + i), seed + 20 + i), daemon=True))
        threads.append(threading.Thread(target=admin_loop, args=(admin_path, names, until, counters), daemon=True))
        threads.append(threading.Thread(target=flap_loop, args=(backends[2], until, counters, flaps), daemon=True))
        if args.hostile:
            context = multiprocessing.get_context("spawn")
            hostile_results = context.Queue()
            hostile = context.Process(target=hostile_process, args=(schedule, proxy_port, download_port, seed, hostile_results),
                                      daemon=True)
            hostile.start()
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
                         "flapping": int(not backends[2].listening), "hostile": int(schedule.phase(now) == "hostile"),
                         **{k: snapshot.get(k, 0) for k in (
                             "bulk_ok", "pingpong_ok", "churn_ok", "reset_sessions", "integrity_errors",
                             "clean_eof_before_any_byte", "failed_sessions", "resets_outside_flaps", "admin_errors")}})
            if now >= next_report:
                log(f"{round(now - started)} s: RSS {rss / 1024:.1f} MiB, {fds} fds, CPU {cpu:.0f} %, {snapshot}")
                next_report += 30
        for thread in threads:
            thread.join(SOCKET_TIMEOUT + 5)
        if hostile is not None:
            try:
                values, samples = hostile_results.get(timeout=SOCKET_TIMEOUT + 20)
                counters.merge(values, samples)
            except queue.Empty:
                counters.add("hostile_mix_lost", sample="the hostile mix's process reported nothing")
            hostile.join(5)
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
        if hostile is not None and hostile.is_alive():
            hostile.kill()
        procs.stop(proxy, timeout=10)
        for backend in backends:
            backend.stop()
        if download is not None:
            download.stop()

    with open(os.path.join(args.out, "soak.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["seconds"])
        writer.writeheader()
        writer.writerows(rows)

    totals = counters.snapshot()
    # Memory: after a warm-up (a quarter of the run, at most 5 minutes) the RSS trend must be flat:
    # the fitted slope over the rest, times its length, under max(4 MiB, 5 % of the median).
    warm = min(len(rows) // 4, 300)
    tail = rows[warm:]
    span = f"the last {len(tail)} s"
    if args.hostile:
        # Compare like with like: the calm phases after the first hostile one, each once its
        # first third has let the pool give back what the hostile phase took.
        calm = [r for r in tail if not r["hostile"] and r["seconds"] > 2 * schedule.length
                and (r["seconds"] % (2 * schedule.length)) > schedule.length / 3]
        if len(calm) >= 10:
            tail = calm
            span = f"{len(tail)} s of the later calm phases"
    growth_kib = slope_per_minute([r["seconds"] for r in tail], [r["rss_kib"] for r in tail]) * (
        (tail[-1]["seconds"] - tail[0]["seconds"]) / 60 if tail else 0)
    median_rss = sorted(r["rss_kib"] for r in tail)[len(tail) // 2] if tail else 0
    memory_limit = max(4096, median_rss * 0.05)
    fds_max = max((r["fds"] for r in rows), default=0)
    checks = [
        ("proxy still running", alive, f"exit status {proxy.returncode}" if not alive else "yes"),
        ("memory flat", bool(tail) and growth_kib < memory_limit,
         f"RSS trend {growth_kib:+.0f} KiB over {span} (limit {memory_limit:.0f}); "
         f"median {median_rss / 1024:.1f} MiB, max {max((r['rss_kib'] for r in rows), default=0) / 1024:.1f} MiB"),
        ("descriptors back to their level", fds_after is not None and fds_after <= fds_before + 2,
         f"{fds_before} before, {fds_after} after, {fds_max} at most during the run"),
        ("no connection left open", open_connections == 0, f"open connections after the run: {open_connections}"),
        ("zero integrity errors", totals.get("integrity_errors", 0) == 0, f"{totals.get('integrity_errors', 0)}"),
        ("no cut stream ended cleanly", totals.get("clean_eof_before_any_byte", 0) == 0,
         f"{totals.get('clean_eof_before_any_byte', 0)} sessions ended in a clean EOF before any byte (issue 14)"),
        ("no stalled or failed session", totals.get("failed_sessions", 0) == 0, f"{totals.get('failed_sessions', 0)}"),
        ("resets only from flaps", totals.get("resets_outside_flaps", 0) == 0 and totals.get("reset_sessions", 0) <= flaps.cut,
         f"{totals.get('reset_sessions', 0)} normal sessions reset during a flap (the flaps cut {flaps.cut} backend connections), "
         f"{totals.get('resets_outside_flaps', 0)} outside one"),
        ("normal traffic never failed", totals.get("normal_failures_calm", 0) == 0 and totals.get("normal_failures_hostile", 0) == 0,
         f"{totals.get('normal_failures_calm', 0)} failures in calm phases"
         + (f", {totals.get('normal_failures_hostile', 0)} beside the hostile mix" if args.hostile else "")),
        ("admin commands answered", totals.get("admin_errors", 0) == 0 and totals.get("admin_ok", 0) > 0,
         f"{totals.get('admin_ok', 0)} ok, {totals.get('admin_errors', 0)} errors"),
        ("load ran", totals.get("bulk_ok", 0) > 0 and totals.get("pingpong_ok", 0) > 0 and totals.get("churn_ok", 0) > 0,
         f"{totals.get('bulk_ok', 0)} bulk ({totals.get('bytes_checked', 0) >> 20} MiB checked), "
         f"{totals.get('pingpong_ok', 0)} ping-pongs, {totals.get('churn_ok', 0)} short connections, "
         f"{totals.get('reset_sessions', 0)} reset by flaps, {totals.get('flaps', 0)} flaps"),
    ]
    if args.hostile:
        checks += [
            ("hostile mix ran", all(totals.get(k, 0) > 0 for k in (
                "hostile_nonreaders", "hostile_tricklers", "hostile_abandoned", "hostile_flood_opened")),
             f"{totals.get('hostile_nonreaders', 0)} non-readers ({totals.get('hostile_nonreader_bytes', 0) >> 20} MiB sent unread), "
             f"{totals.get('hostile_tricklers', 0)} tricklers ({totals.get('hostile_trickled_bytes', 0)} bytes), "
             f"{totals.get('hostile_abandoned', 0)} abandoned, {totals.get('hostile_flood_bursts', 0)} floods of "
             f"{FLOOD_SOURCES} x {FLOOD_PER_SOURCE}: {totals.get('hostile_flood_opened', 0)} opened, "
             f"{totals.get('hostile_flood_served', 0)} served, {totals.get('hostile_flood_refused', 0)} refused, "
             f"{totals.get('hostile_flood_unanswered', 0)} unanswered; {totals.get('hostile_connect_errors', 0)} connects failed"),
            ("normal traffic ran beside the hostile mix",
             all(latencies.percentiles(kind, "hostile") is not None for kind in ("pingpong", "churn")),
             f"{latency_line(latencies, 'pingpong', 'hostile')}, {latency_line(latencies, 'churn', 'hostile')}"),
        ]
        if limited:
            most = totals.get("hostile_flood_most_served_by_one_source", 0)
            checks.append(("max-connections-per-source held", most <= PER_SOURCE_LIMIT and totals.get("hostile_flood_refused", 0) > 0,
                           f"at most {most} of one source's {FLOOD_PER_SOURCE} served at once (limit {PER_SOURCE_LIMIT})"))
    passed = all(ok for _, ok, _ in checks)
    verdict_line = ("PASS" if passed else "FAIL") + f" ({args.minutes:g} min{', hostile mix' if args.hostile else ''}, seed {seed})"
    lines = [f"soak verdict: {verdict_line}"] + [f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}" for name, ok, detail in checks]
    lines.append("  normal traffic latency:")
    for phase in ("calm", "hostile") if args.hostile else ("calm",):
        lines.append(f"    {'calm phases' if args.hostile else 'whole run'}: " if phase == "calm" else "    beside the hostile mix: ")
        lines[-1] += f"{latency_line(latencies, 'pingpong', phase)}, {latency_line(latencies, 'churn', phase)}; " \
                     f"{totals.get(f'normal_failures_{phase}', 0)} failures"
    if args.hostile:
        lines.append("  hostile mix: " + ("max-connections-per-source " + str(PER_SOURCE_LIMIT) if limited
                                          else "no max-connections-per-source in this binary: the flood was not limited"))
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
