#!/usr/bin/env bash
# Ingest benchmark: bedrock-usage against DuckDB and jq on the same files, in one run.
#
#   bench/ingest.sh [RECORDS]        # default 18000 records, about 1.1 GB of JSON lines
#
# Writes a corpus in the S3 delivery layout twice (plain JSON lines and gzip, same records, from
# `bedrock-usage demo --write`, bodies 5-100 KB), warms the page cache, then times:
#   - bedrock-usage ingest (fresh store) and report --by developer;
#   - DuckDB (PyPI `duckdb`, 2 threads) read_json + GROUP BY giving the same sums;
#   - jq, one pass, the same sums;
#   - the parser alone on one core, and decompression alone (zlib-rs, 1 and N threads).
# Checks that every tool found the same totals, then prints a Markdown table for
# docs/benchmarks.md. Set BENCH_DIR to put the corpora elsewhere (default bench/out).
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-18000}"
OUT="${BENCH_DIR:-bench/out}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bedrock-usage/target}"
# shellcheck source=bench/common.sh
. bench/common.sh

cargo build --release -q -p bedrock-usage --bin bedrock-usage --example inflate_speed
cargo build --release -q -p bedrock-usage-core --example parse_speed
python3 -c 'import duckdb' 2>/dev/null || pip install -q duckdb
command -v jq >/dev/null || { apt-get update -q && apt-get install -y -q jq; }

mkdir -p "$OUT"
ensure_corpus "$RECORDS"
# Record objects only (not the permission check, not data/ offloads): what each peer is given.
LOGS_GLOB_PLAIN="$OUT/plain/AWSLogs/*/BedrockModelInvocationLogs/*/*/*/*/*/*.json"
LOGS_GLOB_GZIP="$OUT/gzip/AWSLogs/*/BedrockModelInvocationLogs/*/*/*/*/*/*.json.gz"
# shellcheck disable=SC2086
BYTES=$(cat $LOGS_GLOB_PLAIN | wc -c)
# shellcheck disable=SC2086
GZ_BYTES=$(cat $LOGS_GLOB_GZIP | wc -c)

RESULTS="$OUT/results.tsv"
: > "$RESULTS"
# run NAME INPUT TIMES COMMAND...: time a command TIMES times (wall seconds, peak RSS); keep the
# median time, the largest RSS and the last stdout. `prepare` (if set) runs before each try.
run() {
  local name="$1" input="$2" times="$3"; shift 3
  local all=() rss=0
  for _ in $(seq "$times"); do
    [ -n "${prepare:-}" ] && eval "$prepare"
    /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err" || { cat "$OUT/$name.err" >&2; exit 1; }
    read -r s m < "$OUT/time.txt"
    all+=("$s"); [ "$m" -gt "$rss" ] && rss=$m
  done
  local secs
  secs=$(printf '%s\n' "${all[@]}" | median)
  printf '%s\t%s\t%s\t%s\n' "$name" "$input" "$secs" "$rss" >> "$RESULTS"
  echo "$name ($input): ${secs}s (median of ${all[*]}), peak RSS $((rss / 1024)) MB" >&2
}

# shellcheck disable=SC2086
cat $LOGS_GLOB_PLAIN $LOGS_GLOB_GZIP > /dev/null   # warm the page cache for everyone

cat > "$OUT/duck.py" <<'PY'
import duckdb, json, sys
con = duckdb.connect()
con.execute("SET threads TO 2")
rows = con.execute(f"""
SELECT coalesce(requestMetadata.developer, requestMetadata."user", identity.arn) AS who,
       count(*), sum(coalesce(input.inputTokenCount, 0)), sum(coalesce(output.outputTokenCount, 0)),
       sum(coalesce(input.cacheReadInputTokenCount, 0)), sum(coalesce(input.cacheWriteInputTokenCount, 0))
FROM read_json('{sys.argv[1]}', format='newline_delimited', maximum_object_size=67108864,
  columns={{identity: 'STRUCT(arn VARCHAR)', requestMetadata: 'STRUCT(developer VARCHAR, "user" VARCHAR)',
            input: 'STRUCT(inputTokenCount BIGINT, cacheReadInputTokenCount BIGINT, cacheWriteInputTokenCount BIGINT)',
            output: 'STRUCT(outputTokenCount BIGINT)'}})
GROUP BY ALL""").fetchall()
print(json.dumps({"calls": sum(r[1] for r in rows), "input": sum(r[2] for r in rows), "output": sum(r[3] for r in rows),
                  "cache_read": sum(r[4] for r in rows), "cache_write": sum(r[5] for r in rows)}))
