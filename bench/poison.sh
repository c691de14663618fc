#!/usr/bin/env bash
# A bad candidate cannot stall serving: every module at stage `default` (wasm
# serves) on a candidate guest that spins on requests carrying `POISON-PILL`
# (core feature `bench-poison`). Ordinary traffic at a fixed rate, alone and
# then beside a fixed rate of poisoned requests; the ordinary p50/p99 of both
# runs side by side, with the breaker state and fallbacks at the end.
#
#   bash bench/poison.sh [RATE] [POISON_RATE] [SECONDS]   (defaults: 100 req/s, 5 req/s, 20 s)
#   BREAKER_FAILURES=1000000 bash bench/poison.sh          (the pool alone: the breaker never opens)
#
# Needs `oha` (installed with `cargo install oha --locked` if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-100}
POISON=${2:-5}
SECS=${3:-20}
command -v oha >/dev/null || cargo install oha --locked
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
cargo build --release -q
cargo build -q -p shadowgate-guest --release --target wasm32-unknown-unknown --features bench-poison \
  --target-dir target/guest-poison
BIN=target/release/shadowgate
GUEST=target/guest-poison/wasm32-unknown-unknown/release/shadowgate_guest.wasm
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export SHADOWGATE_REDACTION_KEY=bench-only-not-a-secret-0123456789
export SG_BENCH_ADMIN=bench-admin-token

$BIN mock-upstream --listen 127.0.0.1:9200 >"$WORK/mock.log" 2>&1 &
sed -e "s/127.0.0.1:9000/127.0.0.1:9200/" -e 's/^listen = .*/listen = "127.0.0.1:8281"/' \
    -e 's/^mode = .*//' -e 's/^rate = .*/rate = 0.0/' -e "s|^data_dir = .*|data_dir = \"$WORK/data\"|" \
    examples/local.toml >"$WORK/poison.toml"
{ echo 'admin_token_env = "SG_BENCH_ADMIN"'; cat "$WORK/poison.toml"; printf '[primary]\ndeadline_ms = 50\nbreaker_failures = %s\n' "${BREAKER_FAILURES:-5}"; } >"$WORK/p.toml"
mv "$WORK/p.toml" "$WORK/poison.toml"
# Every module at stage default: the candidate serves.
python3 - "$WORK/poison.toml" "$GUEST" <<'PY'
import re, sys
path, guest = sys.argv[1], sys.argv[2]
text = open(path).read()
text = text.replace("[modules]\n", "[modules]\nstages = { routing = \"default\", tools = \"default\", compat = \"default\", streaming = \"default\", tokenizer = \"default\" }\n", 1)
text = text.replace("[shadow]\n", f"[shadow]\nguest = \"{guest}\"\n", 1)
open(path, "w").write(text)
PY
RUST_LOG=warn $BIN serve --config "$WORK/poison.toml" >"$WORK/serve.log" 2>&1 &
PID=$!
until curl -sf http://127.0.0.1:8281/readyz >/dev/null; do
  kill -0 $PID 2>/dev/null || { cat "$WORK/serve.log"; exit 1; }
  sleep 0.2
done

ORDINARY='{"model":"gpt-4o","messages":[{"role":"user","content":"What is shadow traffic?"}]}'
PILL='{"model":"gpt-4o","messages":[{"role":"user","content":"POISON-PILL"}]}'
run() { # name rate body
  oha --no-tui --output-format json -z "${SECS}s" -q "$2" -c 32 -m POST -T application/json -d "$3" \
    http://127.0.0.1:8281/v1/chat/completions >"$WORK/$1.json"
}
run alone "$RATE" "$ORDINARY"
run poison "$POISON" "$PILL" &
PILLS=$!
run beside "$RATE" "$ORDINARY"
wait "$PILLS"
sleep 1
curl -s http://127.0.0.1:8281/metrics | grep -E '^shadowgate_(breaker_open|breaker_trips_total|fallbacks_total)' >"$WORK/metrics.txt" || true
curl -s -H "authorization: Bearer $SG_BENCH_ADMIN" http://127.0.0.1:8281/admin/modules >"$WORK/admin.json"

python3 - "$WORK" "$RATE" "$POISON" "$SECS" <<'PY'
import json, os, sys
work, rate, poison, secs = sys.argv[1:5]
def load(n): return json.load(open(os.path.join(work, f"{n}.json")))
alone, beside, pill = load("alone"), load("beside"), load("poison")
ms = lambda r, p: r["latencyPercentiles"][p] * 1000
print(f"ordinary traffic {rate} req/s for {secs} s, poisoned {poison} req/s beside it; every module at stage default on the poisoned candidate")
print(f"{'':<22}{'p50 ms':>10}{'p99 ms':>10}{'success':>10}")
for name, r in [("ordinary alone", alone), ("ordinary beside poison", beside), ("poisoned requests", pill)]:
    print(f"{name:<22}{ms(r, 'p50'):>10.2f}{ms(r, 'p99'):>10.2f}{r['summary']['successRate'] * 100:>9.1f}%")
print(f"p99 beside poison - p99 alone: {ms(beside, 'p99') - ms(alone, 'p99'):+.2f} ms (goal: within 25 ms)")
print(open(os.path.join(work, "metrics.txt")).read().strip())
admin = json.load(open(os.path.join(work, "admin.json")))
print("breakers:", {m: (b["state"], b["trips"]) for m, b in admin.get("breakers", {}).items()})
PY
