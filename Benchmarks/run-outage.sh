#!/usr/bin/env bash
# Twilio outage test: the fake Messages API (fake_twilio_faults.py) answers every request with 500, 429 (with
# Retry-After), or no answer past the client's 15 s timeout (some of those and some 500s after creating the message)
# for OUTAGE seconds, then recovers. A broadcast and direct sends are queued during the outage. Checks that the outbox
# backs off (requests per recipient bounded, Retry-After and the first backoff respected), recovers, and delivers each
# text exactly once (rows left `uncertain` are reported), and that /sms and /healthz answer every second meanwhile.
# Exits 1 on any failed check. Loopback only; takes about OUTAGE + the last backoffs (about 3-4 minutes for 60 s).
# Usage: Benchmarks/run-outage.sh [outage seconds=60] [people=500] [rate=50]
# Environment: A2P_BIN (else `swift build -c release`), OUTAGE_MODES (default 500,429,hang,500c,hangc), RETRY_AFTER (3).
set -euo pipefail
cd "$(dirname "$0")/.."
OUTAGE=${1:-60}
PEOPLE=${2:-500}
RATE=${3:-50}
for n in "$@"; do [[ $n =~ ^[1-9][0-9]*$ || $n == 0 ]] || { echo "usage: Benchmarks/run-outage.sh [outage seconds] [people] [rate] (whole numbers; got '$n')" >&2; exit 2; }; done
MODES=${OUTAGE_MODES:-500,429,hang,500c,hangc}
RETRY_AFTER=${RETRY_AFTER:-3}
DIRECT=$((OUTAGE / 5))   # direct sends, one every 5 s of the outage
PORT=18440
FAKE_PORT=18441
source Benchmarks/reliability-env.sh
DB=$WORK/outage.sqlite
FAKE=http://127.0.0.1:$FAKE_PORT
left() { sqlite3 "$DB" "SELECT count(*) FROM outbox WHERE status IN ('queued', 'sending')"; }

"$A2P_BIN" users list --db "$DB" >/dev/null   # creates and migrates the database
sqlite3 "$DB" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $PEOPLE)
  INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, role, createdAt)
  SELECT printf('+1415%07d', i), 'Comrade', printf('N%d', i), printf('c%d@example.org', i), zeroblob(32), zeroblob(16), 600000, 'user',
         strftime('%Y-%m-%d %H:%M:%f', 'now') FROM n;"
# Signed probe webhooks from one phone (+14155000000), a new MessageSid each second.
python3 Benchmarks/gen_webhooks.py $((OUTAGE + 200)) "$TOKEN" "$PUBLIC/sms" "$ACCOUNT" "$WORK/probe.tsv" 1 500000000

python3 Benchmarks/fake_twilio_faults.py $FAKE_PORT --modes "$MODES" --retry-after "$RETRY_AFTER" --hang 20 &
for _ in $(seq 50); do curl -fs "$FAKE/stats" >/dev/null && break; sleep 0.1; done
TWILIO_ACCOUNT_SID=$ACCOUNT TWILIO_AUTH_TOKEN=$TOKEN TWILIO_FROM_NUMBER=+15005550006 ACTION2PHONE_PUBLIC_URL=$PUBLIC \
TWILIO_API_BASE_URL=$FAKE ACTION2PHONE_SEND_RATE=$RATE LOG_LEVEL=warning \
  "$A2P_BIN" serve --port $PORT --db "$DB" >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores; binary: $A2P_BIN"
echo "outage ${OUTAGE}s answering in turn: $MODES (Retry-After: $RETRY_AFTER, hangs 20 s > the client's 15 s); $PEOPLE people at $RATE/s"

# The server's CPU seconds (user + system) so far, from /proc.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.1f", ($12 + $13) / hz }' "/proc/$SERVER/stat"; }
curl -fs -X POST "$FAKE/control/outage?seconds=$OUTAGE" >/dev/null
OUTAGE_START=$(date +%s)
CPU_START=$(cpu)
python3 Benchmarks/reliability.py probe --url "http://127.0.0.1:$PORT/sms" --hooks "$WORK/probe.tsv" --seconds $((OUTAGE + 5)) \
  --out "$WORK/probes.json" &
PROBE=$!
"$A2P_BIN" broadcast "Comrades: the harvest festival is on Saturday at noon." --yes --db "$DB" >/dev/null
for k in $(seq $DIRECT); do
  sleep 5
  "$A2P_BIN" send "$(printf '+1415%07d' "$k")" "Direct order number $k: report to the tractor factory." --db "$DB" >/dev/null
done
wait $PROBE
echo "server CPU during the outage and 5 s after: $(awk "BEGIN { print $(cpu) - $CPU_START }") s in $(( $(date +%s) - OUTAGE_START )) s"
DRAIN_LIMIT=$((OUTAGE * 3 + 90))
for _ in $(seq $DRAIN_LIMIT); do [ "$(left)" = 0 ] && break; sleep 1; done
END=$(date +%s)
echo "outbox drained $((END - OUTAGE_START - OUTAGE)) s after the outage ended (limit $((DRAIN_LIMIT - 5)) s); left: $(left)"
HWM=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$SERVER/status)
kill -TERM $SERVER; wait $SERVER || true
echo "server peak RSS: $HWM MB; server log (LOG_LEVEL=warning): $(($(wc -l <"$WORK/serve.log") - 6)) lines after the banner"
RC=0
python3 Benchmarks/reliability.py check-outage --db "$DB" --fake "$FAKE" --probes "$WORK/probes.json" --retry-after "$RETRY_AFTER" \
  --max-api-rate $((2 * RATE)) || RC=$?
[ $RC = 0 ] && echo "PASS" || echo "FAIL"
exit $RC
