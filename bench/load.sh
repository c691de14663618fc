#!/usr/bin/env bash
# Proxy load benchmark: the same fixed-rate load, side by side, against
#   1. the mock upstream directly,
#   2. shadowgate in native_primary mode,
#   3. shadowgate in shadow mode (every request re-run in wasm and diffed),
# reporting p50/p99 latency, throughput and peak RSS of the proxy.
# The targets are interleaved: ROUNDS rounds, each running all three for
# SECONDS in turn, and the report gives the median of the per-round figures,
# so that a noisy neighbour on a shared machine hits all three alike.
#
#   bash bench/load.sh [RATE] [SECONDS] [ROUNDS]   (defaults: 1000 req/s, 5 s, 5 rounds)
#
# Needs `oha` (installed with `cargo install oha --locked` if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-1000}
SECS=${2:-5}
ROUNDS=${3:-5}
command -v oha >/dev/null || cargo install oha --locked
cargo build --release -q
BIN=target/release/shadowgate
export SHADOWGATE_REDACTION_KEY=bench-only-not-a-secret-0123456789
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

$BIN mock-upstream --listen 127.0.0.1:9100 >"$WORK/mock.log" 2>&1 &
for mode in native_primary shadow; do
  port=$([ $mode = native_primary ] && echo 8181 || echo 8182)
  sed -e "s/127.0.0.1:9000/127.0.0.1:9100/" -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" \
      -e "s/^listen = \(.*\)/&\nmode = \"$mode\"/" -e "s/^rate = .*/rate = 0.0\nboost_minutes = 0/" examples/local.toml >"$WORK/$mode.toml"
  RUST_LOG=warn $BIN serve --config "$WORK/$mode.toml" >"$WORK/$mode.log" 2>&1 &
  echo $! >"$WORK/$mode.pid"
done
for port in 9100 8181 8182; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v1/models" -X POST && break; sleep 0.1; done
done

BODY='{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"What is shadow traffic?"}]}'
run() { # name url round
  oha --no-tui --output-format json -z "${SECS}s" -q "$RATE" -c 64 -m POST -T application/json -d "$BODY" "$2" >"$WORK/$1.$3.json"
}
for round in $(seq "$ROUNDS"); do
  run direct http://127.0.0.1:9100/v1/chat/completions "$round"
  run native_primary http://127.0.0.1:8181/v1/chat/completions "$round"
  run shadow http://127.0.0.1:8182/v1/chat/completions "$round"
done
sleep 1
for mode in native_primary shadow; do
  grep VmHWM /proc/"$(cat "$WORK/$mode.pid")"/status | awk '{print $2}' >"$WORK/$mode.rss"
  curl -s http://127.0.0.1:$([ $mode = native_primary ] && echo 8181 || echo 8182)/metrics | grep -E '^shadowgate_(comparisons_total|shadow_jobs_dropped_total)' >"$WORK/$mode.metrics" || true
done

python3 - "$WORK" "$RATE" "$SECS" "$ROUNDS" <<'PY'
import json, os, statistics, sys
work, rate, secs, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
names = ["direct", "native_primary", "shadow"]
runs = {n: [json.load(open(os.path.join(work, f"{n}.{r}.json"))) for r in range(1, rounds + 1)] for n in names}
def med(n, f): return statistics.median(f(r) for r in runs[n])
p50 = {n: med(n, lambda r: r["latencyPercentiles"]["p50"] * 1000) for n in names}
p99 = {n: med(n, lambda r: r["latencyPercentiles"]["p99"] * 1000) for n in names}
# Added latency per round (same round, same neighbours), then the median.
def added(n, p): return statistics.median(
    (a["latencyPercentiles"][p] - d["latencyPercentiles"][p]) * 1000 for a, d in zip(runs[n], runs["direct"]))
print(f"fixed rate {rate} req/s, {rounds} interleaved rounds of {secs} s per target, 64 connections, non-streaming request\n")
print("| target | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | success | peak RSS MB |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for n in names:
    rps = med(n, lambda r: r["summary"]["requestsPerSec"])
    ok = min(r["summary"]["successRate"] for r in runs[n]) * 100
    rss = "–" if n == "direct" else f"{int(open(os.path.join(work, n + '.rss')).read()) / 1024:.1f}"
    a50 = "–" if n == "direct" else f"{added(n, 'p50'):.3f}"
    a99 = "–" if n == "direct" else f"{added(n, 'p99'):.3f}"
    print(f"| {n} | {rps:.0f} | {p50[n]:.3f} | {p99[n]:.3f} | {a50} | {a99} | {ok:.2f}% | {rss} |")
ratios = [s["latencyPercentiles"]["p99"] / n["latencyPercentiles"]["p99"] for s, n in zip(runs["shadow"], runs["native_primary"])]
print(f"\nshadow / native_primary p99 ratio: median {statistics.median(ratios):.3f} (per round: {', '.join(f'{x:.2f}' for x in ratios)})")
for n in ["native_primary", "shadow"]:
    print(f"\n{n} metrics:\n" + open(os.path.join(work, n + ".metrics")).read().strip())
PY
