#!/usr/bin/env bash
# Outbound benchmark: a broadcast to 10,000 registered people through the real outbox worker, at
# ACTION2PHONE_SEND_RATE=500 against a local fake of Twilio's Messages API (fake_twilio.py). Reports the
# achieved rate (target: within 2% of 500/s), duplicates and losses (target: 0 and 0) and the server's
# RSS during the fan-out. Loopback only; stops by itself within 90 s. Usage: Benchmarks/run-broadcast.sh [people] [rate]
set -euo pipefail
cd "$(dirname "$0")/.."
PEOPLE=${1:-10000}
RATE=${2:-500}
for n in "$@"; do [[ $n =~ ^[1-9][0-9]*$ || $n == 0 ]] || { echo "usage: Benchmarks/run-broadcast.sh [people] [rate] (whole numbers; got '$n')" >&2; exit 2; }; done
PORT=18420
FAKE_PORT=18421
ACCOUNT=AC00000000000000000000000000000000
swift build -c release --product action2phone >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
DB="$WORK/bench.sqlite"

python3 Benchmarks/fake_twilio.py $FAKE_PORT &
"$BIN/action2phone" users list --db "$DB" >/dev/null   # creates and migrates the database
sqlite3 "$DB" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $PEOPLE)
  INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, role, createdAt)
  SELECT printf('+1415%07d', i), 'Comrade', printf('N%d', i), printf('c%d@example.org', i), zeroblob(32), zeroblob(16), 600000, 'user',
         strftime('%Y-%m-%d %H:%M:%f', 'now') FROM n;"

export TWILIO_ACCOUNT_SID=$ACCOUNT TWILIO_AUTH_TOKEN=bench-auth-token TWILIO_FROM_NUMBER=+15005550006 \
  TWILIO_API_BASE_URL=http://127.0.0.1:$FAKE_PORT ACTION2PHONE_SEND_RATE=$RATE LOG_LEVEL=warning
"$BIN/action2phone" serve --port $PORT --db "$DB" >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
START=$(date +%s.%N)
"$BIN/action2phone" broadcast "Comrades: the harvest festival is on Saturday at noon." --yes --db "$DB"
RSS=()
for _ in $(seq 90); do
  sleep 1
  RSS+=("$(awk '/VmRSS/ {print int($2/1024)}' /proc/$SERVER/status)")
  LEFT=$(sqlite3 "$DB" "SELECT count(*) FROM outbox WHERE status IN ('queued', 'sending')")
  [ "$LEFT" = "0" ] && break
done
END=$(date +%s.%N)
STATS=$(curl -fs "http://127.0.0.1:$FAKE_PORT/stats")
SENT=$(sqlite3 "$DB" "SELECT count(*) FROM outbox WHERE status = 'sent'")
OTHER=$(sqlite3 "$DB" "SELECT group_concat(status || ':' || c) FROM (SELECT status, count(*) c FROM outbox WHERE status != 'sent' GROUP BY status)")
HWM=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$SERVER/status)
kill -TERM $SERVER; wait $SERVER || true
echo "machine: $(nproc) cores; people=$PEOPLE rate=$RATE/s"
echo "fake API: $STATS"
echo "outbox: sent=$SENT other=${OTHER:-none} wall_s=$(echo "$END - $START" | bc)"
echo "server RSS MB each second: ${RSS[*]} (peak $HWM)"
