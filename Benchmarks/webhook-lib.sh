# Shared by run-webhook.sh and quick-webhook.sh, which source it from the repository's root after setting WORK.
THREADS=2
CONNECTIONS=64
TOKEN=bench-auth-token-0123456789abcdef
ACCOUNT=AC00000000000000000000000000000000
PUBLIC=http://bench.local

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

# gen COUNT FILE FIRST_SID SENDERS_FROM [SENDERS] [MODE]: signed webhooks into $WORK/FILE (see gen_webhooks.py).
gen() { python3 Benchmarks/gen_webhooks.py "$1" "$TOKEN" "$PUBLIC/sms" "$ACCOUNT" "$WORK/$2" "${5:-1000}" "$3" "$4" ${6:-}; }

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_wrk() { # url file seconds [threads connections]
  wrk -t"${4:-$THREADS}" -c"${5:-$CONNECTIONS}" -d"$3"s --timeout 5s -s Benchmarks/webhooks.lua "$1" -- "$2" "${4:-$THREADS}" | grep '^RESULT'
}
field() { echo "$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p"; }

# start_server BINARY PORT DATABASE LOG: `serve` in Twilio mode with the benchmark's token, in the background (its
# pid in SERVER), once /healthz answers.
start_server() {
  TWILIO_ACCOUNT_SID=$ACCOUNT TWILIO_AUTH_TOKEN=$TOKEN TWILIO_FROM_NUMBER=+15005550006 TWILIO_API_BASE_URL=http://127.0.0.1:9 \
  ACTION2PHONE_PUBLIC_URL=$PUBLIC LOG_LEVEL=warning \
    "$1" serve --port "$2" --db "$3" >"$4" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do
    kill -0 "$SERVER" 2>/dev/null || break  # it stopped (its port taken, say): another process's /healthz is not its
    curl -fs "http://127.0.0.1:$2/healthz" >/dev/null && kill -0 "$SERVER" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the server stopped or did not answer /healthz within 10 s; its log:" >&2
  cat "$4" >&2
  return 1
}
