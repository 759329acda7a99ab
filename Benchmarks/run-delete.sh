#!/usr/bin/env bash
# A DELETE holds the other webhooks up no longer than a broadcast's chunk does (SPEC §3 rule 8), however long the
# admins' history it erases the person from: with an admin's [rows] commands and [rows]/2 replies in SQLite
# (300,000 by default; one command in 1,000 a FIND that named the member), a member ([first] [last], Boris Petrov
# by default) registers over signed HTTP and deletes their account while other phones keep texting HELP. Prints how
# long the same history takes to read in one statement (as the DELETE's own transaction did before), the YES
# webhook's latency, when the erasure ended, and the other webhooks' p50/p99/max meanwhile. Local mode, loopback
# only, about 30 s. Usage: Benchmarks/run-delete.sh [rows] [first last]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-300000}
FIRST=${2:-Boris}
LAST=${3:-Petrov}
[[ $ROWS =~ ^[1-9][0-9]*$ ]] || { echo "usage: Benchmarks/run-delete.sh [rows] [first last] (rows: a whole number; got '$ROWS')" >&2; exit 2; }
[[ -n $FIRST && -n $LAST && "$FIRST$LAST" != *[\'\"\\\ ]* ]] ||
  { echo "usage: Benchmarks/run-delete.sh [rows] [first last] (names: one word each, without quotes)" >&2; exit 2; }
PORT=18450
swift build -c release --product action2phone >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
DB="$WORK/bench.sqlite"
ADMIN=+14155550199
export ACTION2PHONE_PBKDF2_ITERATIONS=1000 ACTION2PHONE_ADMIN_PHONES=$ADMIN LOG_LEVEL=warning
printf 'JOIN\nVera\nCommissar\nvera@example.org\nred-square-1917\nred-square-1917\n' | "$BIN/action2phone" chat --db "$DB" --from $ADMIN >/dev/null
NAMED="$FIRST $LAST, +14155550102, boris@example.org"
# (SQLite's lower() knows ASCII letters only: with any other letter in the name, every row was a candidate.)
if LC_ALL=C grep -q '^[ -~]*$' <<<"$FIRST $LAST"; then
  BY_NAME="instr(lower(body), lower('$FIRST $LAST')) OR instr(lower(reply), lower('$FIRST $LAST'))"
else
  BY_NAME=1
fi
sqlite3 "$DB" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ROWS)
  INSERT INTO inbound (messageSid, \"from\", \"to\", body, params, reply, receivedAt)
  SELECT printf('SMbench%026d', i), '$ADMIN', '+15005550006', CASE WHEN i % 1000 = 0 THEN 'FIND bor' ELSE 'USERS' END, '[]',
         CASE WHEN i % 1000 = 0 THEN '<Response><Message>$NAMED</Message></Response>'
              ELSE '<Response><Message>Registered comrades: 2</Message></Response>' END,
         strftime('%Y-%m-%d %H:%M:%f', 'now') FROM n;
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ROWS / 2)
  INSERT INTO outbox (\"to\", body, purpose, status, createdAt, updatedAt)
  SELECT '$ADMIN', CASE WHEN i % 1000 = 0 THEN '$NAMED' ELSE 'Stored in the inbox.' END, 'reply', 'sent',
         strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM n;"
echo "the admin's history: $(sqlite3 "$DB" "SELECT count(*) FROM inbound WHERE \"from\" = '$ADMIN'") commands," \
  "$(sqlite3 "$DB" "SELECT count(*) FROM outbox WHERE \"to\" = '$ADMIN'") replies"
# What the DELETE's transaction read before 2026-12-02, every other webhook waiting: the candidates among the admins'
# commands (the replies came on top).
printf 'the same commands read in one statement: '
printf '.timer on\n%s;\n' "SELECT count(*) || ' found;' FROM inbound WHERE \"from\" IN (SELECT phone FROM adminPhones) AND (
  instr(body, '+14155550102') OR instr(lower(body), 'boris@example.org')
  OR instr(replace(replace(replace(replace(replace(body, ' ', ''), '-', ''), '.', ''), '(', ''), ')', ''), '4155550102')
  OR instr(reply, '+14155550102') OR instr(lower(reply), 'boris@example.org') OR $BY_NAME)" |
  sqlite3 "$DB" | tr '\n' ' '
echo
"$BIN/action2phone" serve --port $PORT --db "$DB" >"$WORK/serve.log" 2>&1 &
for _ in $(seq 100); do curl -fs http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
python3 Benchmarks/fanout_drive.py $PORT "$DB.dev-token" delete "$DB" "$FIRST" "$LAST"
echo "rows of the admin's that still name him: $(sqlite3 "$DB" "SELECT (SELECT count(*) FROM inbound WHERE body LIKE '%bor%'
  OR instr(reply, '$FIRST')) + (SELECT count(*) FROM outbox WHERE instr(body, '$FIRST'))"); erased: $(sqlite3 "$DB" "SELECT
  (SELECT count(*) FROM inbound WHERE \"from\" = '$ADMIN' AND body = '[deleted]') + (SELECT count(*) FROM outbox WHERE body = '[deleted]')")"
