"""A lockbench driver that misbehaves on purpose (see README.md)."""

import json
import os
import sys

mode = sys.argv[1]
init = sys.stdin.readline()
if mode == "bad-init":
    sys.stderr.write("misbehaving driver: cannot start (on purpose)\n")
    sys.exit(3)
print(json.dumps({"type": "init_ok", "library": "misbehaving-" + mode, "version": "0"}), flush=True)
count = 0
for line in sys.stdin:
    msg = json.loads(line)
    count += 1
    if mode == "silent":
        continue
    if mode == "garbage":
        print("this is not protocol", flush=True)
        print(json.dumps({"type": "ok", "id": 10_000_000 + msg["id"]}), flush=True)
        continue
    if mode == "exits":
        if count >= 3:
            sys.stderr.write("misbehaving driver: exiting after 3 requests (on purpose)\n")
            sys.stderr.flush()
            os._exit(7)
        # Never grants, so no hold is left open by the exit.
        print(json.dumps({"type": "fail", "id": msg["id"], "error": "busy"}), flush=True)
