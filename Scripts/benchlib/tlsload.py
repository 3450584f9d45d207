"""TLS load generator and plain peers for the benchmark's tls workloads (run as a script, pinned by
the caller; prints one JSON object).

  tlsload.py serve --echo PORT --discard PORT          plain backends on 127.0.0.1 until killed
  tlsload.py handshakes --port P --cafile F --duration S [--resume] [--clients N]
  tlsload.py bulk --port P --cafile F --duration S
  tlsload.py pingpong --port P --cafile F --duration S

handshakes: each client loops for S seconds: connect, TLS handshake (verifying the certificate
for SERVER_NAME), one byte to the echo backend and back (so every handshake reaches a backend and,
in TLS 1.3, the session ticket is read), close. With --resume every connection offers the session
of the previous one; `resumed` counts those the server accepted. bulk: one TLS connection sends
256 KiB writes for S seconds to a discarding backend. pingpong: one TLS connection, 64-byte
messages echoed, round trips timed (the first 0.2 s are warm-up, not counted in percentiles).
Every loop is bounded by its duration; every socket has a 5 s timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import ssl
import sys
import time

SERVER_NAME = "bench.switchyard.test"
TIMEOUT = 5.0


def client_context(cafile: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def connect(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return ctx.wrap_socket(raw, server_hostname=SERVER_NAME, session=session)
    except BaseException:
        raw.close()
        raise


def recv_exactly(sock: ssl.SSLSocket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return buf


def handshake_loop(args: tuple[int, str, float, bool]) -> dict:
    port, cafile, duration, resume = args
    ctx = client_context(cafile)
    session, done, resumed, errors = None, 0, 0, 0
    version = cipher = ""
    end = time.monotonic() + duration
    while time.monotonic() < end:
        try:
            with connect(port, ctx, session if resume else None) as tls:
                tls.sendall(b"x")
                recv_exactly(tls, 1)
                done += 1
                resumed += tls.session_reused
                version, cipher = tls.version() or "", (tls.cipher() or ("",))[0]
                if resume:
                    session = tls.session
        except (OSError, ssl.SSLError):
            errors += 1
            session = None
            if errors > 100:
                break
    return {"handshakes": done, "resumed": resumed, "errors": errors, "version": version, "cipher": cipher}


def handshakes(a: argparse.Namespace) -> dict:
    jobs = [(a.port, a.cafile, a.duration, a.resume)] * a.clients
    t0 = time.monotonic()
    with multiprocessing.Pool(a.clients) as pool:
        parts = pool.map(handshake_loop, jobs)
    wall = time.monotonic() - t0
    n = sum(p["handshakes"] for p in parts)
    return {"handshakes": n, "hs_s": n / wall, "resumed_pct": 100.0 * sum(p["resumed"] for p in parts) / max(1, n),
            "errors": sum(p["errors"] for p in parts), "version": parts[0]["version"], "cipher": parts[0]["cipher"]}


def bulk(a: argparse.Namespace) -> dict:
    block = os.urandom(256 * 1024)
    sent = 0
    with connect(a.port, client_context(a.cafile)) as tls:
        version, cipher = tls.version(), tls.cipher()[0]
        t0 = time.monotonic()
        end = t0 + a.duration
        while time.monotonic() < end:
            tls.sendall(block)
            sent += len(block)
        wall = time.monotonic() - t0
    return {"bytes": sent, "gbit_s": sent * 8 / wall / 1e9, "version": version, "cipher": cipher}


def pingpong(a: argparse.Namespace) -> dict:
    msg = b"p" * 64
    rtts: list[int] = []
    exchanges = 0
    with connect(a.port, client_context(a.cafile)) as tls:
        version, cipher = tls.version(), tls.cipher()[0]
        t0 = time.monotonic()
        warm, end = t0 + 0.2, t0 + a.duration
        while True:
            start = time.perf_counter_ns()
            tls.sendall(msg)
            recv_exactly(tls, len(msg))
            rtt = time.perf_counter_ns() - start
            exchanges += 1
            now = time.monotonic()
            if now > warm:
                rtts.append(rtt)
            if now > end:
                break
    rtts.sort()

    def pct(p: float) -> float:
        return rtts[min(len(rtts) - 1, int(p / 100 * len(rtts)))] / 1000 if rtts else float("nan")

    return {"exchanges": exchanges, "p50_us": pct(50), "p99_us": pct(99), "p999_us": pct(99.9),
            "version": version, "cipher": cipher}


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Discard(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        pass


async def serve(a: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    if a.echo:
        servers.append(await loop.create_server(Echo, "127.0.0.1", a.echo, backlog=4096))
    if a.discard:
        servers.append(await loop.create_server(Discard, "127.0.0.1", a.discard, backlog=4096))
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["serve", "handshakes", "bulk", "pingpong"])
    ap.add_argument("--port", type=int)
    ap.add_argument("--cafile")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--echo", type=int)
    ap.add_argument("--discard", type=int)
    a = ap.parse_args()
    if a.mode == "serve":
        asyncio.run(serve(a))
        return 0
    out = {"handshakes": handshakes, "bulk": bulk, "pingpong": pingpong}[a.mode](a)
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
