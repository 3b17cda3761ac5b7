"""kazoo's `Lock` recipe (kazoo.readthedocs.io, "Lock"), with a connection
state listener as its docs advise:

    zk = KazooClient(hosts="127.0.0.1:2181")
    zk.start()
    zk.add_listener(my_listener)
    lock = zk.Lock("/lockpath", "my-identifier")
    with lock:  # blocks waiting for lock acquisition
        ...

One ZooKeeper session per host, shared by its clients' threads. When the
session is LOST the lock's ephemeral node is gone, yet the Lock object still
says it is acquired (python-zk/kazoo #2, #565): the listener tells lockbench
(`lost`) for every lock the host's clients hold, so the history shows
whether that came before another client's grant. SUSPENDED (the connection
dropped; the session may live on) is reported too when the `lost_on`
option lists it: an application that stops acting on a suspended lock.
"""

from importlib.metadata import version

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import ConnectionLoss, LockTimeout, NoNodeError, SessionExpiredError

from lockbench_driver import Driver, Info, main


class KazooLock(Driver):
    library = "kazoo"
    version = version("kazoo")

    def start(self, servers, options):
        hosts = ",".join(s["addr"] for s in servers)
        self.zk = KazooClient(hosts=hosts, timeout=options.get("session_timeout_ms", 2000) / 1000.0)
        self.zk.start(timeout=10)
        self.report = set(options.get("lost_on", ["LOST"]))
        self.zk.add_listener(self.listener)

    def listener(self, state):
        # Runs on kazoo's own thread: never block here.
        name = {KazooState.LOST: "LOST", KazooState.SUSPENDED: "SUSPENDED"}.get(state)
        if name not in self.report:
            return
        for client, key in self.held.keys():
            self.lost(client, key, "session %s" % name)

    def acquire(self, client, key, lease_ms, timeout_ms):
        lock = self.zk.Lock("/lockbench/" + key, "client-%s" % client)
        try:
            got = lock.acquire(
                blocking=timeout_ms > 0, timeout=timeout_ms / 1000.0 if timeout_ms > 0 else None
            )
        except LockTimeout:
            return None
        except (ConnectionLoss, SessionExpiredError) as e:
            raise Info("%s: %s" % (type(e).__name__, e))
        if not got:
            return None
        self.held.put(client, key, lock)
        return {"token": lock.node or "client-%s" % client}

    def release(self, client, key, token):
        lock = self.held.get(client, key)
        try:
            lock.release()
        except NoNodeError:
            return {"was_held": False}
        except (ConnectionLoss, SessionExpiredError) as e:
            raise Info("%s: %s" % (type(e).__name__, e))
        finally:
            # Held (for the listener) until the release has run its course.
            self.held.drop(client, key)
        return {}

    def renew(self, client, key, token, lease_ms):
        # The session is the lease; kazoo keeps it alive on its own.
        self.held.get(client, key)
        return {}


if __name__ == "__main__":
    main(KazooLock())
