// The protocol side of lockbench's Node.js drivers (drivers/PROTOCOL.md):
// read JSON lines from stdin, serve each request as its own async task
// (a client's requests come one at a time, so they stay in order), write
// each reply as one JSON line on stdout. A library's file only says how it
// takes, gives back and extends a lock; see redlock.js.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const readline = require("node:readline");

const PROTOCOL = 1;

/** The operation definitely did not happen (reply `fail`). */
class Fail extends Error {}

/**
 * Each client's lock objects by key, from its acquire to its release: what
 * a driver keeps between a client's calls.
 */
class Held {
  constructor() {
    this.byId = new Map();
  }

  put(client, key, lock) {
    this.byId.set(`${client}/${key}`, lock);
  }

  /** The lock object, or Fail: lockbench asked for a lock not held. */
  get(client, key) {
    const lock = this.byId.get(`${client}/${key}`);
    if (lock === undefined) throw new Fail("no lock object for this key");
    return lock;
  }

  /** `get`, and forget it (a release). */
  take(client, key) {
    const lock = this.get(client, key);
    this.byId.delete(`${client}/${key}`);
    return lock;
  }
}

/** The lock stayed busy until the timeout. */
const BUSY = "busy: not acquired within the timeout";

function send(msg) {
  // Writes to a pipe are synchronous on Linux: one whole line per call.
  process.stdout.write(JSON.stringify(msg) + "\n");
}

function log(text) {
  process.stderr.write(text + "\n");
}

/**
 * Serves `driver` until lockbench closes stdin. A driver has `library`,
 * `version`, `start(servers, options, lost)`, and async
 * `acquire(client, key, leaseMs, timeoutMs)` (the `ok` body with `token`,
 * or null when busy until the timeout), `release(client, key, token)` and
 * `renew(client, key, token, leaseMs)`; it throws Fail for `fail`, anything
 * else for `info` (when in doubt, info). `lost(client, key, reason)` tells
 * lockbench a lock is gone.
 */
function main(driver) {
  const lines = readline.createInterface({
    input: process.stdin,
    crlfDelay: Infinity,
  });
  let started = null;
  const lost = (client, key, reason) =>
    send({ type: "lost", client, key, reason });
  lines.on("line", (line) => {
    if (!line.trim()) return;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (e) {
      log(`not JSON (${e.message}): ${line}`);
      return;
    }
    if (started === null) {
      if (msg.type !== "init" || msg.protocol !== PROTOCOL) {
        send({
          type: "error",
          error: `expected init of protocol ${PROTOCOL}, got ${line}`,
        });
        process.exit(1);
      }
      started = Promise.resolve()
        .then(() => driver.start(msg.servers || [], msg.options || {}, lost))
        .then(
          () =>
            send({
              type: "init_ok",
              library: driver.library,
              version: driver.version,
            }),
          (e) => {
            log(e && e.stack ? e.stack : String(e));
            send({
              type: "error",
              error: String(e && e.message ? e.message : e),
            });
            process.exit(1);
          },
        );
      return;
    }
    started.then(() => serve(driver, msg));
  });
  lines.on("close", () => process.exit(0));
}

/** The machine's monotonic clock in nanoseconds (libuv reads CLOCK_MONOTONIC). */
function monotonicNs() {
  return Number(process.hrtime.bigint());
}

/** Calls the library for one request: its reply's fields, or null when busy. */
function call(driver, msg) {
  if (msg.type === "acquire") {
    return driver.acquire(
      msg.client,
      msg.key,
      msg.lease_ms || 0,
      msg.timeout_ms || 0,
    );
  }
  if (msg.type === "release") {
    return driver.release(msg.client, msg.key, msg.token);
  }
  return driver.renew(msg.client, msg.key, msg.token, msg.lease_ms || 0);
}

async function serve(driver, msg) {
  const id = msg.id;
  if (!["acquire", "release", "renew"].includes(msg.type)) {
    log(`unknown request type ${JSON.stringify(msg.type)}`);
    send({
      type: "info",
      id,
      error: `unknown request type ${JSON.stringify(msg.type)}`,
    });
    return;
  }
  // The library's own time, on the machine's monotonic clock (PROTOCOL.md).
  const called = monotonicNs();
  let reply;
  try {
    const out = await call(driver, msg);
    if (out === null && msg.type === "acquire") {
      reply = { type: "fail", id, error: BUSY };
    } else {
      reply = { type: "ok", id, ...(out || {}) };
    }
  } catch (e) {
    if (e instanceof Fail) {
      reply = { type: "fail", id, error: e.message || "failed" };
    } else {
      log(e && e.stack ? e.stack : String(e));
      reply = {
        type: "info",
        id,
        error: `${e && e.name ? e.name : "Error"}: ${e && e.message ? e.message : e}`,
      };
    }
  }
  reply.t = [called, monotonicNs()];
  send(reply);
}

/** The version of the installed package `name`. */
function packageVersion(name) {
  // Not every package exports its package.json: read it from disk.
  const file = path.join(__dirname, "node_modules", name, "package.json");
  // redlock 5.0.0-beta.2 writes its version as "v5.0.0-beta.2".
  return JSON.parse(fs.readFileSync(file, "utf8")).version.replace(/^v/, "");
}

/** `host:port` as ioredis wants it. */
function hostPort(addr) {
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

module.exports = { Fail, Held, main, packageVersion, hostPort, log };
