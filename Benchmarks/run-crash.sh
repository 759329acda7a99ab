#!/usr/bin/env bash
# Crash test: SIGKILL of `action2phone serve` (a) under webhook load and (b) in the middle of a broadcast, then a
# restart on the same database. Checks what SPEC §3 and §5 promise across a crash; exits 1 on any failed check.
#   (a) acknowledged webhooks are all stored; each phone's conversation equals a replay of its stored texts (a text
#       never stored without its step or the other way round); a retried MessageSid gets the first TwiML and
#       changes nothing.
#   (b) nothing is sent twice; rows in flight at the kill become `uncertain` and are not resent; all others are sent
#       exactly once; then `outbox retry --uncertain` looks each up at the API and the count ends at one per person.
# Loopback only; about a minute. Usage: Benchmarks/run-crash.sh [kill rounds=3] [people=2000] [rate=200]
# The binary: $A2P_BIN, else `swift build -c release --product action2phone`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
PEOPLE=${2:-2000}
RATE=${3:-200}
for n in "$@"; do [[ $n =~ ^[1-9][0-9]*$ || $n == 0 ]] || { echo "usage: Benchmarks/run-crash.sh [kill rounds] [people] [rate] (whole numbers; got '$n')" >&2; exit 2; }; done
SENDERS=320      # phones walking the conversation
THREADS=32       # concurrent webhook clients
KILL_AFTER=3     # seconds into the broadcast
FAKE_DELAY=0.1   # seconds the fake API takes to answer, so several sends are in flight at the kill
PORT=18430
FAKE_PORT=18431
source Benchmarks/reliability-env.sh
REL="python3 Benchmarks/reliability.py"
export TWILIO_ACCOUNT_SID=$ACCOUNT TWILIO_AUTH_TOKEN=$TOKEN TWILIO_FROM_NUMBER=+15005550006 ACTION2PHONE_PUBLIC_URL=$PUBLIC \
  LOG_LEVEL=warning TWILIO_API_BASE_URL=http://127.0.0.1:9

start_server() { # db log
  "$A2P_BIN" serve --port $PORT --db "$1" >>"$2" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "the server did not start:"; tail -20 "$2"; exit 1
}
crash_server() { kill -9 $SERVER; wait $SERVER 2>/dev/null || true; }
stop_server() { kill -TERM $SERVER; wait $SERVER 2>/dev/null || true; }
left() { sqlite3 "$1" "SELECT count(*) FROM outbox WHERE status IN ('queued', 'sending')"; }
echo "machine: $(nproc) cores; binary: $A2P_BIN"

# ---- (a) kill -9 under webhook load, $ROUNDS times on one database ----
echo "== (a) webhook load: $THREADS concurrent clients, $SENDERS phones, killed $ROUNDS times"
A=$WORK/webhooks.sqlite
python3 Benchmarks/gen_webhooks.py 100000 "$TOKEN" "$PUBLIC/sms" "$ACCOUNT" "$WORK/hooks.tsv" $SENDERS 0
for round in $(seq "$ROUNDS"); do
  start_server "$A" "$WORK/serve-a.log"
  $REL load --url "http://127.0.0.1:$PORT/sms" --hooks "$WORK/hooks.tsv" --db "$A" --senders $SENDERS --threads $THREADS \
    --acked "$WORK/acked.jsonl" --max-seconds 30 --ready "$WORK/ready.$round" >"$WORK/load.json" &
  LOAD=$!
  for _ in $(seq 300); do [ -e "$WORK/ready.$round" ] && break; sleep 0.1; done
  AFTER=$((2 + RANDOM % 3)).$((RANDOM % 10))
  sleep "$AFTER"
  crash_server
  wait $LOAD
  echo "round $round: kill -9 after ${AFTER}s of load: $(cat "$WORK/load.json")"
done
start_server "$A" "$WORK/serve-a.log"
A_RC=0
$REL check-webhooks --url "http://127.0.0.1:$PORT/sms" --hooks "$WORK/hooks.tsv" --db "$A" --senders $SENDERS \
  --acked "$WORK/acked.jsonl" || A_RC=$?
stop_server

# ---- (b) kill -9 in the middle of a broadcast ----
echo "== (b) broadcast to $PEOPLE people at $RATE/s (fake API answers in ${FAKE_DELAY}s), kill -9 after ${KILL_AFTER}s"
B=$WORK/broadcast.sqlite
"$A2P_BIN" users list --db "$B" >/dev/null   # creates and migrates the database
sqlite3 "$B" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $PEOPLE)
  INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, role, createdAt)
  SELECT printf('+1415%07d', i), 'Comrade', printf('N%d', i), printf('c%d@example.org', i), zeroblob(32), zeroblob(16), 600000, 'user',
         strftime('%Y-%m-%d %H:%M:%f', 'now') FROM n;"
python3 Benchmarks/fake_twilio_faults.py $FAKE_PORT --delay $FAKE_DELAY &
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$FAKE_PORT/stats" >/dev/null && break; sleep 0.1; done
export TWILIO_API_BASE_URL=http://127.0.0.1:$FAKE_PORT ACTION2PHONE_SEND_RATE=$RATE
start_server "$B" "$WORK/serve-b.log"
"$A2P_BIN" broadcast "Comrades: the harvest festival is on Saturday at noon." --yes --db "$B" >/dev/null
sleep $KILL_AFTER
crash_server
$REL snapshot --db "$B" --out "$WORK/snapshot.json"
start_server "$B" "$WORK/serve-b.log"
DRAIN=$((PEOPLE / RATE * 2 + 30))
for _ in $(seq $DRAIN); do [ "$(left "$B")" = 0 ] && break; sleep 1; done
B_RC=0
$REL check-broadcast --db "$B" --fake "http://127.0.0.1:$FAKE_PORT" --snapshot "$WORK/snapshot.json" --people "$PEOPLE" || B_RC=$?
echo "-- operator: action2phone outbox retry --uncertain (each is looked up at the API before any resend)"
"$A2P_BIN" outbox retry --uncertain --db "$B" >/dev/null
for _ in $(seq 60); do [ "$(left "$B")" = 0 ] && break; sleep 1; done
R_RC=0
$REL check-retry --db "$B" --fake "http://127.0.0.1:$FAKE_PORT" || R_RC=$?
stop_server
grep -iE "error|critical|fatal" "$WORK"/serve-*.log | head -5 || true

verdict() { [ "$1" = 0 ] && echo PASS || echo FAIL; }
echo "RESULT (a) webhooks across $ROUNDS kills: $(verdict $A_RC); (b) mid-broadcast kill: $(verdict $B_RC); (b) operator retry: $(verdict $R_RC)"
[ $A_RC = 0 ] && [ $B_RC = 0 ] && [ $R_RC = 0 ] && echo "PASS" && exit 0
echo "FAIL"; exit 1
