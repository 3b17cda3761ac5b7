"""redis-py's `redis.lock.Lock` (redis-py.readthedocs.io, "Lock"):

    r = redis.Redis(host=..., port=...)
    lock = r.lock("name", timeout=lease, blocking_timeout=wait)
    if lock.acquire():
        ...
        lock.release()

`timeout` is the lease, `blocking_timeout` how long acquire waits, and
`sleep` (how often a waiter polls) stays at its default, 0.1 s. The lock
keeps no fencing token. On a Redis Cluster the same Lock runs on
`redis.cluster.RedisCluster` (redis-py's cluster client, "Clustering" in
its docs).
"""

from importlib.metadata import version

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError, LockError, LockNotOwnedError, TimeoutError

from lockbench_driver import Driver, Fail, Info, main


def address(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def seconds(ms):
    return max(ms, 1) / 1000.0


class RedisPy(Driver):
    library = "redis-py"
    version = version("redis")

    def start(self, servers, options):
        timeout = options.get("socket_timeout_ms", 1000) / 1000.0
        nodes = [s for s in servers if s["name"].startswith("redis-cluster-")]
        if nodes:
            # A Redis Cluster: RedisCluster routes each command to the
            # primary of its key's slot and follows MOVED; the nodes are
            # known to each other (and in CLUSTER SLOTS) by the addresses
            # they announce, which address_remap maps to where they listen.
            real = {address(s["announced"]): address(s["addr"]) for s in nodes}
            self.r = RedisCluster(
                startup_nodes=[ClusterNode(*address(s["addr"])) for s in nodes],
                address_remap=lambda a: real.get(a, a),
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
        else:
            host, port = address(servers[0]["addr"])
            # One client object per host, shared by its clients' threads, as
            # an application shares it; requests time out after
            # socket_timeout.
            self.r = redis.Redis(
                host=host,
                port=port,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
        self.r.ping()

    def acquire(self, client, key, lease_ms, timeout_ms):
        lock = self.r.lock(key, timeout=seconds(lease_ms), blocking_timeout=timeout_ms / 1000.0)
        try:
            if not lock.acquire():
                return None
        except (ConnectionError, TimeoutError) as e:
            raise Info(str(e))
        self.held.put(client, key, lock)
        return {"token": lock.local.token.decode(), "lease_ms": lease_ms}

    def release(self, client, key, token):
        lock = self.held.take(client, key)
        try:
            lock.release()
        except LockNotOwnedError:
            return {"was_held": False}
        except LockError as e:
            raise Fail(str(e))
        except (ConnectionError, TimeoutError) as e:
            raise Info(str(e))
        return {}

    def renew(self, client, key, token, lease_ms):
        lock = self.held.get(client, key)
        try:
            lock.extend(seconds(lease_ms), replace_ttl=True)
        except LockNotOwnedError as e:
            raise Fail(str(e))
        except (ConnectionError, TimeoutError) as e:
            raise Info(str(e))
        return {"lease_ms": lease_ms}


if __name__ == "__main__":
    main(RedisPy())
