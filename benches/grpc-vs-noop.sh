#!/usr/bin/env bash
# Rank over gRPC against the transport floor, in one run: starts the no-op
# server of ../shared/tools/grpcload and each fairflow binary given, then runs
# the load generator against each in turn, ROUNDS times, on the same payloads.
# Prints requests/s, client latency and the server's CPU per request (user +
# system time from /proc over the run, divided by the requests answered).
#
#   cargo build --release
#   cargo build --release --manifest-path ../shared/tools/grpcload/Cargo.toml --target-dir target/grpcload
#   target/release/fairflow load --write-payloads /tmp/p200 --candidates 200
#   bash benches/grpc-vs-noop.sh /tmp/p200 2 target/release/fairflow [other-fairflow-binary ...]
#
# Figures: docs/performance.md.
set -euo pipefail
payloads=$1 rounds=$2
shift 2
tools=${GRPCLOAD_DIR:-target/grpcload/release}
work=$(mktemp -d)
names=(noop) addrs=(127.0.0.1:50999) pids=()
"$tools/noop" --listen 127.0.0.1:50999 --resp-bytes 1600 >/dev/null 2>&1 &
pids+=($!)
port=50061
for bin in "$@"; do
    RUST_BACKTRACE=0 "$bin" serve --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 1000))" \
        --events-dir "$work/events-$port" >"$work/serve-$port.log" 2>&1 &
    pids+=($!) names+=("$bin") addrs+=("127.0.0.1:$port")
    port=$((port + 1))
done
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
sleep 3
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)
for _ in $(seq "$rounds"); do
    for i in "${!names[@]}"; do
        before=$(cpu_ticks "${pids[$i]}")
        out=$("$tools/grpcload" --addr "${addrs[$i]}" --path /fairflow.v1.RankService/Rank \
            --payload "$payloads"/req-*.bin --concurrency 16 --connections 4 --seconds 5)
        after=$(cpu_ticks "${pids[$i]}")
        python3 - "$out" "${names[$i]}" "$((after - before))" "$ticks_per_second" <<'PY'
import json, sys
d, name, ticks, hz = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cpu_us = ticks / hz * 1e6 / max(d["ok"], 1)
print(f"{name:40} {d['rps']:9.0f} req/s  p50 {d['p50_us']:6} us  p99 {d['p99_us']:6} us  "
      f"errors {d['errors']}  server CPU {cpu_us:6.1f} us/req")
PY
    done
done
