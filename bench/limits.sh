#!/usr/bin/env bash
# Admission benchmark: the same fixed-rate InvokeModel load through the gateway without limits,
# with limits and a hard budget that cover every call (in-process state), and with the same in
# Redis (a redis-server on loopback), side by side in one run, interleaved in ROUNDS so all see
# the same machine.
#
#   bench/limits.sh        # RATE=1000 SECONDS_EACH=10 ROUNDS=5
#
# The load generator, the mock Bedrock and both gateways share this machine's cores. The limits
# never refuse (their numbers are far above the load): what is measured is what deciding costs,
# a requests-per-minute window, a tokens-per-minute window, a concurrency cap and a hard budget's
# reservation and settlement for every call. Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
OUT="${BENCH_DIR:-bench/out}/limits"
RATE="${RATE:-1000}"
SECONDS_EACH="${SECONDS_EACH:-10}"
ROUNDS="${ROUNDS:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bedrock-usage/target}"
REL="$CARGO_TARGET_DIR/release"
cargo build --release -q -p bedrock-usage --bin bedrock-usage --example mock_bedrock --example loadgen

rm -rf "$OUT"; mkdir -p "$OUT"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
"$REL/examples/mock_bedrock" "$OUT/mock-log.jsonl" > "$OUT/mock.out" 2> "$OUT/mock.err" &
PIDS+=("$!")
MOCK=$(wait_for "$OUT/mock.out" 'http://[0-9.:]*')

export AWS_ACCESS_KEY_ID=AKIDGATEWAYTEST AWS_SECRET_ACCESS_KEY=gateway-test-secret
export AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_STS=http://127.0.0.1:9
unset AWS_PROFILE AWS_SESSION_TOKEN
cat > "$OUT/limits.toml" <<'TOML'
[[limits]]
name = "per-person"
each_developer = true
requests_per_minute = 100000000
tokens_per_minute = 1000000000000
max_concurrent = 100000
[[budgets]]
name = "cap"
each_developer = true
period = "month"
amount = "1000000"
action = "block"
TOML
start_gateway() { # start_gateway NAME [CONFIG]: the URL and key of a gateway with a store of its own
  local name="$1" cfg="${2:-}" db="$OUT/$1.db"
  local key; key=$("$REL/bedrock-usage" --db "$db" --format json keys create --developer bench \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
  local with=(); [ -n "$cfg" ] && with=(--config "$cfg")
  "$REL/bedrock-usage" --db "$db" "${with[@]}" gateway --listen 127.0.0.1:0 \
    --upstream "$MOCK" --region us-east-1 2> "$OUT/$name.err" &
  PIDS+=("$!")
  echo "$(wait_for "$OUT/$name.err" 'listening on http://[0-9.:]*' | sed 's/listening on //') $key"
}
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no > "$OUT/redis.log" 2>&1 &
PIDS+=("$!")
wait_for "$OUT/redis.log" 'Ready to accept connections' > /dev/null
{ printf '[gateway]\nredis_url = "redis://127.0.0.1:%s"\n' "$REDIS_PORT"; cat "$OUT/limits.toml"; } > "$OUT/redis.toml"
read -r GW_PLAIN KEY_PLAIN < <(start_gateway plain)
read -r GW_LIMITS KEY_LIMITS < <(start_gateway limits "$OUT/limits.toml")
read -r GW_REDIS KEY_REDIS < <(start_gateway redis "$OUT/redis.toml")
TARGETS="plain limits redis"
url() { case "$1" in plain) echo "$GW_PLAIN" ;; limits) echo "$GW_LIMITS" ;; redis) echo "$GW_REDIS" ;; esac; }
key() { case "$1" in plain) echo "$KEY_PLAIN" ;; limits) echo "$KEY_LIMITS" ;; redis) echo "$KEY_REDIS" ;; esac; }
BODY='{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}'
MODEL='anthropic.claude-3-haiku-20240307-v1:0'
load() { # load TARGET ARGS...
  local t="$1"; shift
  "$REL/examples/loadgen" "$(url "$t")/model/$MODEL/invoke" --header "authorization: Bearer $(key "$t")" --body "$BODY" "$@"
}
RESULTS="$OUT/results.jsonl"; : > "$RESULTS"
for t in $TARGETS; do load "$t" --rate 200 --seconds 3 > /dev/null; done
for round in $(seq "$ROUNDS"); do
  for t in $TARGETS; do
    r=$(load "$t" --rate "$RATE" --seconds "$SECONDS_EACH")
    echo "round $round, $t at $RATE/s: $r" >&2
    echo "{\"round\":$round,\"target\":\"$t\",\"r\":$r}" >> "$RESULTS"
    sleep 3
  done
done
# `me` as a status line runs it: the whole command, 30 times, against the gateway with limits.
python3 - "$REL/bedrock-usage" "$GW_LIMITS" "$KEY_LIMITS" >> "$RESULTS" <<'PY'
import json, os, subprocess, sys, time
exe, gw, key = sys.argv[1:]
env = dict(os.environ, BEDROCK_USAGE_KEY=key)
times = []
for _ in range(30):
    t = time.perf_counter()
    subprocess.run([exe, "me", "--gateway", gw], env=env, check=True, capture_output=True)
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(json.dumps({"me_ms": {"p50": times[15], "max": times[-1]}}))
PY
echo "refusals (want 0): $(cat "$OUT/limits.err" "$OUT/redis.err" | grep -c 'Refused' || true)" >&2
python3 - "$RESULTS" "$RATE" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
me = [r["me_ms"] for r in rows if "me_ms" in r]
rows = [r for r in rows if "target" in r]
ms = lambda us: f"{us / 1000:.3f}"
print(f"| InvokeModel at {sys.argv[2]}/s | round | p50 ms | p99 ms | p99.9 ms | answered |")
print("|---|---:|---:|---:|---:|---:|")
for r in rows:
    l = r["r"]["latency_us"]
    print(f"| {r['target']} | {r['round']} | {ms(l['p50'])} | {ms(l['p99'])} | {ms(l['p999'])} | {r['r']['ok']}/{r['r']['sent']} |")
med = lambda t, p: statistics.median(r["r"]["latency_us"][p] for r in rows if r["target"] == t)
print()
print("| admission added (median of rounds) | p50 ms | p99 ms | p99.9 ms |")
print("|---|---:|---:|---:|")
for t, what in (("limits", "in-process"), ("redis", "Redis on loopback")):
    print(f"| {what} vs no limits | {ms(med(t,'p50') - med('plain','p50'))} | {ms(med(t,'p99') - med('plain','p99'))} | {ms(med(t,'p999') - med('plain','p999'))} |")
for m in me:
    print(f"\n`bedrock-usage me`, the whole command (process start, GET /me, the line), 30 runs: median {m['p50']:.1f} ms, slowest {m['max']:.1f} ms.")
PY
