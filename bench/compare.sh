#!/usr/bin/env bash
# Two builds of bedrock-usage side by side, in one run: is the new one slower anywhere?
#
#   bench/compare.sh OLD_BIN [NEW_BIN] [RECORDS] [STORED]
#
# OLD_BIN is a release binary of the build to compare against (say, built from a worktree of an
# earlier commit); NEW_BIN defaults to this tree's release build. RECORDS (default 18000) is the
# corpus of bench/ingest.sh (bodies of 5-100 KB, S3 layout, plain and gzip); STORED (default
# 2000000) the store of fill_store that the store queries read. Runs alternate old, new, old,
# new, ... (three of each) so that drift of the machine hits both; each figure is a median.
# Times ingest (plain, gzip, slim records), query --from (plain, gzip) and query over the store
# (from rollups, and one that reads every invocation), checks both builds give the same output,
# and prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD="${1:?usage: bench/compare.sh OLD_BIN [NEW_BIN] [RECORDS] [STORED]}"
RECORDS="${3:-18000}"
STORED="${4:-2000000}"
OUT="${BENCH_DIR:-bench/out}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bedrock-usage/target}"
# shellcheck source=bench/common.sh
. bench/common.sh
if [ -n "${2:-}" ]; then
  NEW="$2"
else
  cargo build --release -q -p bedrock-usage --bin bedrock-usage --example fill_store
  mkdir -p "$OUT"
  cp "$BIN" "$OUT/bedrock-usage-new"
  NEW="$OUT/bedrock-usage-new"
fi
[ -x "$CARGO_TARGET_DIR/release/examples/fill_store" ] \
  || cargo build --release -q -p bedrock-usage --example fill_store
mkdir -p "$OUT"
ensure_corpus "$RECORDS"
ensure_store "$STORED"
# A store the previous build can read: if it refuses this one (a newer schema), a copy without
# the tables of the migrations it does not know (4: iam_tags).
DB_OLD="$DB"
if ! "$OLD" --db "$DB" --format csv report --by developer > /dev/null 2>&1; then
  DB_OLD="$DB.prev"
  if [ ! -f "$DB_OLD" ]; then
    cp "$DB" "$DB_OLD"
    python3 - "$DB_OLD" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
if c.execute("PRAGMA user_version").fetchone()[0] >= 4:
    c.execute("DROP TABLE IF EXISTS iam_tags")
    c.execute("PRAGMA user_version = 3")
c.commit()
PY
  fi
fi
# Slim records (no bodies: what Bedrock writes with text delivery off, ~650 bytes each), one
# large file: the per-record cost of ingest.
SLIM="$OUT/slim.jsonl"
if [ ! -f "$SLIM" ]; then
  rm -rf "$OUT/slim"
  "$NEW" demo --write "$OUT/slim" --records 200000 --compress none --body-kb 0-0 --seed 2 > /dev/null
  find "$OUT/slim/AWSLogs" -path '*/data' -prune -o -name '*.json' -print0 | sort -z | xargs -0 cat \
    | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    for side, key in (("input", "inputBodyJson"), ("output", "outputBodyJson")):
        r.get(side, {}).pop(key, None)
        r.get(side, {}).pop(key.replace("Json", "S3Path"), None)
    sys.stdout.write(json.dumps(r, separators=(",", ":")) + "\n")
' > "$SLIM.tmp"
  mv "$SLIM.tmp" "$SLIM"
  rm -rf "$OUT/slim"
fi
PLAIN="$OUT/plain/AWSLogs"
GZIP="$OUT/gzip/AWSLogs"
BYTES=$(find "$PLAIN" -path '*/data' -prune -o -name '*.json' -print0 | xargs -0 cat | wc -c)
SLIM_BYTES=$(wc -c < "$SLIM")
find "$PLAIN" "$GZIP" -type f -print0 | xargs -0 cat > /dev/null   # warm the page cache
cat "$SLIM" "$DB" "$DB_OLD" > /dev/null
Q='stats sum(input.inputTokenCount) as input, sum(output.outputTokenCount) as output by identity.arn, modelId'
SCAN='filter ispresent(errorCode) | stats count(*) as n by errorCode'

