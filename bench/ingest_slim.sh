#!/usr/bin/env bash
# Slim-record ingest (issue 15): N records without bodies (what Bedrock writes when text
# delivery is off), about 650 bytes each, in ONE file, read as a new user would:
#   - bedrock-usage ingest into a fresh store (facts, rollups, and the column segments), and
#     the same with the segments' time apart (`store columns` after an ingest that left none);
#   - DuckDB (PyPI, 2 threads) loading the same file into a table of its own (read_json).
# Both count the records; per record and per byte, in one run.
#
#   bench/ingest_slim.sh [N]      # default 2000000
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-2000000}"
OUT="${BENCH_DIR:-bench/out}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bedrock-usage/target}"
# shellcheck source=bench/common.sh
. bench/common.sh
cargo build --release -q -p bedrock-usage --bin bedrock-usage
python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install -q duckdb
mkdir -p "$OUT"
FILE="$OUT/slim-$N.jsonl"
if [ ! -f "$FILE" ] || [ "$(wc -l < "$FILE")" != "$N" ]; then
  # 200,000 demo records with their bodies taken out (the demo always writes some body), then
  # copies with other request ids up to N: slim records of a real shape.
  BASE=$(( N < 200000 ? N : 200000 ))
  rm -rf "$OUT/slim-corpus"
  "$BIN" demo --write "$OUT/slim-corpus" --records "$BASE" --body-kb 0-0 --compress none --seed 5 > /dev/null
  find "$OUT/slim-corpus/AWSLogs" -path '*/data' -prune -o -name '*.json' -print0 | sort -z | xargs -0 cat \
    | python3 -c '
import json, sys
n = int(sys.argv[1])
base = []
for line in sys.stdin:
    r = json.loads(line)
    for side, key in (("input", "inputBodyJson"), ("output", "outputBodyJson")):
        r.get(side, {}).pop(key, None)
        r.get(side, {}).pop(key.replace("Json", "S3Path"), None)
    base.append(r)
out = sys.stdout
for k in range((n + len(base) - 1) // len(base)):
    for r in base[: n - k * len(base)]:
        # Every copy (the first too) ends its id with its number: ids stay distinct UUIDs.
        r = dict(r, requestId="%s%04x" % (r["requestId"][:-4], k))
        out.write(json.dumps(r, separators=(",", ":")) + "\n")
' "$N" > "$FILE.tmp"
  mv "$FILE.tmp" "$FILE"
  rm -rf "$OUT/slim-corpus"
fi
BYTES=$(stat -c %s "$FILE")
LINES=$(wc -l < "$FILE")
cat "$FILE" > /dev/null  # warm the page cache
DB="$OUT/slim.db"
rm -rf "$DB" "$DB"-* "$DB.columns"
/usr/bin/time -f "%e %M" -o "$OUT/slim.t" "$BIN" --db "$DB" ingest --no-progress "$FILE" > /dev/null 2> "$OUT/slim.err"
read -r OURS OURS_KB < "$OUT/slim.t"
STORED=$("$BIN" --db "$DB" --format json query 'stats count(*) as n' | python3 -c 'import json,sys; print(int(json.load(sys.stdin)[0]["n"]))')
rm -rf "$DB.columns"
/usr/bin/time -f "%e" -o "$OUT/seal.t" "$BIN" --db "$DB" store columns > /dev/null 2>&1
SEAL=$(cat "$OUT/seal.t")
cat > "$OUT/duck_slim.py" <<'PY'
import duckdb, sys, time
con = duckdb.connect()
con.execute("SET threads TO 2")
t = time.monotonic()
con.execute(f"CREATE TABLE calls AS SELECT * FROM read_json('{sys.argv[1]}', format = 'newline_delimited')")
n = con.execute("SELECT count(*) FROM calls").fetchone()[0]
print(f"{time.monotonic() - t:.2f} {n}")
PY
read -r DUCK DUCK_N < <(python3 "$OUT/duck_slim.py" "$FILE")
[ "$STORED" = "$LINES" ] || echo "bedrock-usage stored $STORED of $LINES records" >&2
[ "$DUCK_N" = "$LINES" ] || echo "DuckDB loaded $DUCK_N of $LINES records" >&2
echo "Slim records: $LINES in one file of $((BYTES / 1048576)) MB ($((BYTES / LINES)) bytes a record)."
echo
echo "| tool | s | records/s | MB/s | peak MB |"
echo "|---|---:|---:|---:|---:|"
awk -v s="$OURS" -v n="$LINES" -v b="$BYTES" -v kb="$OURS_KB" 'BEGIN { printf "| bedrock-usage ingest (facts, rollups, segments) | %.1f | %.0f | %.1f | %.0f |\n", s, n / s, b / s / 1048576, kb / 1024 }'
awk -v s="$SEAL" -v n="$LINES" 'BEGIN { printf "| of which the column segments (`store columns` alone) | %.1f | %.0f | | |\n", s, n / s }'
awk -v s="$DUCK" -v n="$LINES" -v b="$BYTES" 'BEGIN { printf "| DuckDB read_json into a table (2 threads) | %.2f | %.0f | %.1f | |\n", s, n / s, b / s / 1048576 }'
awk -v o="$OURS" -v d="$DUCK" 'BEGIN { printf "\nbedrock-usage takes %.1fx DuckDB'"'"'s time.\n", o / d }'
