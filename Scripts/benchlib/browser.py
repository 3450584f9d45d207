"""A headless chromium holding one page open for the length of a run (issue 24: the CPU per
request with the status page open in a browser, side by side with none).

Driven over its DevTools protocol on `--remote-debugging-pipe`: chromium reads commands from
descriptor 3 and writes replies and events to descriptor 4, one JSON message each, ended by a NUL
byte. Both are the child's end of one socket pair. It runs in a session of its own (Procs.start's
`new_session`, so its pid is its process group's id), is stopped by PID through PROCS, and any
helper of its group still live after that is killed by PID (Procs.stop).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import socket
import tempfile
import time

from benchlib.processes import PROCS

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--window-size=1280,900",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--mute-audio",
         # a page in a headless window counts as visible, but keep its timers at full rate anyway
         "--disable-background-timer-throttling", "--disable-renderer-backgrounding"]


class HeadlessPage:
    """chromium with `url` open (its load event seen), started on `cpus` (None: anywhere)."""

    def __init__(self, url: str, tmp: str, cpus: set[int] | None, timeout: float = 30.0):
        self.url = url
        profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
        ours, theirs = socket.socketpair()
        self.sock = ours
        self.buffer = b""
        self.next_id = 0
        self.session = None
        self.events: list[dict] = []
        # bash puts the pair on 3 and 4, then execs chromium (as taskset and the chromium wrapper
        # exec too, the pid is chromium's); moved above 9 first, so that it is neither 3 nor 4
        fd = fcntl.fcntl(theirs.fileno(), fcntl.F_DUPFD_CLOEXEC, 10)
        theirs.close()
        argv = ["bash", "-c", f'exec "$0" "$@" 3<&{fd} 4>&{fd} {fd}<&-', CHROMIUM, *FLAGS,
                f"--user-data-dir={profile}", "about:blank"]
        try:
            self.proc = PROCS.start("chromium", argv, tmp, cpus, new_session=True, pass_fds=(fd,))
        finally:
            os.close(fd)
        try:
            self.command("Browser.getVersion", timeout=timeout)
            target = self.command("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.command("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self.command("Page.enable", session=self.session)
            nav = self.command("Page.navigate", {"url": url}, session=self.session, timeout=timeout)
            if "errorText" in nav:
                raise RuntimeError(f"chromium could not open {url}: {nav['errorText']}")
            self.wait_event("Page.loadEventFired", timeout)
        except Exception:
            self.stop()
            raise

    def evaluate(self, expression: str, timeout: float = 10.0):
        """The value of a JavaScript expression in the page (JSON), a promise awaited."""
        reply = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                  "awaitPromise": True}, session=self.session, timeout=timeout)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"page script threw: {reply['exceptionDetails'].get('text')}")
        return reply.get("result", {}).get("value")

    def requests_to(self, path: str) -> int:
        """How many requests for `path` the page has made so far (its resource timing entries)."""
        return int(self.evaluate(
            f"performance.getEntriesByType('resource').filter(e => new URL(e.name).pathname === {json.dumps(path)}).length"))

    def stop(self) -> None:
        """Browser.close, then stop by PID (SIGTERM, SIGKILL after 5 s) and kill any helper left in its group."""
        try:
            self.command("Browser.close", timeout=2)
        except (RuntimeError, OSError):
            pass
        # not reaped before this: PROCS.stop finds the group's helpers while its id is still taken
        PROCS.stop(self.proc)
        self.sock.close()

    def command(self, method: str, params: dict | None = None, session: str | None = None,
                timeout: float = 10.0) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.sock.sendall(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self.read_message(deadline, method)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == self.session:
                    self.events.remove(event)
                    return event
            self.events.append(self.read_message(deadline, method))

    def read_message(self, deadline: float, what: str) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise RuntimeError(f"no answer from chromium for {what} in time")
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed its DevTools pipe (exited?) during {what}")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)


def page_cpus(pinned: bool) -> set[int] | None:
    """The browser runs beside the load generators (core 0) when the LB is pinned to core 1."""
    return {0} if pinned and (os.cpu_count() or 1) >= 2 else None