RESULTS="$OUT/compare.tsv"
: > "$RESULTS"
# case NAME COMMAND-WITH-@BIN@...: three runs of each build, alternating; a fresh store each
# time for ingest cases (@DB@).
case_() {
  local name="$1"; shift
  local which bin t
  for _ in 1 2 3; do
    for which in old new; do
      bin="$OLD"; [ "$which" = new ] && bin="$NEW"
      rm -f "$OUT/cmp.db" "$OUT/cmp.db-wal" "$OUT/cmp.db-shm"
      local args=()
      local store="$DB"; [ "$which" = old ] && store="$DB_OLD"
      for a in "$@"; do a="${a//@BIN@/$bin}"; a="${a//@STORE@/$store}"; args+=("${a//@DB@/$OUT/cmp.db}"); done
      /usr/bin/time -f "%e %M" -o "$OUT/t.txt" "${args[@]}" > "$OUT/cmp-$name-$which.out" 2> "$OUT/cmp-$name-$which.err" \
        || { cat "$OUT/cmp-$name-$which.err" >&2; exit 1; }
      read -r t _ < "$OUT/t.txt"
      printf '%s\t%s\t%s\n' "$name" "$which" "$t" >> "$RESULTS"
    done
  done
  # Ingest summaries carry timings; compare what was stored instead (the report).
  if ! cmp -s "$OUT/cmp-$name-old.out" "$OUT/cmp-$name-new.out"; then
    case "$name" in ingest-*) ;; *) echo "OUTPUT DIFFERS for $name" >&2; exit 1 ;; esac
  fi
  echo "$name done" >&2
}
ingest_case() {  # ingest_case NAME PATH: ingest into a fresh store, then report, both builds
  case_ "$1" sh -c "'@BIN@' --db '@DB@' ingest --no-progress '$2' > /dev/null && '@BIN@' --db '@DB@' --format csv report --by developer,model"
}
ingest_case ingest-plain "$PLAIN"
ingest_case ingest-gzip "$GZIP"
ingest_case ingest-slim "$SLIM"
case_ query-files-plain @BIN@ --format json query --from "$PLAIN" "$Q"
case_ query-files-gzip @BIN@ --format json query --from "$GZIP" "$Q"
case_ query-store-rollups @BIN@ --db @STORE@ --format json query "$Q"
case_ query-store-scan @BIN@ --db @STORE@ --format json query "$SCAN"

python3 - "$RESULTS" "$BYTES" "$SLIM_BYTES" "$STORED" "$RECORDS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
b, slim, stored, records = (int(a) for a in sys.argv[2:6])
size = {"ingest-plain": b, "ingest-slim": slim, "query-files-plain": b}
count = {"ingest-plain": records, "ingest-gzip": records, "ingest-slim": 200000,
         "query-files-plain": records, "query-files-gzip": records, "query-store-scan": stored}
names = list(dict.fromkeys(r[0] for r in rows))
print("| case | previous build s | this build s | this / previous | this build MB/s | this build records/s |")
print("|---|---:|---:|---:|---:|---:|")
for n in names:
    t = {w: statistics.median(float(r[2]) for r in rows if r[0] == n and r[1] == w) for w in ("old", "new")}
    new = max(t["new"], 0.005)
    mbps = f"{size[n] / 1e6 / new:,.0f}" if n in size else "-"
    rps = f"{count[n] / new:,.0f}" if n in count else "-"
    print(f"| {n} | {t['old']:.2f} | {t['new']:.2f} | {t['new'] / max(t['old'], 0.005):.2f} | {mbps} | {rps} |")
print(f"\nIngest cases include a report of what was stored (compared equal); store queries read {stored:,} invocations.")
PY
