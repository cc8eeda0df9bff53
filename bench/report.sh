#!/usr/bin/env bash
# Report benchmark: `report` over 10 million stored invocations, against the same sums computed
# by one SQL GROUP BY over the invocation rows (what a report without rollups would do).
#
#   bench/report.sh [N]          # default 10000000 invocations
#
# Fills BENCH_DIR/report-N.db once (examples/fill_store: the demo team's month, straight through
# the store's write path), then times each report three times (process start to exit) and
# prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000000}"
OUT="${BENCH_DIR:-bench/out}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bedrock-usage/target}"
# shellcheck source=bench/common.sh
. bench/common.sh
cargo build --release -q -p bedrock-usage --bin bedrock-usage --example fill_store
mkdir -p "$OUT"
ensure_store "$N"
CONFIG="$OUT/report-config.toml"
cat > "$CONFIG" <<'TOML'
[aliases]
"bob@example.com" = "bob"
"dave@example.com" = "dave"
"i-0fedcba9876543210" = "heidi"
[developers.alice]
team = "platform"
[developers.bob]
team = "platform"
[developers.carol]
team = "payments"
TOML

time_it() {  # time_it LABEL COMMAND...: median of three runs
  local label="$1"; shift
  local t
  t=$(for _ in 1 2 3; do
        /usr/bin/time -f "%e" -o "$OUT/t.txt" "$@" > "$OUT/last.out" 2> /dev/null
        cat "$OUT/t.txt"
      done | median)
  echo "| $label | $t |"
}
ROWS=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from invocation').fetchone()[0])" "$DB")
echo "Store: $ROWS invocations, $(du -m "$DB" | cut -f1) MB."
echo
echo "| query | seconds (median of 3) |"
echo "|---|---:|"
time_it '`report --by developer`' "$BIN" --db "$DB" --config "$CONFIG" report --by developer
time_it '`report --by developer,model,day`' "$BIN" --db "$DB" --config "$CONFIG" report --by developer,model,day
time_it '`report --by team,model --since 2026-11-10T13:07:00Z --until 2026-11-20T09:00:00Z`' "$BIN" --db "$DB" --config "$CONFIG" report --by team,model --since 2026-11-10T13:07:00Z --until 2026-11-20T09:00:00Z
time_it '`report --by day --tz America/New_York`' "$BIN" --db "$DB" --config "$CONFIG" report --by day --tz America/New_York
time_it 'SQL `GROUP BY` principal, signal, model over the invocation rows (peer)' python3 -c "
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rows = c.execute('''SELECT identity_id, model_ref, count(*), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
  sum(cache_write_5m_tokens), sum(cache_write_1h_tokens) FROM invocation GROUP BY identity_id, model_ref''').fetchall()
print(len(rows))" "$DB"
