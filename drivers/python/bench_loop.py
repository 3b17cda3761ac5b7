"""The library on its own: one client's acquire + release in a loop, in
this process, through the same driver code lockbench runs but without the
protocol, to measure what lockbench's driver protocol adds
(benches/driver_overhead.rs).

    python bench_loop.py MODULE SERVERS_JSON OPTIONS_JSON CYCLES [paced]

prints one JSON line: {"cycles": n, "median_us": m, "mean_us": a}, a
cycle's time being its two calls'. `paced`: before each call the loop
waits, as a driver waits for its next request: it writes "." on stdout
and blocks until one byte comes back on stdin. The environment's WARMUP
cycles (default 0) run first, untimed.
"""

import importlib
import json
import os
import statistics
import sys
import time

from lockbench_driver import Driver


def wait_for_the_bench():
    os.write(1, b".")
    if not os.read(0, 1):
        raise SystemExit("paced: the bench closed stdin")


def main():
    module, servers, options, cycles = (
        sys.argv[1],
        json.loads(sys.argv[2]),
        json.loads(sys.argv[3]),
        int(sys.argv[4]),
    )
    paced = sys.argv[5:] == ["paced"]
    mod = importlib.import_module(module)
    cls = next(
        v
        for v in vars(mod).values()
        if isinstance(v, type) and issubclass(v, Driver) and v is not Driver
    )
    driver = cls()
    driver.start(servers, options)
    warmup = int(os.environ.get("WARMUP", "0"))
    times = []
    for i in range(warmup + cycles):
        if paced:
            wait_for_the_bench()
        t0 = time.perf_counter()
        out = driver.acquire(0, "bench", 10000, 1000)
        t1 = time.perf_counter()
        if paced:
            wait_for_the_bench()
        t2 = time.perf_counter()
        driver.release(0, "bench", out["token"])
        if i >= warmup:
            times.append((t1 - t0 + time.perf_counter() - t2) * 1e6)
    sys.stdout.write(
        json.dumps(
            {
                "cycles": cycles,
                "median_us": statistics.median(times),
                "mean_us": statistics.fmean(times),
            }
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
