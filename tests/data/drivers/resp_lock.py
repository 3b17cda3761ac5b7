"""A lockbench driver without a library: a Redis lock over a plain socket.

Acquire is `SET key token NX PX lease`, retried every 10 ms until the
timeout; release deletes the key only if it still holds the token (a Lua
script), as the Redis docs' single-instance lock does. One connection per
client, one thread per client.
"""

import json
import socket
import sys
import threading
import time

RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
out = threading.Lock()


def send(msg):
    with out:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()


class Conn:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=1.0)
        self.buf = b""

    def command(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(parts))
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(4096)
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data.decode()
        raise RuntimeError("unexpected reply %r" % line)


def serve(addr, inbox):
    conn = Conn(addr)
    n = 0
    while True:
        msg = inbox.get()
        rid, key = msg["id"], "resp:" + msg["key"]
        try:
            if msg["type"] == "acquire":
                n += 1
                token = "c%s-%d" % (msg["client"], n)
                deadline = time.time() + msg["timeout_ms"] / 1000.0
                while conn.command("SET", key, token, "NX", "PX", max(msg["lease_ms"], 1)) is None:
                    if time.time() >= deadline:
                        send({"type": "fail", "id": rid, "error": "busy"})
                        break
                    time.sleep(0.01)
                else:
                    send({"type": "ok", "id": rid, "token": token, "lease_ms": msg["lease_ms"]})
            elif msg["type"] == "release":
                deleted = conn.command("EVAL", RELEASE, 1, key, msg["token"])
                send({"type": "ok", "id": rid, "was_held": deleted == "1"})
            else:
                send({"type": "fail", "id": rid, "error": "not supported"})
        except (OSError, ConnectionError) as e:
            send({"type": "info", "id": rid, "error": str(e)})
            conn = Conn(addr)


def main():
    import queue

    init = json.loads(sys.stdin.readline())
    sys.stderr.write("resp_lock: started for host %s\n" % init["host"])
    sys.stderr.flush()
    addr = init["servers"][0]["addr"]
    Conn(addr).command("PING")
    send({"type": "init_ok", "library": "resp-lock", "version": "1"})
    inboxes = {}
    for line in sys.stdin:
        msg = json.loads(line)
        inbox = inboxes.get(msg["client"])
        if inbox is None:
            inbox = inboxes[msg["client"]] = queue.Queue()
            threading.Thread(target=serve, args=(addr, inbox), daemon=True).start()
        inbox.put(msg)


main()
