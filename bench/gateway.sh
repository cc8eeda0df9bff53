#!/usr/bin/env bash
# Gateway benchmark: the same fixed-rate load straight to a mock Bedrock, through bedrock-usage's
# gateway, and through LiteLLM's proxy (PyPI `litellm[proxy]`, its /bedrock pass-through, pointed
# at the same mock), in one run.
#
#   bench/gateway.sh       # RATES="50 1000" SECONDS_EACH=10 MAX_RATES="25 50 ... 4000 8000"
#
# - The mock is the tests' (examples/mock_bedrock: real event-stream framing; InvokeModel answers
#   at once, a stream sends its 6 frames 2 ms apart; it writes an invocation-log line per call).
# - The load is open-loop (examples/loadgen): request i is due at start + i / RATE and is measured
#   from that moment, so a server that falls behind is charged for its queue.
# - Peak RSS with 1,000 open streams, first, on servers that have only been warmed up: 1,000
#   streams at once of a slow model (6 frames 300 ms apart), the server's resident memory sampled
#   every 20 ms (LiteLLM: its process tree); and the RSS left after the overload runs, at the end.
# - The highest rate held: each of MAX_RATES for 5 s, InvokeModel, until one is not held (not every
#   request answered 200, under 98% of the rate achieved, or p99 above 100 ms).
# - For InvokeModel and InvokeModelWithResponseStream, at each of RATES the target held: p50 / p99
#   / p99.9 of the latency (to the end of the body) and of the time to first byte, for
#   SECONDS_EACH after a warm-up; the added latency is the target's percentile minus the direct
#   one at the same rate.
# Everything runs on this machine: the load generator, the mock and the server share its cores.
# Prints a Markdown table for docs/benchmarks.md. BENCH_DIR puts the files elsewhere (default
# bench/out); SKIP_LITELLM=1 leaves LiteLLM out.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${BENCH_DIR:-bench/out}/gateway"
RATES="${RATES:-50 1000}"
SECONDS_EACH="${SECONDS_EACH:-10}"
MAX_RATES="${MAX_RATES:-25 50 100 200 500 1000 2000 4000 8000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bedrock-usage/target}"
REL="$CARGO_TARGET_DIR/release"
VENV="$HOME/.cache/bedrock-usage/litellm-venv"

cargo build --release -q -p bedrock-usage --bin bedrock-usage --example mock_bedrock --example loadgen
if [ -z "${SKIP_LITELLM:-}" ] && [ ! -x "$VENV/bin/litellm" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'litellm[proxy]'
fi

rm -rf "$OUT"; mkdir -p "$OUT"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
. bench/lib.sh

# The mock.
"$REL/examples/mock_bedrock" "$OUT/mock-log.jsonl" > "$OUT/mock.out" 2> "$OUT/mock.err" &
MOCK_PID=$!; PIDS+=("$MOCK_PID")
MOCK=$(wait_for "$OUT/mock.out" 'http://[0-9.:]*')

# The gateway, with one key.
export AWS_ACCESS_KEY_ID=AKIDGATEWAYTEST AWS_SECRET_ACCESS_KEY=gateway-test-secret
export AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_STS=http://127.0.0.1:9
unset AWS_PROFILE AWS_SESSION_TOKEN
KEY=$("$REL/bedrock-usage" --db "$OUT/gateway.db" --format json keys create --developer bench \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
"$REL/bedrock-usage" --db "$OUT/gateway.db" gateway --listen 127.0.0.1:0 --upstream "$MOCK" \
  --region us-east-1 2> "$OUT/gateway.err" &
GW_PID=$!; PIDS+=("$GW_PID")
GW=$(wait_for "$OUT/gateway.err" 'listening on http://[0-9.:]*' | sed 's/listening on //')

# LiteLLM's proxy: the two models as router models whose api_base is the mock.
if [ -z "${SKIP_LITELLM:-}" ]; then
  LL_PORT=$(free_port)
  {
    echo "model_list:"
    for m in anthropic.claude-3-haiku-20240307-v1:0 anthropic.claude-3-haiku-20240307-v1:0-slow; do
      cat <<EOF
  - model_name: $m
    litellm_params:
      model: bedrock/$m
      api_base: $MOCK
      aws_access_key_id: AKIDGATEWAYTEST
      aws_secret_access_key: gateway-test-secret
      aws_region_name: us-east-1
EOF
    done
    printf 'general_settings:\n  master_key: sk-bench\nlitellm_settings:\n  telemetry: false\n'
  } > "$OUT/litellm.yaml"
  LITELLM_LOCAL_MODEL_COST_MAP=True "$VENV/bin/litellm" --config "$OUT/litellm.yaml" \
    --host 127.0.0.1 --port "$LL_PORT" > "$OUT/litellm.log" 2>&1 &
  LL_PID=$!; PIDS+=("$LL_PID")
  wait_for "$OUT/litellm.log" 'Uvicorn running' > /dev/null
  LL="http://127.0.0.1:$LL_PORT/bedrock"
fi

BODY='{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}'
MODEL='anthropic.claude-3-haiku-20240307-v1:0'
TARGETS="direct gateway"
[ -z "${SKIP_LITELLM:-}" ] && TARGETS="$TARGETS litellm"
base() { case "$1" in direct) echo "$MOCK" ;; gateway) echo "$GW" ;; litellm) echo "$LL" ;; esac; }
auth() { case "$1" in direct) echo "x-bench: direct" ;; gateway) echo "authorization: Bearer $KEY" ;; litellm) echo "authorization: Bearer sk-bench" ;; esac; }
load() { # load TARGET ACTION MODEL ARGS...: one loadgen run, its JSON on stdout
  local t="$1" action="$2" model="$3"; shift 3
  "$REL/examples/loadgen" "$(base "$t")/model/$model/$action" --header "$(auth "$t")" --body "$BODY" "$@"
}
rss_kb() { # the resident memory of a process and its children, in KiB
  local all; all=$(pgrep -P "$1" | tr '\n' ' ')
  # shellcheck disable=SC2086
  ps -o rss= -p "$1" $all | awk '{s += $1} END {print s + 0}'
}
pid_of() { case "$1" in gateway) echo "$GW_PID" ;; litellm) echo "$LL_PID" ;; direct) echo "$MOCK_PID" ;; esac; }

RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
# Every server warmed up first (LiteLLM's first calls take seconds).
for t in $TARGETS; do load "$t" invoke "$MODEL" --rate 10 --seconds 10 > /dev/null; done

for t in $TARGETS; do
  pid=$(pid_of "$t")
  idle=$(rss_kb "$pid")
  load "$t" invoke-with-response-stream "$MODEL-slow" --open 1000 > "$OUT/open-$t.json" &
  lg=$!
  peak=$idle
  while kill -0 "$lg" 2>/dev/null; do
    now=$(rss_kb "$pid"); [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.02
  done
  wait "$lg"
  echo "1000 open streams, $t: idle ${idle} KiB, peak ${peak} KiB: $(cat "$OUT/open-$t.json")" >&2
  echo "{\"kind\":\"rss\",\"target\":\"$t\",\"idle_kb\":$idle,\"peak_kb\":$peak,\"r\":$(cat "$OUT/open-$t.json")}" >> "$RESULTS"
done

for rate in $RATES; do
  for action in invoke invoke-with-response-stream; do
    for t in $TARGETS; do
      # A 2-second probe at the rate first (and a warm-up): a server that cannot hold it
      # would only build a queue for minutes.
      if ! load "$t" "$action" "$MODEL" --rate "$rate" --seconds 2 | held; then
        echo "$action $t at $rate/s: skipped, not held for 2 s" >&2
        echo "{\"kind\":\"not-held\",\"action\":\"$action\",\"target\":\"$t\",\"rate\":$rate}" >> "$RESULTS"
        sleep 5
        continue
      fi
      r=$(load "$t" "$action" "$MODEL" --rate "$rate" --seconds "$SECONDS_EACH")
      echo "$action $t at $rate/s: $r" >&2
      echo "{\"kind\":\"latency\",\"action\":\"$action\",\"target\":\"$t\",\"rate\":$rate,\"r\":$r}" >> "$RESULTS"
      sleep 5 # let the server finish what it does after answering (LiteLLM's logging, the gateway's writes)
    done
  done
done

for t in $TARGETS; do
  best=0
  for rate in $MAX_RATES; do
    r=$(load "$t" invoke "$MODEL" --rate "$rate" --seconds 5)
    echo "max rate, $t at $rate/s: $r" >&2
    echo "$r" | held || break
    best=$rate
  done
  echo "{\"kind\":\"max\",\"target\":\"$t\",\"held\":$best}" >> "$RESULTS"
done

# What each server keeps after the overload of the highest rates.
for t in $TARGETS; do
  echo "{\"kind\":\"after\",\"target\":\"$t\",\"kb\":$(rss_kb "$(pid_of "$t")")}" >> "$RESULTS"
done

# A clean stop: the gateway says how many calls it recorded.
kill -TERM "$GW_PID"; wait "$GW_PID" || true
grep -o '[0-9]* call(s) recorded' "$OUT/gateway.err" >&2

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ms = lambda us: f"{us / 1000:.2f}"
lat = {(r["rate"], r["action"], r["target"]): r["r"] for r in rows if r["kind"] == "latency"}
print(f"| operation | target | p50 ms | p99 ms | p99.9 ms | added p50 | added p99 | added p99.9 | TTFB p50 | TTFB p99 | answered |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (rate, action, target), r in lat.items():
    d = lat[(rate, action, "direct")]
    l, dl = r["latency_us"], d["latency_us"]
    added = lambda p: "-" if target == "direct" else ms(l[p] - dl[p])
    op = "InvokeModel" if action == "invoke" else "InvokeModelWithResponseStream"
    print(f"| {op} at {rate}/s | {target} | {ms(l['p50'])} | {ms(l['p99'])} | {ms(l['p999'])} | {added('p50')} | {added('p99')} | {added('p999')} | {ms(r['ttfb_us']['p50'])} | {ms(r['ttfb_us']['p99'])} | {r['ok']}/{r['sent']} |")
print()
print("| target | highest InvokeModel rate held | RSS idle MB | peak RSS, 1,000 open streams MB | streams answered | RSS after the overload MB |")
print("|---|---:|---:|---:|---:|---:|")
mx = {r["target"]: r["held"] for r in rows if r["kind"] == "max"}
after = {r["target"]: r["kb"] for r in rows if r["kind"] == "after"}
for r in rows:
    if r["kind"] == "rss":
        t = r["target"]
        print(f"| {t} | {mx.get(t, 0)}/s | {r['idle_kb'] / 1024:.0f} | {r['peak_kb'] / 1024:.0f} | {r['r']['ok']}/{r['r']['sent']} | {after.get(t, 0) / 1024:.0f} |")
for r in rows:
    if r["kind"] == "not-held":
        print(f"\n{r['target']} did not hold {r['action']} at {r['rate']}/s for 2 s (not measured there).")
PY
