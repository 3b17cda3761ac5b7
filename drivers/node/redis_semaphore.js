// redis-semaphore's Mutex (github.com/swarthy/redis-semaphore, README),
// on one Redis through ioredis:
//
//   const mutex = new Mutex(redisClient, "lockingResource", { lockTimeout, acquireTimeout, onLockLost });
//   await mutex.acquire();
//   try { ... } finally { await mutex.release(); }
//
// lockTimeout is the scenario's lease and acquireTimeout the acquire's
// timeout; a busy lock is retried every retryInterval (10 ms, the
// default). An acquire with no timeout tries once, as the README's
// "optional lock" example does it: acquireAttemptsLimit 1 and the default
// acquireTimeout. Not acquireTimeout 1: the library's loop tests
// `Date.now() < end` before its first attempt, so when the millisecond
// ticks between setting `end` and that test it returns "timeout" without
// having asked Redis (measured: 2 to 4 of 20,000 acquires of a free lock,
// each with no SET sent; issue 36). While held, the mutex refreshes its key every 0.8 of
// lockTimeout on a timer; a refresh that finds the key gone calls
// onLockLost, which the driver reports as `lost`. The token is the
// mutex's identifier (a random UUID); no fencing token.
"use strict";

const Redis = require("ioredis");
const { Mutex } = require("redis-semaphore");
const {
  Fail,
  Held,
  main,
  packageVersion,
  hostPort,
} = require("./lockbench_driver");

class RedisSemaphoreDriver {
  constructor() {
    this.library = "redis-semaphore";
    this.version = packageVersion("redis-semaphore");
    this.held = new Held();
  }

  async start(servers, options, lost) {
    const timeout = options.socket_timeout_ms || 1000;
    this.lost = lost;
    // One connection per host, shared by its clients, as an application
    // shares its client.
    this.redis = new Redis({
      ...hostPort(servers[0].addr),
      commandTimeout: timeout,
      connectTimeout: timeout,
      maxRetriesPerRequest: 1,
      lazyConnect: true,
    });
    await this.redis.connect();
    await this.redis.ping();
  }

  async acquire(client, key, leaseMs, timeoutMs) {
    const lost = this.lost;
    const attempts =
      timeoutMs > 0
        ? { acquireTimeout: timeoutMs }
        : { acquireAttemptsLimit: 1 };
    const mutex = new Mutex(this.redis, key, {
      lockTimeout: Math.max(leaseMs, 1),
      ...attempts,
      onLockLost(err) {
        lost(client, key, `onLockLost: ${err.message}`);
      },
    });
    if (!(await mutex.tryAcquire())) return null;
    this.held.put(client, key, mutex);
    return { token: mutex.identifier, lease_ms: leaseMs };
  }

  async release(client, key) {
    const mutex = this.held.take(client, key);
    await mutex.release();
    return {};
  }

  async renew(client, key) {
    // The mutex refreshes itself on its timer; there is no call to do it.
    if (!this.held.get(client, key).isAcquired) throw new Fail("not held");
    return {};
  }
}

if (require.main === module) main(new RedisSemaphoreDriver());
module.exports = RedisSemaphoreDriver;
