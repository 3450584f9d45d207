#!/usr/bin/env python3
"""Tiny echo backend for the ping-pong load: echo.py PORT (one thread, epoll)."""
import selectors, socket, sys

port = int(sys.argv[1])
sel = selectors.DefaultSelector()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(256)
ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ, None)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s is ls:
            c, _ = ls.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ, None)
            continue
        try:
            data = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            data = b""
        if not data:
            sel.unregister(s)
            s.close()
            continue
        s.setblocking(True)   # 64-byte replies: never actually blocks
        s.sendall(data)
        s.setblocking(False)
