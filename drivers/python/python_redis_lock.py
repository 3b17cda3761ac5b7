"""python-redis-lock's `redis_lock.Lock` (python-redis-lock.readthedocs.io):

    conn = StrictRedis(...)
    lock = redis_lock.Lock(conn, "name", expire=60, auto_renewal=True)
    if lock.acquire(blocking=True, timeout=wait):
        ...
        lock.release()

`expire` is the lease in whole seconds. With `auto_renewal=True` (the
`auto_renewal` option) a thread of the lock extends it every expire * 2/3
seconds while it is held: when that thread cannot run (the process is
paused), the key expires with no signal to the holder
(ionelmc/python-redis-lock #91).

The connection keeps redis-py's default of no socket timeout: waiters block
in BLPOP for up to their timeout, and a socket timeout shorter than that
makes `acquire(timeout=2)` raise only after about 15 s here (redis-py
retries a timed-out read). The `socket_timeout_ms` option sets one.
"""

import math
import time
from importlib.metadata import version

import redis_lock
from redis import StrictRedis
from redis.exceptions import ConnectionError, TimeoutError

from lockbench_driver import Driver, Fail, Info, main


class PythonRedisLock(Driver):
    library = "python-redis-lock"
    version = version("python-redis-lock")

    def start(self, servers, options):
        host, port = servers[0]["addr"].rsplit(":", 1)
        timeout = options.get("socket_timeout_ms")
        self.conn = StrictRedis(
            host=host,
            port=int(port),
            socket_timeout=timeout / 1000.0 if timeout else None,
            socket_connect_timeout=timeout / 1000.0 if timeout else None,
        )
        self.conn.ping()
        self.auto_renewal = bool(options.get("auto_renewal", False))

    def acquire(self, client, key, lease_ms, timeout_ms):
        expire = max(1, math.ceil(lease_ms / 1000.0))
        lock = redis_lock.Lock(self.conn, key, expire=expire, auto_renewal=self.auto_renewal)
        try:
            if timeout_ms > 0:
                got = self.wait_for(lock, expire, timeout_ms / 1000.0)
            else:
                # The library refuses timeout=0 with blocking; that is a try.
                got = lock.acquire(blocking=False)
        except (ConnectionError, TimeoutError) as e:
            raise Info(str(e))
        if not got:
            return None
        self.held.put(client, key, lock)
        return {"token": lock.id, "lease_ms": expire * 1000}

    def wait_for(self, lock, expire, timeout):
        """Blocks up to `timeout` seconds. Without auto_renewal the library
        refuses a timeout longer than the expiry (TimeoutTooLarge), so an
        application waits in turns of at most `expire` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            turn = left if self.auto_renewal else min(left, expire)
            if lock.acquire(blocking=True, timeout=max(1, math.ceil(turn))):
                return True

    def release(self, client, key, token):
        lock = self.held.take(client, key)
        try:
            lock.release()
        except redis_lock.NotAcquired:
            return {"was_held": False}
        except (ConnectionError, TimeoutError) as e:
            raise Info(str(e))
        return {}

    def renew(self, client, key, token, lease_ms):
        lock = self.held.get(client, key)
        expire = max(1, math.ceil(lease_ms / 1000.0))
        try:
            lock.extend(expire=expire)
        except redis_lock.NotAcquired as e:
            raise Fail(str(e))
        except (ConnectionError, TimeoutError) as e:
            raise Info(str(e))
        return {"lease_ms": expire * 1000}


if __name__ == "__main__":
    main(PythonRedisLock())
