#!/usr/bin/env bash
# A broadcast's fan-out stays out of the webhooks (SPEC §3 rule 8): with [people] registered (200,000 by
# default), an admin confirms a broadcast over signed HTTP while other phones keep texting HELP. Prints the
# YES webhook's latency, the other webhooks' p50/p99/max during the fan-out, and the rows written.
# Local mode, loopback only, about 30 s. Usage: Benchmarks/run-fanout.sh [people]
set -euo pipefail
cd "$(dirname "$0")/.."
PEOPLE=${1:-200000}
[[ $PEOPLE =~ ^[1-9][0-9]*$ ]] || { echo "usage: Benchmarks/run-fanout.sh [people] (a whole number; got '$PEOPLE')" >&2; exit 2; }
PORT=18430
swift build -c release --product action2phone >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
DB="$WORK/bench.sqlite"
export ACTION2PHONE_PBKDF2_ITERATIONS=1000 ACTION2PHONE_ADMIN_PHONES=+14155550199 LOG_LEVEL=warning
printf 'JOIN\nVera\nCommissar\nvera@example.org\nred-square-1917\nred-square-1917\n' | "$BIN/action2phone" chat --db "$DB" --from +14155550199 >/dev/null
sqlite3 "$DB" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $PEOPLE)
  INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, createdAt)
  SELECT printf('+1416%07d', i), 'Comrade', 'N' || i, 'c' || i || '@example.org', zeroblob(32), zeroblob(16), 1000,
         strftime('%Y-%m-%d %H:%M:%f', 'now') FROM n;"
"$BIN/action2phone" serve --port $PORT --db "$DB" >"$WORK/serve.log" 2>&1 &
for _ in $(seq 100); do curl -fs http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
python3 Benchmarks/fanout_drive.py $PORT "$DB.dev-token"
sleep 1
echo "broadcasts (stored|queued|finished): $(sqlite3 "$DB" "SELECT stored, queued, finishedAt IS NOT NULL FROM broadcasts")"
echo "inbox rows: $(sqlite3 "$DB" "SELECT count(*) FROM inbox"), outbox rows: $(sqlite3 "$DB" "SELECT count(*) FROM outbox")"
