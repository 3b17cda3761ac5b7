// The library on its own: one client's acquire + release in a loop, in
// this process, through the same driver code lockbench runs but without
// the protocol (benches/driver_overhead.rs compares the two).
//
//   node bench_loop.js MODULE SERVERS_JSON OPTIONS_JSON CYCLES
//
// prints one JSON line: {"cycles": n, "median_us": m, "mean_us": a}.
"use strict";

async function run() {
  const [file, servers, options, cycles] = process.argv.slice(2);
  const Driver = require(`./${file}`);
  const driver = new Driver();
  await driver.start(JSON.parse(servers), JSON.parse(options), () => {});
  const n = Number(cycles);
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const out = await driver.acquire(0, "bench", 10000, 1000);
    if (out === null) throw new Error("acquire: busy");
    await driver.release(0, "bench", out.token);
    times.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  const mean = times.reduce((a, b) => a + b, 0) / n;
  times.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      cycles: n,
      median_us: times[Math.floor(n / 2)],
      mean_us: mean,
    }),
  );
  process.exit(0);
}

run().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
