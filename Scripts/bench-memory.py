#!/usr/bin/env python3
"""Memory after a burst, and idle memory per connection (issue 16), Switchyard beside HAProxy.

For each load balancer and each run: start it with two echo backends, read its idle RSS, run
24 clients that stream random-size echoes (64 KiB to 2 MiB, every byte checked with CRC-32)
for --burst seconds, wait --settle seconds, read RSS again. Peak is the kernel's VmHWM. The bar
is 2 x start + 8 MiB. Then, on the same process, open --conns idle connections and report the
RSS they add per connection. Prints one line per run and the medians.

RSS is a memory figure, not a timing, so this is fair on a shared machine; nothing here is
timed. Usage: Scripts/bench-memory [--runs 3] [--burst 5] [--settle 15] [--conns 2000]
                                  [--lb switchyard,haproxy] [--switchyard-args "..."] [--bin PATH]
"""
import argparse
import asyncio
import os
import random
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib

# Scripts/bench's pieces (Scripts/benchlib, beside this file): process control, /proc, HAProxy's configuration
from benchlib.build import build_switchyard
from benchlib.lbconfigs import haproxy_config, switchyard_serve
from benchlib.log import logger
from benchlib.processes import Procs, free_port, wait_listening
from benchlib.procfs import status_kib

MIB = 1024 * 1024

log = logger("bench-memory")
# Every load balancer and echo backend, in a session of its own (out of reach of Ctrl-C), stopped by PID.
PROCS = Procs(log)


# ------------------------------------------------------------------------------------------
# echo backend (a child process of this script: `bench-memory.py --echo PORT`)

async def echo_main(port: int) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(256 * 1024):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096, limit=256 * 1024)
    async with server:
        await server.serve_forever()


# ------------------------------------------------------------------------------------------
# load

