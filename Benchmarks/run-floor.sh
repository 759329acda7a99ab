#!/usr/bin/env bash
# What a durable answer costs before any work: run-webhook.sh's mix (same webhooks and wrk settings, 3 s warm-up)
# against the ceiling app in three modes and against `action2phone serve`, taking turns for some rounds (this VM's
# speed drifts between runs minutes apart, so only neighbours compare):
#   plain    the ceiling: read the body, answer fixed TwiML;
#   grouped  each request also waits for a group commit on a serial queue that does nothing (serve's hop to its writer);
#   durable  that commit also writes 6 KB a request to a file and syncs it (fdatasync), as serve's WAL commit does;
#   serve    the real thing, on a fresh database.
# For each: requests/s, p50/p99, the server's CPU per request and the machine's idle and iowait shares.
# Usage: Benchmarks/run-floor.sh [seconds per run, default 10] [rounds, default 2]
set -euo pipefail
DURATION=${1:-10}
ROUNDS=${2:-2}
for n in "$DURATION" "$ROUNDS"; do [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: Benchmarks/run-floor.sh [seconds] [rounds] (whole numbers; got '$n')" >&2; exit 2; }; done
cd "$(dirname "$0")/.."
PORT=18404
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
. Benchmarks/webhook-lib.sh

swift build -c release --product action2phone >/dev/null
swift build -c release --product a2p-ceiling >/dev/null
BIN=$(swift build -c release --show-bin-path)
gen 40000 warmup.tsv 0 6000000
gen $(( (DURATION + 1) * 60000 )) measure.tsv 1000000000 5000000

idle_share() { # /proc/stat's cpu line before and after: "idle=…% iowait=…%"
  python3 -c 'import sys; d = [b - a for a, b in zip(map(int, sys.argv[1].split()[1:9]), map(int, sys.argv[2].split()[1:9]))]; print(f"idle={d[3] / sum(d):.1%} iowait={d[4] / sum(d):.1%}")' "$1" "$2"
}

measure() { # name pid
  run_wrk "http://127.0.0.1:$PORT" "$WORK/warmup.tsv" 3 >/dev/null
  local machine_before ticks_before result
  machine_before=$(head -1 /proc/stat)
  ticks_before=$(cpu_ticks "$2")
  result=$(run_wrk "http://127.0.0.1:$PORT" "$WORK/measure.tsv" "$DURATION")
  local ticks=$(( $(cpu_ticks "$2") - ticks_before ))
  printf '%-8s rps=%-6s p50_ms=%-5s p99_ms=%-6s non2xx=%s cpu_us_per_request=%s %s\n' "$1" "$(field "$result" rps)" \
    "$(field "$result" p50_ms)" "$(field "$result" p99_ms)" "$(field "$result" non2xx)" \
    $(( ticks * 1000000 / $(getconf CLK_TCK) / $(field "$result" requests) )) "$(idle_share "$machine_before" "$(head -1 /proc/stat)")"
  kill -TERM "$2"
  wait "$2" || true
}

for round in $(seq "$ROUNDS"); do
  echo "round $round"
  for mode in plain grouped durable; do
    rm -f "$WORK/log"
    ARGS=($PORT $mode)
    [ $mode = durable ] && ARGS+=("$WORK/log")
    "$BIN/a2p-ceiling" "${ARGS[@]}" >"$WORK/ceiling.log" 2>&1 &
    CEILING=$!
    for _ in $(seq 100); do curl -fs -o /dev/null -X POST "http://127.0.0.1:$PORT/sms" && break; sleep 0.1; done
    measure $mode $CEILING
  done
  rm -f "$WORK"/floor.sqlite*
  start_server "$BIN/action2phone" $PORT "$WORK/floor.sqlite" "$WORK/serve.log"
  measure serve $SERVER
done
