#!/usr/bin/env bash
# Proxy CPU per request: the serve process's utime+stime (from /proc) over a
# fixed-rate run, divided by the requests served, for native_primary and
# shadow side by side; then the idle cost of the same processes (CPU and
# thread wake-ups per second with no traffic).
# No cases are recorded (sampling rate 0, no new-version boost): the figures
# are the cost of serving and, in shadow mode, of comparing.
# The modes are interleaved: ROUNDS rounds, each loading both in turn, and the
# report gives the median of the per-round figures.
#
#   bash bench/cpu.sh [RATE] [SECONDS] [ROUNDS] [IDLE_SECONDS]
#   (defaults: 500 req/s, 5 s, 5 rounds, 10 s idle)
#
# SHADOWGATE_BIN=path measures that binary instead of a fresh release build
# (e.g. a build of an older commit, for before/after figures).
# Needs `oha` (installed with `cargo install oha --locked` if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-500}
SECS=${2:-5}
ROUNDS=${3:-5}
IDLE=${4:-10}
command -v oha >/dev/null || cargo install oha --locked
BIN=${SHADOWGATE_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release -q
  BIN=target/release/shadowgate
fi
export SHADOWGATE_REDACTION_KEY=bench-only-not-a-secret-0123456789
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

$BIN mock-upstream --listen 127.0.0.1:9110 >"$WORK/mock.log" 2>&1 &
for mode in native_primary shadow; do
  port=$([ $mode = native_primary ] && echo 8191 || echo 8192)
  sed -e "s/127.0.0.1:9000/127.0.0.1:9110/" -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" \
      -e "s/^listen = \(.*\)/&\nmode = \"$mode\"/" -e "s/^rate = .*/rate = 0.0\nboost_minutes = 0/" \
      -e "s|^data_dir = .*|data_dir = \"$WORK/$mode-data\"|" examples/local.toml >"$WORK/$mode.toml"
  RUST_LOG=warn $BIN serve --config "$WORK/$mode.toml" >"$WORK/$mode.log" 2>&1 &
  echo $! >"$WORK/$mode.pid"
done
for port in 9110 8191 8192; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v1/models" -X POST && break; sleep 0.1; done
done

TCK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' /proc/"$1"/stat; } # utime+stime in clock ticks
wakeups() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }
BODY='{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"What is shadow traffic?"}]}'
# Warm-up: pools, connections, the guest's instances.
for port in 8191 8192; do
  oha --no-tui -z 2s -q "$RATE" -c 16 -m POST -T application/json -d "$BODY" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
done
sleep 1
for round in $(seq "$ROUNDS"); do
  for mode in native_primary shadow; do
    pid=$(cat "$WORK/$mode.pid")
    port=$([ $mode = native_primary ] && echo 8191 || echo 8192)
    before=$(cpu "$pid")
    oha --no-tui --output-format json -z "${SECS}s" -q "$RATE" -c 16 -m POST -T application/json -d "$BODY" \
      "http://127.0.0.1:$port/v1/chat/completions" >"$WORK/$mode.$round.json"
    sleep 0.5 # let the shadow queue drain: its work counts too
    echo $(( $(cpu "$pid") - before )) >"$WORK/$mode.$round.cpu"
  done
done
for mode in native_primary shadow; do
  pid=$(cat "$WORK/$mode.pid")
  c0=$(cpu "$pid"); w0=$(wakeups "$pid")
  echo "$c0 $w0" >"$WORK/$mode.idle0"
done
sleep "$IDLE"
for mode in native_primary shadow; do
  pid=$(cat "$WORK/$mode.pid")
  echo "$(cpu "$pid") $(wakeups "$pid")" >"$WORK/$mode.idle1"
  curl -s http://127.0.0.1:$([ $mode = native_primary ] && echo 8191 || echo 8192)/metrics \
    | grep -E '^shadowgate_(comparisons_total|shadow_jobs_dropped_total|wasm_epoch_ticks)' >"$WORK/$mode.metrics" || true
done

python3 - "$WORK" "$RATE" "$SECS" "$ROUNDS" "$IDLE" "$TCK" <<'PY'
import json, os, statistics, sys
work, rate, secs, rounds, idle, tck = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
modes = ["native_primary", "shadow"]
def per_request(m, r):
    run = json.load(open(os.path.join(work, f"{m}.{r}.json")))
    ok = sum(n for code, n in run["statusCodeDistribution"].items() if code == "200")
    ticks = int(open(os.path.join(work, f"{m}.{r}.cpu")).read())
    return ticks / tck / max(ok, 1) * 1e6, ok
print(f"fixed rate {rate} req/s, {rounds} interleaved rounds of {secs} s per mode, 16 connections, non-streaming request\n")
print("| mode | CPU µs / request (median) | per round | requests per round |")
print("| --- | --- | --- | --- |")
med = {}
for m in modes:
    xs = [per_request(m, r) for r in range(1, rounds + 1)]
    med[m] = statistics.median(x for x, _ in xs)
    print(f"| {m} | {med[m]:.0f} | {', '.join(f'{x:.0f}' for x, _ in xs)} | {min(n for _, n in xs)}–{max(n for _, n in xs)} |")
ratios = [per_request("shadow", r)[0] / per_request("native_primary", r)[0] for r in range(1, rounds + 1)]
print(f"\nshadow / native_primary CPU per request: median {statistics.median(ratios):.2f}× (per round: {', '.join(f'{x:.2f}' for x in ratios)})")
print(f"\nidle, {idle:.0f} s without traffic:\n")
print("| mode | CPU ms / s | thread wake-ups / s |")
print("| --- | --- | --- |")
for m in modes:
    c0, w0 = map(int, open(os.path.join(work, m + ".idle0")).read().split())
    c1, w1 = map(int, open(os.path.join(work, m + ".idle1")).read().split())
    print(f"| {m} | {(c1 - c0) / tck / idle * 1000:.2f} | {(w1 - w0) / idle:.1f} |")
for m in modes:
    print(f"\n{m} metrics:\n" + open(os.path.join(work, m + ".metrics")).read().strip())
PY
