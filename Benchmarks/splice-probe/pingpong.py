#!/usr/bin/env python3
"""Ping-pong client: pingpong.py PORT CONNS SECONDS PROXY_PID
Each connection sends 64 bytes and waits for the 64-byte echo, repeatedly.
Reads the proxy's utime+stime from /proc/PID/stat after all connections are up and
at the end, and prints: exchanges seconds proxy_cpu_seconds"""
import os, selectors, socket, sys, time

port, nconn, secs, pid = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
MSG = b"x" * 64
tick = os.sysconf("SC_CLK_TCK")

def cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

sel = selectors.DefaultSelector()
got = {}
for _ in range(nconn):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, None)
    got[s] = 0
# one round trip per connection before measuring, so setup is excluded
for s in got:
    s.send(MSG)
pending = nconn
while pending:
    for key, _ in sel.select():
        s = key.fileobj
        got[s] += len(s.recv(4096))
        if got[s] >= 64:
            got[s] -= 64
            pending -= 1

exchanges = 0
c0, t0 = cpu(), time.monotonic()
end = t0 + secs
for s in got:
    s.send(MSG)
running = True
while running:
    for key, _ in sel.select(0.5):
        s = key.fileobj
        data = s.recv(4096)
        if not data:
            sys.exit("connection closed by proxy")
        got[s] += len(data)
        while got[s] >= 64:
            got[s] -= 64
            exchanges += 1
            if time.monotonic() < end:
                s.send(MSG)
    if time.monotonic() >= end:
        running = False
t1 = time.monotonic()
c1 = cpu()
for s in got:
    s.close()
print(exchanges, f"{t1 - t0:.3f}", f"{c1 - c0:.2f}")
