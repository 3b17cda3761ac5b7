"""A lockbench driver that times its "library" (drivers/PROTOCOL.md, `t`)
and is slow to answer outside it, to show that lockbench records the
library's time and not the pipe's (see README.md).

    python3 timed.py MODE

The library is a lock in this process's memory whose every call takes
LIBRARY_S; each reply then waits PIPE_S before it is written, as a slow
pipe or a busy driver would. MODE says what the reply's `t` is: `honest`
(the machine's monotonic clock around the call), `foreign` (the wall
clock, another epoch, which lockbench must not believe), `none` (no `t`).
"""

import json
import sys
import time

LIBRARY_S = 0.002
PIPE_S = 0.030

mode = sys.argv[1]
sys.stdin.readline()
print(json.dumps({"type": "init_ok", "library": "timed-" + mode, "version": "0"}), flush=True)
holder = {}
serial = 0
for line in sys.stdin:
    msg = json.loads(line)
    clock = time.time_ns if mode == "foreign" else time.monotonic_ns
    called = clock()
    time.sleep(LIBRARY_S)
    key = msg["key"]
    if msg["type"] == "acquire":
        if key in holder:
            reply = {"type": "fail", "error": "busy"}
        else:
            serial += 1
            holder[key] = "t%d" % serial
            reply = {"type": "ok", "token": holder[key], "fence": serial}
    elif msg["type"] == "release":
        was_held = holder.get(key) == msg["token"]
        if was_held:
            del holder[key]
        reply = {"type": "ok", "was_held": was_held}
    else:
        reply = {"type": "fail", "error": "no renew"}
    reply["id"] = msg["id"]
    if mode != "none":
        reply["t"] = [called, clock()]
    time.sleep(PIPE_S)
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
