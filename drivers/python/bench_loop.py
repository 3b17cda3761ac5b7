"""The library on its own: one client's acquire + release in a loop, in
this process, through the same driver code lockbench runs but without the
protocol, to measure what lockbench's driver protocol adds
(benches/driver_overhead.rs).

    python bench_loop.py MODULE SERVERS_JSON OPTIONS_JSON CYCLES

prints one JSON line: {"cycles": n, "median_us": m, "mean_us": a}.
"""

import importlib
import json
import statistics
import sys
import time

from lockbench_driver import Driver


def main():
    module, servers, options, cycles = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
    mod = importlib.import_module(module)
    cls = next(
        v for v in vars(mod).values()
        if isinstance(v, type) and issubclass(v, Driver) and v is not Driver
    )
    driver = cls()
    driver.start(servers, options)
    times = []
    for i in range(cycles):
        t0 = time.perf_counter()
        out = driver.acquire(0, "bench", 10000, 1000)
        driver.release(0, "bench", out["token"])
        times.append((time.perf_counter() - t0) * 1e6)
    print(json.dumps({
        "cycles": cycles,
        "median_us": statistics.median(times),
        "mean_us": statistics.fmean(times),
    }))


if __name__ == "__main__":
    main()
