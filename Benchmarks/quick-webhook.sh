#!/usr/bin/env bash
# A quick webhook run, for comparing builds: run-webhook.sh's mix (same webhooks, wrk with 2 threads and 64
# connections, 3 s warm-up) against one `action2phone serve` on a fresh database, without the logins, the soak or
# the ceiling. Besides wrk's figures it prints the server's CPU per webhook, each of its threads' share of a core,
# and how the whole machine's CPU was spent (idle time is time the server waited rather than worked).
# Usage: Benchmarks/quick-webhook.sh [seconds, default 10] [binary, default the release build, built if needed]
# For an A/B, alternate the two binaries: for b in old new old new; do Benchmarks/quick-webhook.sh 10 /tmp/a2p-$b; done
set -euo pipefail
DURATION=${1:-10}
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "usage: Benchmarks/quick-webhook.sh [seconds] [binary] (seconds a whole number; got '$DURATION')" >&2; exit 2; }
BINARY=
if [ -n "${2:-}" ]; then  # (from where the script was started, before it moves to the repository's root)
  BINARY=$(realpath -e -- "$2" 2>/dev/null) && [ -x "$BINARY" ] || { echo "no executable at $2" >&2; exit 2; }
fi
cd "$(dirname "$0")/.."
PORT=18402
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
. Benchmarks/webhook-lib.sh

if [ -z "$BINARY" ]; then
  swift build -c release --product action2phone >/dev/null
  BINARY=$(swift build -c release --show-bin-path)/action2phone
fi
gen 40000 warmup.tsv 0 6000000
gen $(( (DURATION + 1) * 60000 )) measure.tsv 1000000000 5000000

start_server "$BINARY" $PORT "$WORK/quick.sqlite" "$WORK/serve.log"
run_wrk "http://127.0.0.1:$PORT" "$WORK/warmup.tsv" 3 >/dev/null
threads() { # a thread that ends meanwhile is left out
  for t in /proc/$SERVER/task/*; do
    { echo "$(basename "$t") $(tr -d ' ' <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; } 2>/dev/null || true
  done
}
threads >"$WORK/threads-before"
MACHINE_BEFORE=$(head -1 /proc/stat)
TICKS_BEFORE=$(cpu_ticks $SERVER)
RESULT=$(run_wrk "http://127.0.0.1:$PORT" "$WORK/measure.tsv" "$DURATION")
TICKS_AFTER=$(cpu_ticks $SERVER)
MACHINE_AFTER=$(head -1 /proc/stat)
threads >"$WORK/threads-after"
echo "action2phone: $RESULT peak_rss_mb=$(( $(hwm_kib $SERVER) / 1024 ))"
echo "server CPU per webhook: $(( (TICKS_AFTER - TICKS_BEFORE) * 1000000 / $(getconf CLK_TCK) / $(field "$RESULT" requests) )) µs"
python3 - "$WORK/threads-before" "$WORK/threads-after" "$(field "$RESULT" duration_s)" "$(getconf CLK_TCK)" \
  "$MACHINE_BEFORE" "$MACHINE_AFTER" <<'PY'
import sys
before_file, after_file, seconds, hz, machine_before, machine_after = sys.argv[1:]
def ticks(path):
    rows = (line.split() for line in open(path))
    return {row[0]: (row[1], int(row[2])) for row in rows if len(row) == 3 and row[2].isdigit()}
before, after = ticks(before_file), ticks(after_file)
shares = sorted(((n - before.get(tid, (name, 0))[1]) / int(hz) / float(seconds), name, tid) for tid, (name, n) in after.items())
print("server threads (share of a core): " + ", ".join(f"{name} {share:.0%}" for share, name, tid in reversed(shares) if share > 0))
spent = [b - a for a, b in zip(map(int, machine_before.split()[1:9]), map(int, machine_after.split()[1:9]))]
names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
print("machine CPU: " + " ".join(f"{n}={v / sum(spent):.1%}" for n, v in zip(names, spent) if n not in ("nice", "irq")))
PY
kill -TERM $SERVER
wait $SERVER || true