def echo_once(sock: socket.socket, pattern: memoryview, size: int, offset: int) -> None:
    """Sends `size` bytes of `pattern` from `offset` and reads them back, checking CRC-32."""
    import selectors
    sent = received = 0
    sent_crc = received_crc = 0
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        deadline = time.monotonic() + 60
        while received < size:
            if time.monotonic() > deadline:
                raise RuntimeError("echo stalled for 60 s")
            for _, events in selector.select(timeout=1):
                if events & selectors.EVENT_WRITE and sent < size:
                    start = (offset + sent) % (len(pattern) // 2)
                    chunk = pattern[start:start + min(64 * 1024, size - sent)]
                    n = sock.send(chunk)
                    sent_crc = zlib.crc32(chunk[:n], sent_crc)
                    sent += n
                    if sent == size:
                        selector.modify(sock, selectors.EVENT_READ)
                if events & selectors.EVENT_READ:
                    data = sock.recv(256 * 1024)
                    if not data:
                        raise RuntimeError(f"closed after {received} of {size} bytes")
                    received_crc = zlib.crc32(data, received_crc)
                    received += len(data)
    if received != size or received_crc != sent_crc:
        raise RuntimeError(f"echo mismatch: {received} of {size} bytes, crc {received_crc:08x} != {sent_crc:08x}")


def burst(port: int, clients: int, seconds: float, seed: int) -> tuple[int, int]:
    """`clients` threads echo random sizes for `seconds`; returns (echoes, bytes). Raises on any error."""
    pattern = memoryview(random.Random(seed).randbytes(4 * MIB))
    errors: list[str] = []
    totals = [0, 0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.setblocking(False)
                count = moved = 0
                while time.monotonic() < stop and count < 100_000:
                    size = rng.randint(64 * 1024, 2 * MIB)
                    echo_once(sock, pattern, size, rng.randrange(2 * MIB))
                    count += 1
                    moved += size
                with lock:
                    totals[0] += count
                    totals[1] += moved
        except Exception as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(f"client {index}: {exc}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    if errors:
        raise RuntimeError("; ".join(errors[:3]))
    return totals[0], totals[1]


def idle_connections(port: int, pid: int, count: int) -> float:
    """Opens `count` idle connections, waits for the RSS to settle; returns KiB added per connection."""
    time.sleep(0.5)
    before = status_kib(pid, "VmRSS")
    sockets = []
    try:
        deadline = time.monotonic() + 60
        while len(sockets) < count and time.monotonic() < deadline:
            try:
                sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                time.sleep(0.05)
        time.sleep(3)
        after = status_kib(pid, "VmRSS")
    finally:
        for sock in sockets:
            sock.close()
    if len(sockets) < count:
        raise RuntimeError(f"opened only {len(sockets)} of {count} idle connections")
    return (after - before) / count


# ------------------------------------------------------------------------------------------
# load balancers

def starved_receives(metrics_port: int) -> float:
    """Sum of switchyard_starved_receives_total (receives that found no provided buffer)."""
    with socket.create_connection(("127.0.0.1", metrics_port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        body = b""
        while chunk := sock.recv(65536):
            body += chunk
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode(errors="replace").splitlines()
               if line.startswith("switchyard_starved_receives_total"))


def start_lb(kind: str, listen: int, backends: list[int], tmp: str, binary: str, extra: list[str],
             metrics_port: int) -> subprocess.Popen:
    if kind == "haproxy":
        config = os.path.join(tmp, "haproxy.cfg")
        with open(config, "w") as f:
            f.write(haproxy_config(2, 8000, listen, backends))
        argv = ["haproxy", "-db", "-f", config]
    else:
        argv = switchyard_serve(binary, listen, backends,
                                ["--no-admin-socket", "--metrics", f"127.0.0.1:{metrics_port}", *extra])
    return PROCS.start_listening(kind, argv, tmp, listen, new_session=True)


def one_run(kind: str, args, run: int, tmp: str) -> dict:
    backends = [free_port(), free_port()]
    echoes = [PROCS.start(f"echo-{port}", [sys.executable, os.path.abspath(__file__), "--echo", str(port)], None,
                          new_session=True)
              for port in backends]
    proc = None
    try:
        for port, echo in zip(backends, echoes):
            wait_listening(port, echo)
        listen = free_port()
        metrics_port = free_port()
        proc = start_lb(kind, listen, backends, tmp, args.bin, shlex.split(args.switchyard_args), metrics_port)
        time.sleep(1)
        start = status_kib(proc.pid, "VmRSS")
        count, moved = burst(listen, args.clients, args.burst, seed=run + 1)
        peak = status_kib(proc.pid, "VmHWM")
        starved = starved_receives(metrics_port) if kind == "switchyard" else float("nan")
        time.sleep(args.settle)
        after = status_kib(proc.pid, "VmRSS")
        per_conn = idle_connections(listen, proc.pid, args.conns) if args.conns else float("nan")
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} died")
        return {"start": start / 1024, "peak": peak / 1024, "after": after / 1024,
                "bar": 2 * start / 1024 + 8, "echoes": count, "gib": moved / 2**30, "kib_per_conn": per_conn,
                "starved_per_gib": starved / max(moved / 2**30, 1e-9)}
    finally:
        if proc is not None:
            PROCS.stop(proc, timeout=10)
        for echo in echoes:
            PROCS.stop(echo, timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--echo", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--burst", type=float, default=5, help="seconds of streaming echoes")
    parser.add_argument("--settle", type=float, default=15, help="seconds idle before RSS is read again")
    parser.add_argument("--conns", type=int, default=2000, help="idle connections for KiB per connection (0: skip)")
    parser.add_argument("--lb", default="switchyard,haproxy", help="comma-separated: switchyard, haproxy")
    parser.add_argument("--switchyard-args", default="", help="extra flags for switchyard serve")
    parser.add_argument("--bin", help="switchyard binary (default: build the release binary)")
    args = parser.parse_args()
    if args.echo:
        asyncio.run(echo_main(args.echo))
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    kinds = [k.strip() for k in args.lb.split(",") if k.strip()]
    if "switchyard" in kinds and not args.bin:
        args.bin = build_switchyard(log)
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for run in range(args.runs):
            for kind in kinds:
                result = one_run(kind, args, run, tmp)
                results[kind].append(result)
                log(f"{kind} run {run + 1}: start {result['start']:.1f} MiB, peak {result['peak']:.1f}, "
                    f"after {args.settle:.0f} s {result['after']:.1f} "
                    f"(bar {result['bar']:.1f}), {result['echoes']} echoes / {result['gib']:.2f} GiB, "
                    f"idle {result['kib_per_conn']:.2f} KiB/conn, {result['starved_per_gib']:.0f} starved receives/GiB")
    print(f"| LB ({args.runs} runs, medians) | idle start MiB | peak MiB | {args.settle:.0f} s after MiB "
          f"| bar (2x start + 8) | within bar | idle KiB/conn ({args.conns}) | starved receives/GiB |")
    print("|---|---|---|---|---|---|---|---|")
    failed = False
    for kind, runs in results.items():
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        ok = med["after"] <= med["bar"]
        failed |= kind == "switchyard" and not ok
        name = kind + (f" {args.switchyard_args}" if kind == "switchyard" and args.switchyard_args else "")
        print(f"| {name} | {med['start']:.1f} | {med['peak']:.1f} | {med['after']:.1f} | {med['bar']:.1f} "
              f"| {'yes' if ok else 'NO'} | {med['kib_per_conn']:.2f} | {med['starved_per_gib']:.0f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
