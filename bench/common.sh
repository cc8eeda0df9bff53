# Shared by the benchmark scripts: the build, the corpora and the filled store, medians.
# Expects OUT and CARGO_TARGET_DIR set; sets BIN.
BIN="$CARGO_TARGET_DIR/release/bedrock-usage"

# ensure_corpus RECORDS: OUT/plain and OUT/gzip, the same demo records (seed 1) in the S3 layout.
ensure_corpus() {
  local records="$1" kind compress
  for kind in plain gzip; do
    compress=none; [ "$kind" = gzip ] && compress=gzip
    if [ ! -f "$OUT/$kind/ledger.jsonl" ] || [ "$(wc -l < "$OUT/$kind/ledger.jsonl")" != "$records" ]; then
      rm -rf "${OUT:?}/$kind"
      "$BIN" demo --write "$OUT/$kind" --records "$records" --compress "$compress" --seed 1
    fi
  done
}

# ensure_store N: OUT/report-N.db filled once with N invocations (examples/fill_store).
ensure_store() {
  local n="$1"
  DB="$OUT/report-$n.db"
  if [ ! -f "$DB.done" ]; then
    rm -rf "$DB" "$DB-wal" "$DB-shm" "$DB.columns"
    "$CARGO_TARGET_DIR/release/examples/fill_store" "$DB" "$n"
    touch "$DB.done"
  fi
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
