#!/usr/bin/env bash
# Vote's POST cost on its own, for docs/profile.md:
#
#   scripts/profile-vote.sh BIN_DIR [VOTES] [PERF_DATA]
#
# Starts a throwaway redis-server (AOF, fsync every second, as the bench's)
# and BIN_DIR/vote on free loopback ports, warms vote with 2,000 votes, then
# posts VOTES (default 100,000; split 2:1, each a new voter) with
# `BIN_DIR/seed -c 50` and prints seed's req/s, p50, p99 and vote's own CPU
# time per request (utime + stime from /proc). With PERF_DATA, vote is
# sampled meanwhile by `perf record -F 2000 -g` (as root where
# perf_event_paranoid is 2). For symbols, build with
#   CARGO_PROFILE_RELEASE_STRIP=none RUSTFLAGS="-C force-frame-pointers=yes" \
#     cargo build --release -p vote -p seed
# Numbers only; `cargo xtask bench` is the benchmark of record.
set -euo pipefail
BIN=$1
VOTES=${2:-100000}
PERF_DATA=${3:-}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port); VOTE_PORT=$(free_port); ADMIN_PORT=$(free_port)
DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DIR" --appendonly yes \
  --appendfsync everysec --save "" >"$DIR/redis.log" 2>&1 &
PIDS+=($!)
RUST_LOG=warn PORT=$VOTE_PORT ADMIN_PORT=$ADMIN_PORT BIND_ADDRESS=127.0.0.1 \
  ADMIN_BIND_ADDRESS=127.0.0.1 REDIS_URL=redis://127.0.0.1:$REDIS_PORT \
  "$BIN/vote" >"$DIR/vote.log" 2>&1 &
VOTE_PID=$!
PIDS=("$VOTE_PID" "${PIDS[@]}")
URL=http://127.0.0.1:$VOTE_PORT/
for _ in $(seq 100); do curl -sf "${URL}healthz" >/dev/null && break; sleep 0.1; done
"$BIN/seed" --target "$URL" --progress none -c 50 -a 1000 -b 1000 >/dev/null
if [ -n "$PERF_DATA" ]; then
  perf record -F 2000 -g -p "$VOTE_PID" -o "$PERF_DATA" 2>"$DIR/perf.log" &
  PERF_PID=$!
  sleep 0.3
fi
ticks() { awk '{print $14 + $15}' "/proc/$VOTE_PID/stat"; }
BEFORE=$(ticks)
"$BIN/seed" --target "$URL" --progress none -c 50 -a $((VOTES * 2 / 3)) \
  -b $((VOTES - VOTES * 2 / 3)) --report-json "$DIR/report.json" >/dev/null
AFTER=$(ticks)
if [ -n "$PERF_DATA" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
python3 - "$DIR/report.json" "$((AFTER - BEFORE))" "$(getconf CLK_TCK)" "$VOTES" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
ticks, hz, votes = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print("req/s %.0f p50 %.2f ms p99 %.2f ms failed %s vote CPU %.1f us/request" % (
    report["requests_per_second"], report["latency_ms"]["p50"],
    report["latency_ms"]["p99"], report["failed"], ticks / hz * 1e6 / votes))
PY