PY
JQ_PROG='reduce inputs as $r ({calls: 0, input: 0, output: 0, cache_read: 0, cache_write: 0};
  .calls += 1 | .input += ($r.input.inputTokenCount // 0) | .output += ($r.output.outputTokenCount // 0)
  | .cache_read += ($r.input.cacheReadInputTokenCount // 0) | .cache_write += ($r.input.cacheWriteInputTokenCount // 0))'

# Each ingest starts from an empty store.
prepare='rm -rf "$OUT"/plain.db* "$OUT"/gzip.db*'
run bu-ingest plain 3 "$BIN" --db "$OUT/plain.db" --config "$OUT/plain/bedrock-usage.toml" ingest --no-progress "$OUT/plain/AWSLogs"
prepare=''
run bu-report plain 3 "$BIN" --db "$OUT/plain.db" --config "$OUT/plain/bedrock-usage.toml" --format csv report --by developer
run duckdb plain 3 python3 "$OUT/duck.py" "$LOGS_GLOB_PLAIN"
run jq plain 1 bash -c "cat $LOGS_GLOB_PLAIN | jq -n -c '$JQ_PROG'"
run parse-only plain 1 bash -c "\"$CARGO_TARGET_DIR/release/examples/parse_speed\" $LOGS_GLOB_PLAIN"
prepare='rm -rf "$OUT"/plain.db* "$OUT"/gzip.db*'
run bu-ingest gzip 3 "$BIN" --db "$OUT/gzip.db" --config "$OUT/gzip/bedrock-usage.toml" ingest --no-progress "$OUT/gzip/AWSLogs"
prepare=''
run duckdb gzip 3 python3 "$OUT/duck.py" "$LOGS_GLOB_GZIP"
run jq gzip 1 bash -c "zcat $LOGS_GLOB_GZIP | jq -n -c '$JQ_PROG'"
run inflate-only gzip 1 bash -c "\"$CARGO_TARGET_DIR/release/examples/inflate_speed\" $LOGS_GLOB_GZIP"

python3 - "$OUT" "$BYTES" "$GZ_BYTES" "$RECORDS" <<'PY'
import csv, json, os, platform, subprocess, sys
out, nbytes, gzbytes, records = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
res = [r for r in csv.reader(open(f"{out}/results.tsv"), delimiter="\t")]
def sums_bu(name):
    rows = list(csv.DictReader(open(f"{out}/{name}.out")))
    return {"calls": sum(int(r["calls"]) for r in rows), "input": sum(int(r["input_tokens"]) for r in rows),
            "output": sum(int(r["output_tokens"]) for r in rows), "cache_read": sum(int(r["cache_read_tokens"]) for r in rows),
            "cache_write": sum(int(r["cache_write_tokens"]) for r in rows)}
want = sums_bu("bu-report")
for name in ["duckdb", "jq"]:
    got = json.loads(open(f"{out}/{name}.out").read().strip().splitlines()[-1])
    status = "agree" if got == want else f"DIFFER: {got} vs {want}"
    print(f"sums of {name} (last run) and bedrock-usage {status}", file=sys.stderr)
    if got != want:
        sys.exit(1)
secs = {(r[0], r[1]): float(r[2]) for r in res}
rss = {(r[0], r[1]): int(r[3]) // 1024 for r in res}
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
print(f"Machine: {os.cpu_count()} cores ({cpu}), {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.system()} {platform.release()}.")
print(f"Corpus: {records} records, {nbytes / 1e6:.0f} MB of JSON lines in the S3 layout; gzip form {gzbytes / 1e6:.0f} MB. Page cache warm.\n")
print("| tool | input | seconds | MB/s of JSON | records/s | peak RSS MB | vs DuckDB |")
print("|---|---|---:|---:|---:|---:|---:|")
for (name, kind), s in secs.items():
    if name in ("bu-report", "parse-only", "inflate-only"):
        continue
    duck = secs.get(("duckdb", kind))
    ratio = f"{duck / s:.1f}x" if duck else ""
    print(f"| {name} | {kind} | {s:.2f} | {nbytes / 1e6 / s:.0f} | {records / s:,.0f} | {rss[(name, kind)]} | {ratio} |")
print(f"\n`report --by developer` on the ingested store: {secs[('bu-report', 'plain')]:.2f} s (process start to exit).")
print("\nThe floors, measured inside the programs (no process start or file loading):\n")
for name in ("parse-only", "inflate-only"):
    for line in open(f"{out}/{name}.out").read().strip().splitlines():
        print(f"- {name}: {line}")
PY
