#!/usr/bin/env bash
# Sync benchmark: `bedrock-usage sync` against what people script today, both against one moto
# server on this machine, in one run:
# - from a CloudWatch Logs group: boto3's FilterLogEvents paginator writing the messages out, then
#   `bedrock-usage ingest`;
# - from S3 (the same records as Bedrock's delivery layout): boto3 listing and downloading every
#   object (one at a time, as `aws s3 cp --recursive` scripts do per file), then `ingest`.
#
#   bench/sync.sh [RECORDS]      # default 20000 demo records (bodies under 1 KB)
#
# Both read the same group from the same emulator, so the figures measure the client side (paging,
# parsing, storing) plus moto's own speed, which dominates; AWS itself pages faster. The record
# counts are checked equal. Medians of three runs. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-20000}"
OUT="${BENCH_DIR:-bench/out}/sync"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bedrock-usage/target}"
cargo build --release -q -p bedrock-usage --bin bedrock-usage
BIN="$CARGO_TARGET_DIR/release/bedrock-usage"
python3 -c 'import moto, boto3' 2>/dev/null || pip install -q 'moto[server]==5.2.1'
rm -rf "$OUT" && mkdir -p "$OUT"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$PORT" >"$OUT/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null' EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_EC2_METADATA_DISABLED=true
until curl -s "$AWS_ENDPOINT_URL/moto-api/" >/dev/null; do sleep 0.2; done

"$BIN" demo --write "$OUT/corpus" --records "$RECORDS" --compress none --body-kb 0-1 --seed 3 >/dev/null
find "$OUT/corpus/AWSLogs" -name '*.json' -path '*/[0-9][0-9]/*' ! -path '*/data/*' -exec cat {} + > "$OUT/records.jsonl"

# Load the records as events of the last three days (CloudWatch takes events up to 14 days old).
python3 - "$OUT/records.jsonl" <<'PY'
import boto3, sys, time
logs = boto3.client("logs")
logs.create_log_group(logGroupName="bench")
logs.create_log_stream(logGroupName="bench", logStreamName="aws/bedrock/modelinvocations")
lines = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip()]
now = int(time.time() * 1000)
start = now - 3 * 86_400_000
events = [{"timestamp": start + i * (3 * 86_400_000 - 60_000) // len(lines), "message": l} for i, l in enumerate(lines)]
for i in range(0, len(events), 5000):
    logs.put_log_events(logGroupName="bench", logStreamName="aws/bedrock/modelinvocations", logEvents=events[i:i + 5000])
print(f"loaded {len(events)} events", file=sys.stderr)
PY

python3 - "$OUT/corpus" <<'PY'
import boto3, os, sys
s3 = boto3.client("s3")
s3.create_bucket(Bucket="bench")
root = sys.argv[1]
n = 0
for d, _, files in os.walk(os.path.join(root, "AWSLogs")):
    for f in files:
        path = os.path.join(d, f)
        s3.upload_file(path, "bench", os.path.relpath(path, root))
        n += 1
print(f"uploaded {n} objects", file=sys.stderr)
PY

cat > "$OUT/peer_s3.py" <<'PY'
import boto3, os, sys
s3 = boto3.client("s3")
out = sys.argv[1]
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="AWSLogs/"):
    for o in page.get("Contents", []):
        path = os.path.join(out, o["Key"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file("bench", o["Key"], path)
PY

cat > "$OUT/peer.py" <<'PY'
import boto3, sys, time
logs = boto3.client("logs")
with open(sys.argv[1], "w") as out:
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName="bench", startTime=int(time.time() * 1000) - 5 * 86_400_000):
        for e in page["events"]:
            out.write(e["message"] + "\n")
PY

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
count() { "$BIN" --db "$1" --format csv report --by developer 2>/dev/null | awk -F, 'NR==1{for(i=1;i<=NF;i++) if($i=="calls") c=i} NR>1{s+=$c} END{print s}'; }
ours=(); peer=(); ours3=(); peer3=()
for i in 1 2 3; do
  rm -rf "$OUT"/*.db* "$OUT/peer.jsonl" "$OUT/peer-s3"
  ours+=("$(secs "$BIN" --db "$OUT/sync.db" sync --no-progress --log-group bench --since 5d)")
  peer+=("$(secs sh -c "python3 '$OUT/peer.py' '$OUT/peer.jsonl' && '$BIN' --db '$OUT/peer.db' ingest --no-progress '$OUT/peer.jsonl'")")
  ours3+=("$(secs "$BIN" --db "$OUT/sync-s3.db" sync --no-progress --s3 s3://bench/)")
  peer3+=("$(secs sh -c "python3 '$OUT/peer_s3.py' '$OUT/peer-s3' && '$BIN' --db '$OUT/peer-s3.db' ingest --no-progress '$OUT/peer-s3'")")
done
for db in sync peer sync-s3 peer-s3; do
  [ "$(count "$OUT/$db.db")" = "$RECORDS" ] || { echo "$db: $(count "$OUT/$db.db") records, not $RECORDS" >&2; exit 1; }
done
row() { local o p; o=$(printf '%s\n' "${@:3:3}" | median); p=$(printf '%s\n' "${@:6:3}" | median)
  printf '%-11s bedrock-usage sync %6.2f s (%5.0f records/s)   %s %6.2f s (%5.0f records/s)   %.2fx\n' \
    "$1" "$o" "$(echo "$RECORDS / $o" | bc -l)" "$2" "$p" "$(echo "$RECORDS / $p" | bc -l)" "$(echo "$p / $o" | bc -l)"; }
echo "records: $RECORDS"
row cloudwatch "boto3 paginator + ingest" "${ours[@]}" "${peer[@]}"
row s3 "boto3 list + download + ingest" "${ours3[@]}" "${peer3[@]}"
