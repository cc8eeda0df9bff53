#!/usr/bin/env bash
# Serve benchmark: over the 10-million-invocation store of bench/report.sh, `serve`'s
# /api/v1/report and /api/v1/timeseries with 50 concurrent clients (closed loop: each client
# sends its next request when its last is answered), p50/p99/max, twice: as configured by
# default (answers kept while the store is unchanged, `[serve] cache_seconds = 5`) and with
# `cache_seconds = 0` (every answer computed from the rollups). Beside each, the peer: the same
# figures from the command line (`report --format json`, process start to exit, median of
# three), which is what a script or a cron job does today. Then the dashboard's first load in
# headless Chromium (navigation start to every figure drawn, as the page itself measures it),
# over a fresh browser session each time.
#
#   bench/serve.sh [N]        # default 10000000 invocations; CLIENTS=50 SECONDS_EACH=10
#
# Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000000}"
OUT="${BENCH_DIR:-bench/out}"
CLIENTS="${CLIENTS:-50}"
SECONDS_EACH="${SECONDS_EACH:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bedrock-usage/target}"
# shellcheck source=bench/common.sh
. bench/common.sh
. bench/lib.sh
cargo build --release -q -p bedrock-usage --bin bedrock-usage --example fill_store --example loadgen
mkdir -p "$OUT"
ensure_store "$N"
CONFIG="$OUT/serve-config.toml"
cat > "$CONFIG" <<'TOML'
[developers.alice]
team = "platform"
[developers.bob]
team = "platform"
[developers.carol]
team = "payments"
[[budgets]]
name = "per-person"
each_developer = true
period = "month"
amount = "5000"
TOML

{ cat "$CONFIG"; printf '[serve]\ncache_seconds = 0\n'; } > "$OUT/serve-nocache.toml"

PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
start_serve() {  # start_serve CONFIG NAME: sets URL to the server's
  local port; port=$(free_port)
  "$BIN" --db "$DB" --config "$1" serve --listen "127.0.0.1:$port" > /dev/null 2> "$OUT/serve-$2.err" &
  PIDS+=("$!")
  wait_for "$OUT/serve-$2.err" 'listening' > /dev/null
  URL="http://127.0.0.1:$port"
}
start_serve "$CONFIG" kept; BASE="$URL"
start_serve "$OUT/serve-nocache.toml" computed; NOCACHE="$URL"
ROWS=$(curl -s "$BASE/api/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["store"]["invocations"])')
echo "Store: $ROWS invocations, $(du -m "$DB" | cut -f1) MB; $CLIENTS clients for $SECONDS_EACH s per endpoint and server."
echo
echo "| request | kept: answers/s | p50 ms | p99 ms | max ms | computed: answers/s | p50 ms | p99 ms | max ms | peer: the CLI, s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

cli_seconds() {  # the same report from the command line
  for _ in 1 2 3; do
    /usr/bin/time -f "%e" -o "$OUT/t.txt" "$BIN" --db "$DB" --config "$CONFIG" --format json report "$@" > /dev/null 2>&1
    cat "$OUT/t.txt"
  done | median
}

run() {  # run LABEL PATH CLI-ARGS...
  local label="$1" path="$2"; shift 2
  local kept computed
  kept=$("$CARGO_TARGET_DIR/release/examples/loadgen" "$BASE$path" --get --clients "$CLIENTS" --seconds "$SECONDS_EACH")
  computed=$("$CARGO_TARGET_DIR/release/examples/loadgen" "$NOCACHE$path" --get --clients "$CLIENTS" --seconds "$SECONDS_EACH")
  local peer; peer=$(cli_seconds "$@")
  python3 - "$label" "$peer" "$kept" "$computed" <<'PY'
import json, sys
label, peer = sys.argv[1], sys.argv[2]
cells = []
for r in map(json.loads, sys.argv[3:5]):
    assert r["failed"] == 0, r
    assert len(r["body_lengths"]) == 1, r  # every answer the same
    l = r["latency_us"]
    cells += [f"{r['achieved_rps']:.0f}", f"{l['p50']/1000:.1f}", f"{l['p99']/1000:.1f}", f"{l['max']/1000:.1f}"]
print(f"| {label} | " + " | ".join(cells) + f" | {peer} |")
PY
}

run '`report?by=developer` (the month)' '/api/v1/report?by=developer' --by developer
run '`report?by=developer,model&since=2026-11-10&until=2026-11-20`' '/api/v1/report?by=developer,model&since=2026-11-10&until=2026-11-20' --by developer,model --since 2026-11-10 --until 2026-11-20
run '`timeseries?bin=day&by=developer`' '/api/v1/timeseries?bin=day&by=developer' --by day,developer
run '`timeseries?bin=day&by=model&tz=America/New_York`' '/api/v1/timeseries?bin=day&by=model&tz=America/New_York' --by day,model --tz America/New_York
run '`timeseries?bin=hour&by=model` (a month of hours)' '/api/v1/timeseries?bin=hour&by=model' --by hour,model

# The dashboard's first load: a new Chromium session each time (nothing cached), navigation
# start to every figure drawn (the page's own performance.now() when it has drawn the last).
DPORT=$(free_port)
chromedriver --port="$DPORT" > /dev/null 2>&1 &
PIDS+=("$!")
python3 - "$DPORT" "$BASE" "$NOCACHE" <<'PY'
import json, sys, time, urllib.request
port = sys.argv[1]
def call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))["value"]
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1); break
    except Exception:
        time.sleep(0.1)
caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
    "binary": "/usr/bin/chromium",
    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1500"]}}}}
def first_loads(base):
  loads, walls = [], []
  for i in range(6):
      sid = call("POST", "/session", caps)["sessionId"]
      t0 = time.monotonic()
      call("POST", f"/session/{sid}/url", {"url": base + "/"})
      while True:
          v = call("POST", f"/session/{sid}/execute/sync", {"script": "return document.body.dataset.loaded === 'yes' ? document.body.dataset.loadedMs : null", "args": []})
          if v is not None:
              break
          time.sleep(0.01)
      wall = time.monotonic() - t0
      if i > 0:  # the first warms the browser binary itself
          loads.append(int(v)); walls.append(wall * 1000)
      call("DELETE", f"/session/{sid}")
  loads.sort(); walls.sort()
  return loads, walls
print()
for name, base in [("kept answers", sys.argv[2]), ("every answer computed", sys.argv[3])]:
  loads, walls = first_loads(base)
  print(f"Dashboard first load ({name}), {len(loads)} fresh browser sessions, navigation start to every figure drawn: median {loads[len(loads)//2]} ms, slowest {loads[-1]} ms (WebDriver's navigate to drawn: median {walls[len(walls)//2]:.0f} ms).")
PY
