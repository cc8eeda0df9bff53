# Shell helpers the benchmarks share (sourced).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for FILE PATTERN: the first match of PATTERN in FILE (30 s at most)
  for _ in $(seq 300); do
    grep -o -m1 "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "gave up waiting for $2 in $1:" >&2; cat "$1" >&2; exit 1
}
held() { # a loadgen result on stdin: every request answered 200, 98% of the rate, p99 <= 100 ms
  python3 -c 'import json, sys; r = json.load(sys.stdin)
sys.exit(not (r["failed"] == 0 and r["ok"] == r["sent"] and r["achieved_rps"] >= 0.98 * r["rate"] and r["latency_us"]["p99"] <= 100000))'
}
