#!/usr/bin/env bash
# Query benchmark: `bedrock-usage query` against DuckDB running the equivalent SQL, in one run.
#
#   bench/query.sh [RECORDS] [N]     # default 18000 records of files (~1.1 GB), N = 10000000 stored
#
# Over files: the corpus of bench/ingest.sh (written here if missing), plain and gzip; the query
# `stats sum(input.inputTokenCount), sum(output.outputTokenCount) by identity.arn, modelId`
# against DuckDB's read_json + GROUP BY identity.arn, modelId (2 threads); sums are checked equal.
# Over the store: the store of bench/report.sh (filled if missing), the same stats (answered from
# rollups) and a query that must read every invocation. Medians of three runs.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-18000}"
N="${2:-10000000}"
OUT="${BENCH_DIR:-bench/out}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bedrock-usage/target}"
# shellcheck source=bench/common.sh
. bench/common.sh
cargo build --release -q -p bedrock-usage --bin bedrock-usage --example fill_store
python3 -c 'import duckdb' 2>/dev/null || pip install -q duckdb
mkdir -p "$OUT"
ensure_corpus "$RECORDS"
ensure_store "$N"
Q='stats sum(input.inputTokenCount) as input, sum(output.outputTokenCount) as output by identity.arn, modelId'
cat > "$OUT/duck_query.py" <<'PY'
import duckdb, json, sys
con = duckdb.connect()
con.execute("SET threads TO 2")
rows = con.execute(f"""
SELECT identity.arn, modelId, sum(input.inputTokenCount), sum(output.outputTokenCount)
FROM read_json('{sys.argv[1]}', format='newline_delimited', maximum_object_size=67108864,
  columns={{identity: 'STRUCT(arn VARCHAR)', modelId: 'VARCHAR', input: 'STRUCT(inputTokenCount BIGINT)',
            output: 'STRUCT(outputTokenCount BIGINT)'}})
GROUP BY ALL""").fetchall()
print(json.dumps({"groups": len(rows), "input": sum(r[2] for r in rows), "output": sum(r[3] for r in rows)}))
PY
time3() {  # time3 NAME COMMAND...: median wall seconds of three runs; keeps the last stdout
  local name="$1"; shift
  local t
  t=$(for _ in 1 2 3; do /usr/bin/time -f "%e" -o "$OUT/t.txt" "$@" > "$OUT/$name.out" 2> /dev/null; cat "$OUT/t.txt"; done | median)
  echo "$t"
}
PLAIN="$OUT/plain/AWSLogs/*/BedrockModelInvocationLogs/*/*/*/*/*/*.json"
GZIP="$OUT/gzip/AWSLogs/*/BedrockModelInvocationLogs/*/*/*/*/*/*.json.gz"
# shellcheck disable=SC2086
BYTES=$(cat $PLAIN | wc -c)
# shellcheck disable=SC2086
cat $PLAIN $GZIP > /dev/null
bu_plain=$(time3 bu-plain "$BIN" --format json query --from "$OUT/plain/AWSLogs" "$Q")
duck_plain=$(time3 duck-plain python3 "$OUT/duck_query.py" "$PLAIN")
bu_gzip=$(time3 bu-gzip "$BIN" --format json query --from "$OUT/gzip/AWSLogs" "$Q")
duck_gzip=$(time3 duck-gzip python3 "$OUT/duck_query.py" "$GZIP")
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
bu = json.load(open(f"{out}/bu-plain.out"))
mine = {"groups": len(bu), "input": sum(r.get("input", 0) for r in bu), "output": sum(r.get("output", 0) for r in bu)}
duck = json.loads(open(f"{out}/duck-plain.out").read().strip())
print("sums agree" if mine == duck else f"SUMS DIFFER: {mine} vs {duck}", file=sys.stderr)
sys.exit(0 if mine == duck else 1)
PY
st_rollup=$(time3 st-rollup "$BIN" --db "$DB" query "$Q")
st_rows=$(time3 st-rows "$BIN" --db "$DB" query 'filter requestMetadata.container like "carol" | stats count(*) as n, max(output.outputTokenCount) as m')
awk -v b="$BYTES" -v bp="$bu_plain" -v dp="$duck_plain" -v bg="$bu_gzip" -v dg="$duck_gzip" -v sr="$st_rollup" -v rw="$st_rows" -v n="$N" 'BEGIN {
  printf "| query | input | bedrock-usage s | DuckDB s | MB/s of JSON (ours) | vs DuckDB |\n|---|---|---:|---:|---:|---:|\n";
  printf "| stats sum by identity.arn, modelId | files, plain | %.2f | %.2f | %.0f | %.1fx |\n", bp, dp, b / 1e6 / bp, dp / bp;
  printf "| stats sum by identity.arn, modelId | files, gzip | %.2f | %.2f | %.0f | %.1fx |\n", bg, dg, b / 1e6 / bg, dg / bg;
  printf "\n| query over the store (%d invocations) | seconds |\n|---|---:|\n", n;
  printf "| stats sum by identity.arn, modelId (from rollups) | %.2f |\n", sr;
  printf "| filter requestMetadata.container like \"carol\" \\| stats count(*), max(...) (every invocation read) | %.2f |\n", rw;
}'
echo; bash bench/store_query.sh "$N"
