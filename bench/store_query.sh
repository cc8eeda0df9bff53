#!/usr/bin/env bash
# Store query benchmark (issue 15): queries over the 10-million store that the rollups cannot
# answer (each reads every stored call), from the store's column segments and row by row
# (`--no-columns`), against DuckDB running the same SQL over the Parquet export of the same rows
# (`export parquet`), in one run. Also times writing the segments and the export.
#
#   bench/store_query.sh [N]      # default 10000000; RUNS=3 (median of ours), DuckDB median of 3
#   ROWS=0 bench/store_query.sh   # without the row-by-row column (about 10 s a query)
#
# Prints a Markdown table for docs/benchmarks.md. bench/query.sh runs it at its end.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000000}"
OUT="${BENCH_DIR:-bench/out}"
RUNS="${RUNS:-3}"
ROWS="${ROWS:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bedrock-usage/target}"
# shellcheck source=bench/common.sh
. bench/common.sh
cargo build --release -q -p bedrock-usage --bin bedrock-usage --example fill_store
python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install -q duckdb
mkdir -p "$OUT"
ensure_store "$N"
PQ="$OUT/parquet-$N"
rm -rf "$DB.columns"
/usr/bin/time -f "%e %M" -o "$OUT/seal.t" "$BIN" --db "$DB" store columns > /dev/null 2> "$OUT/seal.err"
read -r SEAL_S SEAL_KB < "$OUT/seal.t"
echo "Column segments: written in ${SEAL_S} s (peak ${SEAL_KB} KB, $(awk -v n="$N" -v s="$SEAL_S" 'BEGIN { printf "%.0f", n / s }') calls/s), $(du -sm "$DB.columns" | cut -f1) MB."
/usr/bin/time -f "%e %M" -o "$OUT/export.t" "$BIN" --db "$DB" export parquet "$PQ" 2> "$OUT/export.err"
read -r EXPORT_S EXPORT_KB < "$OUT/export.t"
echo "Store: $N invocations; the Parquet export took ${EXPORT_S} s (peak ${EXPORT_KB} KB), $(du -sm "$PQ" | cut -f1) MB."
echo
echo "| query | bedrock-usage s | peak MB | row by row s | DuckDB over Parquet s | vs DuckDB |"
echo "|---|---:|---:|---:|---:|---:|"
cat > "$OUT/duck_store.py" <<'PY'
import duckdb, sys, time
glob, sql = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute(f"CREATE VIEW calls AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
times = []
for _ in range(3):
    t = time.monotonic()
    rows = con.execute(sql).fetchall()
    times.append(time.monotonic() - t)
times.sort()
print(f"{times[1]:.3f} {len(rows)}")
PY
run() {  # run LABEL QUERY SQL
  local label="$1" q="$2" sql="$3" times="" rows_s="-"
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -o "$OUT/q.t" "$BIN" --db "$DB" --format json query "$q" > "$OUT/q.out" 2> /dev/null
    read -r s kb < "$OUT/q.t"
    times="$times $s"; peak="$kb"
  done
  local best; best=$(echo $times | tr ' ' '\n' | median)
  if [ "$ROWS" = 1 ]; then
    /usr/bin/time -f "%e" -o "$OUT/r.t" "$BIN" --db "$DB" --format json query --no-columns "$q" > "$OUT/r.out" 2> /dev/null
    rows_s=$(cat "$OUT/r.t")
    cmp -s "$OUT/q.out" "$OUT/r.out" || echo "ANSWERS DIFFER for $label: columns and rows" >&2
  fi
  local ours_rows; ours_rows=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$OUT/q.out")
  read -r duck duck_rows < <(python3 "$OUT/duck_store.py" "$PQ/*/*.parquet" "$sql")
  [ "$ours_rows" = "$duck_rows" ] || echo "ROWS DIFFER for $label: $ours_rows vs $duck_rows" >&2
  awk -v l="$label" -v o="$best" -v m="$peak" -v r="$rows_s" -v d="$duck" 'BEGIN { v = o / d; printf "| %s | %.2f | %.0f | %s | %.3f | %s |\n", l, o, m / 1024, r, d, (v <= 1 ? sprintf("%.1fx faster", d / o) : sprintf("%.1fx slower", v)) }'
}
run '`filter requestMetadata.container like "carol" \\| stats count(*), max(output.outputTokenCount)`' \
  'filter requestMetadata.container like "carol" | stats count(*) as n, max(output.outputTokenCount) as m' \
  "SELECT count(*), max(output_tokens) FROM calls WHERE json_extract_string(request_metadata, '\$.container') LIKE '%carol%'"
run '`stats avg(output.outputTokenCount), pct(output.outputTokenCount, 99) by modelId`' \
  'stats avg(output.outputTokenCount) as a, pct(output.outputTokenCount, 99) as p by modelId' \
  "SELECT model_id, avg(output_tokens), quantile_cont(output_tokens, 0.99) FROM calls GROUP BY model_id"
run '`filter ispresent(errorCode) \\| stats count(*) by errorCode`' \
  'filter ispresent(errorCode) | stats count(*) as n by errorCode' \
  "SELECT error_code, count(*) FROM calls WHERE error_code IS NOT NULL GROUP BY error_code"
run '`fields @timestamp, requestId \\| sort @timestamp desc \\| limit 20`' \
  'fields @timestamp, requestId | sort @timestamp desc | limit 20' \
  "SELECT timestamp, request_id FROM calls ORDER BY timestamp DESC LIMIT 20"
run '`stats count(*) by developer` (from the rollups)' \
  'stats count(*) as n by developer' \
  "SELECT developer, count(*) FROM calls GROUP BY developer"
run '`stats count(*), max(input.inputTokenCount) by developer`' \
  'stats count(*) as n, max(input.inputTokenCount) as m by developer' \
  "SELECT developer, count(*), max(input_tokens) FROM calls GROUP BY developer"
