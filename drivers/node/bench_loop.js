// The library on its own: one client's acquire + release in a loop, in
// this process, through the same driver code lockbench runs but without
// the protocol (benches/driver_overhead.rs compares the two).
//
//   node bench_loop.js MODULE SERVERS_JSON OPTIONS_JSON CYCLES [paced]
//
// prints one JSON line: {"cycles": n, "median_us": m, "mean_us": a}, a
// cycle's time being its two calls'. `paced`: before each call the loop
// waits, as a driver waits for its next request: it writes "." on stdout
// and blocks until one byte comes back on stdin. The environment's WARMUP
// cycles (default 0) run first, untimed.
"use strict";

const fs = require("fs");

const byte = Buffer.alloc(1);

function waitForTheBench() {
  fs.writeSync(1, ".");
  if (fs.readSync(0, byte, 0, 1, null) !== 1) {
    throw new Error("paced: the bench closed stdin");
  }
}

async function run() {
  const [file, servers, options, cycles, mode] = process.argv.slice(2);
  const paced = mode === "paced";
  const Driver = require(`./${file}`);
  const driver = new Driver();
  await driver.start(JSON.parse(servers), JSON.parse(options), () => {});
  const n = Number(cycles);
  const warmup = Number(process.env.WARMUP || 0);
  const times = [];
  for (let i = 0; i < warmup + n; i++) {
    if (paced) waitForTheBench();
    const t0 = process.hrtime.bigint();
    const out = await driver.acquire(0, "bench", 10000, 1000);
    const t1 = process.hrtime.bigint();
    if (out === null) throw new Error("acquire: busy");
    if (paced) waitForTheBench();
    const t2 = process.hrtime.bigint();
    await driver.release(0, "bench", out.token);
    if (i >= warmup) {
      times.push(Number(t1 - t0 + process.hrtime.bigint() - t2) / 1e3);
    }
  }
  const mean = times.reduce((a, b) => a + b, 0) / n;
  times.sort((a, b) => a - b);
  fs.writeSync(
    1,
    JSON.stringify({
      cycles: n,
      median_us: times[Math.floor(n / 2)],
      mean_us: mean,
    }) + "\n",
  );
  process.exit(0);
}

run().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
