#!/usr/bin/env bash
# The soak: scenarios/soak.toml (an hour of Redis under seeded random
# faults) run by the release binary, with lockbench's resident memory and
# the history's size sampled every INTERVAL seconds while it runs.
#
# Prints a table of the samples, then peak RSS, the RSS of the run's first
# and last quarters (memory should stay flat: the last quarter's peak at
# most GROWTH times the first quarter's), the history's size and bytes per
# event (under 10 GB for the hour), and the verdict. Exit 0 when the verdict
# is what the scenario expects and both limits hold, 1 when one does not,
# 2 on bad input. Not run in CI.
#
# Usage: scripts/soak.sh
# Env:   DURATION=1h (replaces the scenario's duration: DURATION=60s for a
#        rehearsal), INTERVAL=10 (seconds between samples), OUT=<dir> (run
#        directories; default a temp dir, removed at the end unless KEEP=1),
#        GROWTH=1.5, LOCKBENCH=<binary> (default: target/release/lockbench,
#        built first).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-1h}
INTERVAL=${INTERVAL:-10}
GROWTH=${GROWTH:-1.5}
KEEP=${KEEP:-0}
case "$INTERVAL" in
  '' | *[!0-9]*) echo "soak: INTERVAL must be whole seconds, not '$INTERVAL'" >&2; exit 2 ;;
esac
if [ -z "${LOCKBENCH:-}" ]; then
  cargo build --quiet --release --locked --bin lockbench
  LOCKBENCH=target/release/lockbench
fi

tmp=$(mktemp -d -t lockbench-soak-XXXXXX)
OUT=${OUT:-$tmp/out}
pid=""
cleanup() {
  # Only the lockbench this script started; it stops its own servers.
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then
    echo "soak: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The scenario with the duration asked for: the top-level `duration`
# only, the one before the first [table] (a nemesis table has its own
# `duration`, each fault's length, which must stay as written).
scenario="$tmp/soak.toml"
awk -v d="$DURATION" '
  /^\[/ { tables = 1 }
  !tables && /^duration = / { print "duration = \"" d "\""; next }
  { print }
' scenarios/soak.toml > "$scenario"
grep -q "^duration = \"$DURATION\"" "$scenario" || {
  echo "soak: scenarios/soak.toml has no top-level duration line to replace" >&2
  exit 2
}

samples="$tmp/samples.tsv"
printf 'elapsed_s\trss_mb\thistory_mb\n' > "$samples"
started=$(date +%s.%N)
"$LOCKBENCH" run --no-progress --out "$OUT" "$scenario" > "$tmp/run.log" 2>&1 &
pid=$!

# The history on disk while the run goes: its file and the spool segments
# beside it not yet converted (they come and go; one that went between the
# listing and its size is not counted).
history_bytes() {
  find "$OUT" -name 'history.jsonl*' -type f -printf '%s\n' 2>/dev/null |
    awk '{ s += $1 } END { print s + 0 }'
}

while kill -0 "$pid" 2>/dev/null; do
  rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo "")
  if [ -n "$rss_kb" ]; then
    now=$(date +%s.%N)
    awk -v t="$now" -v s="$started" -v r="$rss_kb" -v h="$(history_bytes)" \
      'BEGIN { printf "%.2f\t%.1f\t%.1f\n", t - s, r / 1024, h / 1e6 }' >> "$samples"
  fi
  sleep "$INTERVAL" &
  wait $! || true
done
code=0
wait "$pid" || code=$?
pid=""
cat "$tmp/run.log"

summary=$(find "$OUT" -name summary.json -type f | head -n 1)
if [ -z "$summary" ]; then
  echo "soak: the run wrote no summary.json (exit $code)" >&2
  exit 1
fi
history=$(find "$OUT" -name 'history.jsonl*' -type f | head -n 1)

python3 - "$samples" "$summary" "$history" "$GROWTH" "$code" "$started" <<'EOF'
import datetime, json, os, sys

samples_path, summary_path, history_path, growth, code, started = sys.argv[1:7]
growth, code, started = float(growth), int(code), float(started)
rows = [l.split("\t") for l in open(samples_path).read().splitlines()[1:]]
rows = [(float(t), float(r), float(h)) for t, r, h in rows]
summary = json.load(open(summary_path))
print("\nelapsed_s  rss_mb  history_mb")
step = max(1, len(rows) // 40)
for t, r, h in rows[::step]:
    print(f"{t:9.0f}  {r:6.1f}  {h:10.1f}")
ok = code == 0
# The run's own memory is judged on the samples taken while its clients
# ran (from summary.json's start and duration, on the wall clock: the
# servers start first); after it, lockbench checks the history and writes
# the report, whose memory grows with the holds by design (one record
# each), so it is told apart.
def epoch(rfc3339):
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    whole = datetime.datetime.fromisoformat(head + "+00:00").timestamp()
    return whole + float("0." + (frac or "0"))
run_start = epoch(summary["started_at"]) if "started_at" in summary else started
end = run_start - started + float(summary.get("duration_s", 0))
during = [row for row in rows if row[0] < end]
after = [row for row in rows if row[0] >= end]
if during:
    q = max(1, len(during) // 4)
    first = max(r for _, r, _ in during[:q])
    last = max(r for _, r, _ in during[-q:])
    peak = max(r for _, r, _ in during)
    flat = last <= growth * first
    print(f"\nduring the run: peak RSS {peak:.1f} MB; first quarter's peak {first:.1f} MB, last "
          f"quarter's {last:.1f} MB ({last / first:.2f}x, limit {growth}x): "
          f"{'flat' if flat else 'GROWING'}")
    ok &= flat
else:
    print("\nno RSS samples within the run (it ended before the first)")
if after:
    print(f"after the run (check and report): peak RSS {max(r for _, r, _ in after):.1f} MB")
size = os.path.getsize(history_path) if history_path else 0
events = summary.get("history_events", 0)
per = f", {size / events:.1f} bytes per event ({events} events)" if events else ""
under = size < 10e9
print(f"history {size / 1e6:.1f} MB ({os.path.basename(history_path or '-')}){per}: "
      f"{'under' if under else 'OVER'} 10 GB")
ok &= under
print(f"verdict {summary.get('verdict')} (lockbench exit {code}); "
      f"{summary.get('throughput_per_s', 0):.0f} acquires/s")
sys.exit(0 if ok else 1)
EOF
