// node-redlock v5 (github.com/mike-marcacci/node-redlock, README), Redlock
// over independent Redis masters through ioredis:
//
//   const redlock = new Redlock([client1, client2, client3], { retryCount, retryDelay });
//   let lock = await redlock.acquire(["a"], 5000);
//   try { ... } finally { await lock.release(); }
//
// The duration is the scenario's lease. A busy lock is retried every
// retryDelay (200 ms, jitter 100 ms: the defaults) until the acquire's
// timeout: retryCount = timeout / retryDelay. The lock's value is
// node-redlock's random token; no fencing token. `expiration` (the lease
// minus the drift allowance, from the start of the attempt) is the lease
// reported. On a Redis Cluster it is one ioredis Cluster client (the
// README: "one client for each independent redis node or cluster"): one
// lock in the cluster.
"use strict";

const Redis = require("ioredis");
const {
  default: Redlock,
  ResourceLockedError,
  ExecutionError,
} = require("redlock");
const {
  Fail,
  Held,
  main,
  packageVersion,
  hostPort,
} = require("./lockbench_driver");

class RedlockDriver {
  constructor() {
    this.library = "redlock";
    this.version = packageVersion("redlock");
    this.held = new Held();
  }

  async start(servers, options) {
    const timeout = options.socket_timeout_ms || 1000;
    this.retryDelay = options.retry_delay_ms || 200;
    const nodes = servers.filter((s) => s.name.startsWith("redis-cluster-"));
    if (nodes.length > 0) {
      // A Redis Cluster: one ioredis Cluster, which routes each command to
      // the primary of its key's slot and follows MOVED. The nodes know
      // each other (and CLUSTER SLOTS names them) by their announced
      // addresses, which natMap maps to where they listen.
      const natMap = {};
      for (const n of nodes) {
        if (n.announced) natMap[n.announced] = hostPort(n.addr);
      }
      const cluster = new Redis.Cluster(
        nodes.map((n) => hostPort(n.addr)),
        {
          natMap,
          redisOptions: {
            commandTimeout: timeout,
            connectTimeout: timeout,
            maxRetriesPerRequest: 1,
          },
        },
      );
      await cluster.ping();
      this.clients = [cluster];
      this.redlock = new Redlock(this.clients, { retryDelay: this.retryDelay });
      this.redlock.on("error", () => {});
      return;
    }
    this.clients = servers.map(
      (s) =>
        new Redis({
          ...hostPort(s.addr),
          commandTimeout: timeout,
          connectTimeout: timeout,
          maxRetriesPerRequest: 1,
          lazyConnect: true,
        }),
    );
    for (const c of this.clients) {
      await c.connect();
      await c.ping();
    }
    this.redlock = new Redlock(this.clients, { retryDelay: this.retryDelay });
    // Per-attempt client errors are votes against; the outcome says enough.
    this.redlock.on("error", () => {});
  }

  async acquire(client, key, leaseMs, timeoutMs) {
    const retryCount = Math.max(0, Math.floor(timeoutMs / this.retryDelay));
    let lock;
    try {
      lock = await this.redlock.acquire([key], Math.max(leaseMs, 1), {
        retryCount,
      });
    } catch (e) {
      if (e instanceof ExecutionError && (await busyOnly(e))) return null;
      throw e;
    }
    this.held.put(client, key, lock);
    return {
      token: lock.value,
      lease_ms: Math.max(0, lock.expiration - Date.now()),
    };
  }

  async release(client, key) {
    const lock = this.held.take(client, key);
    await lock.release();
    return {};
  }

  async renew(client, key, token, leaseMs) {
    const lock = this.held.get(client, key);
    let extended;
    try {
      extended = await lock.extend(Math.max(leaseMs, 1));
    } catch (e) {
      if (e instanceof ExecutionError && (await busyOnly(e)))
        throw new Fail(e.message);
      throw e;
    }
    this.held.put(client, key, extended);
    return { lease_ms: Math.max(0, extended.expiration - Date.now()) };
  }
}

// Whether every vote against, in every attempt, was a master that had the
// key locked by someone else (definitely not acquired), as opposed to a
// master that did not answer (unknown).
async function busyOnly(e) {
  if (e.attempts.length === 0) return true;
  for (const attempt of e.attempts) {
    const stats = await attempt;
    for (const err of stats.votesAgainst.values()) {
      if (!(err instanceof ResourceLockedError)) return false;
    }
  }
  return true;
}

if (require.main === module) main(new RedlockDriver());
module.exports = RedlockDriver;
