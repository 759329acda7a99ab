#!/usr/bin/env bash
# Builds the libFuzzer targets (release, -sanitize=fuzzer,address), seeds their corpora from the recorded
# webhooks in ../fixtures/webhooks, runs each target for SECONDS (default 60) and prints a summary per target.
# Exits 1 when a target crashed or broke a property (the input is saved under artifacts/<target>/).
#
#   Fuzz/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-60}
targets=(FuzzFormCodec FuzzRequestValidator)
build=(swift build -c release -Xswiftc -sanitize=fuzzer,address)

# MARK: - Build

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== ${build[*]}"
if ! "${build[@]}" >"$log" 2>&1; then
    grep -v 'Cannot export local symbol' "$log" >&2  # ld.gold's noise about ASan's local symbols
    exit 1
fi
bin=$("${build[@]}" --show-bin-path)

# MARK: - Seed corpora

# FuzzFormCodec gets each fixture's body as sent on the wire (`params` encoded as `FormCodec.encode`
# does: everything but unreserved characters as upper-case %XX; a raw `body` once, not `bodyRepeat` times).
# FuzzRequestValidator gets the same request in its layout: URL length, signature length (0-63), flip byte,
# URL, X-Twilio-Signature, body. Seeds keep their fixture's name, so a rerun overwrites them.
mkdir -p "${targets[@]/#/corpus/}" "${targets[@]/#/artifacts/}"
python3 - ../fixtures/webhooks/*.json <<'EOF'
import json, sys, urllib.parse
for path in sys.argv[1:]:
    record = json.load(open(path, encoding="utf-8"))
    name = path.rsplit("/", 1)[-1].removesuffix(".json")
    if "params" in record:
        q = lambda s: urllib.parse.quote(s, safe="")
        body = "&".join(q(k) + "=" + q(v) for k, v in record["params"]).encode()
    else:
        body = record["body"].encode()
    url = record["url"].encode()[:255]
    signature = record["headers"].get("X-Twilio-Signature", "").encode()[:63]
    open(f"corpus/FuzzFormCodec/seed-{name}", "wb").write(body)
    open(f"corpus/FuzzRequestValidator/seed-{name}", "wb").write(bytes([len(url), len(signature), 0]) + url + signature + body)
EOF

# MARK: - Fuzz

# The Swift runtime's backtracer trips ASan and hangs after a fatalError; libFuzzer's own report is enough.
export SWIFT_BACKTRACE=enable=no
failed=0
summary=()
for target in "${targets[@]}"; do
    echo "== $target: ${seconds} s, corpus/$target ($(ls "corpus/$target" | wc -l) inputs)"
    status=0
    dict=()
    [[ $target == FuzzRequestValidator ]] && dict=(-dict=separators.dict)
    "$bin/$target" "corpus/$target" "${dict[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"artifacts/$target.log" 2>&1 || status=$?
    stat() { sed -n "s/^stat::$1: *//p" "artifacts/$target.log"; }
    execs=$(stat number_of_executed_units)
    if [[ -z $execs ]]; then
        tail -20 "artifacts/$target.log" >&2
        echo "$target: no libFuzzer statistics (is libFuzzer's main the entry point?)" >&2
        exit 1
    fi
    coverage=$({ grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[0-9]*[a-zA-Z]*' "artifacts/$target.log" || echo 'cov: ?'; } | tail -1)
    crash=no
    if ((status != 0)); then
        crash="YES: $(sed -n 's/.*Test unit written to //p' "artifacts/$target.log" | tail -1)"
        grep -A6 -m1 'FUZZ PROPERTY FAILED\|ERROR: AddressSanitizer\|ERROR: libFuzzer' "artifacts/$target.log" >&2 || true
        failed=1
    fi
    summary+=("$(printf '%-21s %10s execs  %6s/s  %s  peak RSS %s MB  crash: %s' \
        "$target" "$execs" "$(stat average_exec_per_sec)" "$coverage" "$(stat peak_rss_mb)" "$crash")")
done

echo "== summary (logs in Fuzz/artifacts/<target>.log)"
printf '%s\n' "${summary[@]}"
exit "$failed"
