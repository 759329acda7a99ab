#!/usr/bin/env bash
# Webhook benchmark: the release build of `action2phone serve` on a fresh database, driven by wrk with
# unique, correctly signed webhooks from ~1,000 senders; then the same for a fixed-TwiML Hummingbird app
# (the ceiling). Loopback only; bounded in time. Usage: Benchmarks/run-webhook.sh [seconds, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
THREADS=2
CONNECTIONS=64
PORT=18400
CEILING_PORT=18401
TOKEN=bench-auth-token-0123456789abcdef
ACCOUNT=AC00000000000000000000000000000000
PUBLIC=http://bench.local

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
swift build -c release --product action2phone >/dev/null
swift build -c release --product a2p-ceiling >/dev/null
BIN=$(swift build -c release --show-bin-path)

WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
# Enough unique requests that no MessageSid repeats in the measured run (about 60,000/s at most).
NEEDED=$(( (DURATION + 3) * 60000 ))
python3 Benchmarks/gen_webhooks.py 40000 "$TOKEN" "$PUBLIC/sms" "$ACCOUNT" "$WORK/warmup.tsv" 1000 0 6000000
python3 Benchmarks/gen_webhooks.py "$NEEDED" "$TOKEN" "$PUBLIC/sms" "$ACCOUNT" "$WORK/measure.tsv" 1000 1000000000

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

run_wrk() { # url file seconds
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$3"s --timeout 5s -s Benchmarks/webhooks.lua "$1" -- "$2" "$THREADS" | grep '^RESULT'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION}s after a warm-up, on loopback"

# --- action2phone serve ---
TWILIO_ACCOUNT_SID=$ACCOUNT TWILIO_AUTH_TOKEN=$TOKEN TWILIO_FROM_NUMBER=+15005550006 TWILIO_API_BASE_URL=http://127.0.0.1:9 \
ACTION2PHONE_PUBLIC_URL=$PUBLIC LOG_LEVEL=warning \
  "$BIN/action2phone" serve --port $PORT --db "$WORK/bench.sqlite" >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
run_wrk "http://127.0.0.1:$PORT" "$WORK/warmup.tsv" 3 >/dev/null
RSS_BEFORE=$(rss_kib $SERVER)
APP=$(run_wrk "http://127.0.0.1:$PORT" "$WORK/measure.tsv" "$DURATION")
RSS_AFTER=$(rss_kib $SERVER)
HWM=$(hwm_kib $SERVER)
INBOUND=$(sqlite3 "$WORK/bench.sqlite" "SELECT count(*) FROM inbound")
kill -TERM $SERVER; wait $SERVER || true
echo "action2phone: $APP peak_rss_mb=$((HWM / 1024)) rss_mb_before=$((RSS_BEFORE / 1024)) rss_mb_after=$((RSS_AFTER / 1024)) inbound_rows=$INBOUND"

# --- the ceiling: fixed TwiML ---
"$BIN/a2p-ceiling" $CEILING_PORT >"$WORK/ceiling.log" 2>&1 &
CEILING=$!
for _ in $(seq 100); do curl -fs -o /dev/null -X POST "http://127.0.0.1:$CEILING_PORT/sms" && break; sleep 0.1; done
run_wrk "http://127.0.0.1:$CEILING_PORT" "$WORK/warmup.tsv" 3 >/dev/null
CEIL=$(run_wrk "http://127.0.0.1:$CEILING_PORT" "$WORK/measure.tsv" "$DURATION")
CEIL_HWM=$(hwm_kib $CEILING)
kill -TERM $CEILING; wait $CEILING || true
echo "ceiling:      $CEIL peak_rss_mb=$((CEIL_HWM / 1024))"
