"""pottery's `Redlock` (github.com/brainix/pottery, "Redlock"), on Redis
masters that know nothing of each other:

    masters = {Redis(...), Redis(...), ...}
    lock = Redlock(key="name", masters=masters, auto_release_time=lease)
    if lock.acquire(timeout=wait):
        ...
        lock.release()

A new `Redlock` object per acquisition (reusing one overwrites its token,
brainix/pottery #451). No fencing token: independent masters number
nothing (Kleppmann 2016).
"""

from importlib.metadata import version

from pottery import ExtendUnlockedLock, Redlock, ReleaseUnlockedLock, TooManyExtensions
from redis import Redis
from redis.exceptions import ConnectionError, TimeoutError

from lockbench_driver import Driver, Fail, Info, main


class PotteryRedlock(Driver):
    library = "pottery"
    version = version("pottery")

    def start(self, servers, options):
        timeout = options.get("socket_timeout_ms", 1000) / 1000.0
        self.masters = set()
        for s in servers:
            host, port = s["addr"].rsplit(":", 1)
            self.masters.add(
                Redis(
                    host=host,
                    port=int(port),
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                )
            )

    def acquire(self, client, key, lease_ms, timeout_ms):
        lock = Redlock(key=key, masters=self.masters, auto_release_time=max(lease_ms, 1) / 1000.0)
        try:
            got = (
                lock.acquire(timeout=timeout_ms / 1000.0)
                if timeout_ms > 0
                else lock.acquire(blocking=False)
            )
        except (ConnectionError, TimeoutError) as e:
            raise Info(str(e))
        if not got:
            return None
        self.held.put(client, key, lock)
        return {"token": lock._uuid, "lease_ms": lease_ms}

    def release(self, client, key, token):
        lock = self.held.take(client, key)
        try:
            lock.release()
        except ReleaseUnlockedLock:
            return {"was_held": False}
        except (ConnectionError, TimeoutError) as e:
            raise Info(str(e))
        return {}

    def renew(self, client, key, token, lease_ms):
        lock = self.held.get(client, key)
        try:
            lock.extend()
        except (ExtendUnlockedLock, TooManyExtensions) as e:
            raise Fail(str(e))
        except (ConnectionError, TimeoutError) as e:
            raise Info(str(e))
        return {}


if __name__ == "__main__":
    main(PotteryRedlock())
