"""The protocol side of a lockbench driver (drivers/PROTOCOL.md), shared by
the Python drivers: read JSON lines from stdin, run each client's requests
on a thread of its own, write the replies as JSON lines on stdout.

A driver module only says how its library takes, gives back and extends a
lock, in the library's own words; see redis_py.py for the shortest one.
"""

import json
import os
import queue
import sys
import threading
import time
import traceback

PROTOCOL = 1


class Fail(Exception):
    """The operation definitely did not happen (reply `fail`)."""


class Info(Exception):
    """Unknown whether it happened (reply `info`): when in doubt, this."""


class Held:
    """Each client's lock objects by key, from its acquire to its release.

    Safe to read from a library's own threads (a listener that reports
    `lost` for every held lock), so a driver keeps nothing else.
    """

    def __init__(self):
        self._guard = threading.Lock()
        self._by = {}

    def put(self, client, key, lock):
        with self._guard:
            self._by[(client, key)] = lock

    def get(self, client, key):
        """The lock object, or Fail: lockbench asked for a lock not held."""
        with self._guard:
            lock = self._by.get((client, key))
        if lock is None:
            raise Fail("no lock object for this key")
        return lock

    def take(self, client, key):
        """`get`, and forget it (a release)."""
        with self._guard:
            lock = self._by.pop((client, key), None)
        if lock is None:
            raise Fail("no lock object for this key")
        return lock

    def drop(self, client, key):
        with self._guard:
            self._by.pop((client, key), None)

    def keys(self):
        """The (client, key) pairs held now."""
        with self._guard:
            return list(self._by)


class Driver:
    """What a library's driver provides.

    `start(servers, options)` connects (servers: list of {"name", "addr"});
    `acquire(client, key, lease_ms, timeout_ms)` returns a dict for the `ok`
    reply (with "token", and "fence"/"lease_ms" where the library gives
    them), returns None when the lock stayed busy until the timeout, or
    raises Fail / Info; `release(client, key, token)` returns a dict (with
    "was_held" where the library says); `renew(client, key, token,
    lease_ms)` returns a dict. `self.lost(client, key, reason)` tells
    lockbench a lock is gone, and `self.held` (a `Held`) keeps each
    client's lock objects between its calls.
    """

    library = "unknown"
    version = "unknown"

    def __init__(self):
        self.held = Held()

    def start(self, servers, options):
        pass

    def acquire(self, client, key, lease_ms, timeout_ms):
        raise Fail("acquire is not supported by this driver")

    def release(self, client, key, token):
        raise Fail("release is not supported by this driver")

    def renew(self, client, key, token, lease_ms):
        raise Fail("renew is not supported by this driver")

    # -- protocol plumbing below -------------------------------------------

    _out_lock = threading.Lock()

    def send(self, msg):
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        with self._out_lock:
            # One write of the whole line, past Python's buffers.
            while data:
                data = data[os.write(1, data) :]

    def lost(self, client, key, reason):
        self.send({"type": "lost", "client": client, "key": key, "reason": reason})

    def log(self, text):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _call(driver, kind, msg):
    client = msg.get("client")
    key = msg.get("key", "")
    if kind == "acquire":
        return driver.acquire(client, key, msg.get("lease_ms", 0), msg.get("timeout_ms", 0))
    if kind == "release":
        return driver.release(client, key, msg.get("token"))
    return driver.renew(client, key, msg.get("token"), msg.get("lease_ms", 0))


def _serve(driver, msg):
    kind = msg.get("type")
    rid = msg.get("id")
    if kind not in ("acquire", "release", "renew"):
        driver.log("unknown request type %r" % kind)
        driver.send({"type": "info", "id": rid, "error": "unknown request type %r" % kind})
        return
    # The library's own time, on the machine's monotonic clock (PROTOCOL.md).
    called = time.monotonic_ns()
    out = error = None
    try:
        out = _call(driver, kind, msg)
    except Exception as e:
        error = e
    t = [called, time.monotonic_ns()]
    if isinstance(error, Fail):
        reply = {"type": "fail", "id": rid, "error": str(error) or "failed"}
    elif isinstance(error, Info):
        reply = {"type": "info", "id": rid, "error": str(error) or "unknown outcome"}
    elif error is not None:  # when in doubt, info
        driver.log("".join(traceback.format_exception(error)))
        reply = {"type": "info", "id": rid, "error": "%s: %s" % (type(error).__name__, error)}
    elif out is None and kind == "acquire":
        reply = {"type": "fail", "id": rid, "error": "busy: not acquired within the timeout"}
    else:
        reply = {"type": "ok", "id": rid}
        reply.update(out or {})
    reply["t"] = t
    driver.send(reply)


def _worker(driver, inbox):
    while True:
        msg = inbox.get()
        if msg is None:
            return
        _serve(driver, msg)


def main(driver):
    """Runs `driver` until lockbench closes stdin.

    Each client's requests run on a thread of that client's own, as an
    application's request would run on its thread: some libraries keep a
    lock's token in thread-local storage (redis-py's Lock does by default),
    so a client's acquire and release must meet on one thread."""
    stdin = sys.stdin.buffer
    first = stdin.readline()
    if not first:
        return
    try:
        init = json.loads(first)
        if init.get("type") != "init" or init.get("protocol") != PROTOCOL:
            raise ValueError("expected init of protocol %d, got %r" % (PROTOCOL, first.strip()))
        driver.start(init.get("servers", []), init.get("options") or {})
    except Exception as e:
        driver.log(traceback.format_exc())
        driver.send({"type": "error", "error": "%s: %s" % (type(e).__name__, e)})
        return
    driver.send({"type": "init_ok", "library": driver.library, "version": driver.version})
    inboxes = {}
    for line in stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            driver.log("not JSON: %r" % line)
            continue
        client = msg.get("client")
        inbox = inboxes.get(client)
        if inbox is None:
            # SimpleQueue: the C one, whose hand-off is the cheapest.
            inbox = queue.SimpleQueue()
            inboxes[client] = inbox
            threading.Thread(target=_worker, args=(driver, inbox), daemon=True).start()
        inbox.put(msg)
