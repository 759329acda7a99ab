#!/usr/bin/env bash
# Webhook benchmark: the release build of `action2phone serve` on a fresh database, driven by wrk with
# unique, correctly signed webhooks from ~1,000 senders; then the same for a fixed-TwiML Hummingbird app
# (the ceiling); logins per second alone and the mix's latency during a login burst; a soak that samples
# RSS. Loopback only; bounded in time. Usage: Benchmarks/run-webhook.sh [seconds, default 10] [soak seconds, default 60, 0 skips]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
SOAK=${2:-60}
for n in "$@"; do [[ $n =~ ^[1-9][0-9]*$ || $n == 0 ]] || { echo "usage: Benchmarks/run-webhook.sh [seconds] [soak seconds] (whole numbers; got '$n')" >&2; exit 2; }; done
LOGINS=64
PASSCODE=tractor-2026
PORT=18400
CEILING_PORT=18401
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
. Benchmarks/webhook-lib.sh

swift build -c release --product action2phone >/dev/null
swift build -c release --product a2p-ceiling >/dev/null
BIN=$(swift build -c release --show-bin-path)

# Enough unique requests that no MessageSid repeats in a measured run (about 60,000/s at most). Each phase
# has its own senders: wrk stops mid-sequence, and a sender left waiting for a passcode would be hashed.
NEEDED=$(( (DURATION + 3) * 60000 ))
gen 40000 warmup.tsv 0 6000000
gen "$NEEDED" measure.tsv 1000000000 5000000
gen "$NEEDED" during-logins.tsv 2000000000 8000000
gen 20000 logins.tsv 3000000000 7000000 $LOGINS "login:$PASSCODE"
[ "$SOAK" -gt 0 ] && gen $(( SOAK * 15000 )) soak.tsv 4000000000 9000000

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION}s after a warm-up, on loopback"

# --- action2phone serve ---
start_server "$BIN/action2phone" $PORT "$WORK/bench.sqlite" "$WORK/serve.log"
# The people who log in: registered with the production PBKDF2 cost (one hash, shared salt, made once here).
HASH=$(python3 -c "import hashlib,sys; print(hashlib.pbkdf2_hmac('sha256', b'$PASSCODE', b'bench-salt-16byt', 600000, 32).hex())")
sqlite3 "$WORK/bench.sqlite" "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $LOGINS - 1)
  INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, role, createdAt)
  SELECT printf('+1415%07d', 7000000 + i), 'Comrade', printf('L%d', i), printf('l%d@example.org', i), X'$HASH',
         CAST('bench-salt-16byt' AS BLOB), 600000, 'user', strftime('%Y-%m-%d %H:%M:%f', 'now') FROM n;"
run_wrk "http://127.0.0.1:$PORT" "$WORK/warmup.tsv" 3 >/dev/null
RSS_BEFORE=$(rss_kib $SERVER)
APP=$(run_wrk "http://127.0.0.1:$PORT" "$WORK/measure.tsv" "$DURATION")
RSS_AFTER=$(rss_kib $SERVER)
HWM=$(hwm_kib $SERVER)
echo "action2phone: $APP peak_rss_mb=$((HWM / 1024)) rss_mb_before=$((RSS_BEFORE / 1024)) rss_mb_after=$((RSS_AFTER / 1024))"

# Logins alone (LOGIN <passcode> then LOGOUT, 8 connections): logins per second, and per second of server CPU.
T0=$(cpu_ticks $SERVER)
LOGIN=$(run_wrk "http://127.0.0.1:$PORT" "$WORK/logins.tsv" "$DURATION" 1 8)
T1=$(cpu_ticks $SERVER)
LOGINS_DONE=$(( $(field "$LOGIN" requests) / 2 ))
echo "logins alone: $LOGINS_DONE logins in ${DURATION}s = $(echo "scale=1; $LOGINS_DONE / $DURATION" | bc)/s," \
  "$(echo "scale=1; $LOGINS_DONE * $(getconf CLK_TCK) / ($T1 - $T0)" | bc) per second of server CPU (per core);" \
  "p50_ms=$(field "$LOGIN" p50_ms) p99_ms=$(field "$LOGIN" p99_ms) non2xx=$(field "$LOGIN" non2xx)"

# The mix while a burst of logins runs beside it.
run_wrk "http://127.0.0.1:$PORT" "$WORK/logins.tsv" "$DURATION" 1 8 >"$WORK/burst.txt" &
BURST=$!
DURING=$(run_wrk "http://127.0.0.1:$PORT" "$WORK/during-logins.tsv" "$DURATION")
wait $BURST
echo "mix during the login burst: $DURING (logins meanwhile: $(( $(field "$(cat "$WORK/burst.txt")" requests) / 2 )))"

# Soak: the mix for $SOAK seconds, RSS every 5 s (unique webhooks at up to 15,000/s; beyond that, retries).
if [ "$SOAK" -gt 0 ]; then
  run_wrk "http://127.0.0.1:$PORT" "$WORK/soak.tsv" "$SOAK" >"$WORK/soak.txt" &
  SOAKER=$!
  SAMPLES=()
  for _ in $(seq $(( SOAK / 5 ))); do sleep 5; SAMPLES+=("$(( $(rss_kib $SERVER) / 1024 ))"); done
  wait $SOAKER
  echo "soak ${SOAK}s: $(cat "$WORK/soak.txt") rss_mb_every_5s: ${SAMPLES[*]} peak_rss_mb=$(( $(hwm_kib $SERVER) / 1024 ))"
fi
INBOUND=$(sqlite3 "$WORK/bench.sqlite" "SELECT count(*) FROM inbound")
kill -TERM $SERVER; wait $SERVER || true
echo "inbound rows stored: $INBOUND"

# --- the ceiling: fixed TwiML ---
"$BIN/a2p-ceiling" $CEILING_PORT >"$WORK/ceiling.log" 2>&1 &
CEILING=$!
for _ in $(seq 100); do curl -fs -o /dev/null -X POST "http://127.0.0.1:$CEILING_PORT/sms" && break; sleep 0.1; done
run_wrk "http://127.0.0.1:$CEILING_PORT" "$WORK/warmup.tsv" 3 >/dev/null
CEIL=$(run_wrk "http://127.0.0.1:$CEILING_PORT" "$WORK/measure.tsv" "$DURATION")
CEIL_HWM=$(hwm_kib $CEILING)
kill -TERM $CEILING; wait $CEILING || true
echo "ceiling:      $CEIL peak_rss_mb=$((CEIL_HWM / 1024))"
