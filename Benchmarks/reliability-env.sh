# Sourced by run-crash.sh and run-outage.sh: the benchmark's Twilio identity, the server binary, and a work
# folder removed on exit (KEEP_WORK=1 keeps the databases, logs and records for a look afterwards).
TOKEN=bench-auth-token-0123456789abcdef
ACCOUNT=AC00000000000000000000000000000000
PUBLIC=http://bench.local
if [ -z "${A2P_BIN:-}" ]; then
  swift build -c release --product action2phone >/dev/null
  A2P_BIN="$(swift build -c release --show-bin-path)/action2phone"
fi
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP_WORK:-}" ] && echo "kept $WORK" || rm -rf "$WORK"' EXIT
