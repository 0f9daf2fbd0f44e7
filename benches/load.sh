#!/usr/bin/env bash
# The loopback load benchmark: one run, three servers, the same traffic.
#   - quench serve (embedded store, the default policy with the standard limits)
#   - the null server (`quench load --null-server`): the protocol and sockets, no decision
#   - postfwd2 (Debian's postfwd), the peer a Postfix site would otherwise pick, with the
#     equivalent rule: at most 500 recipients per sender per hour
# Everything listens on 127.0.0.1 and is stopped at the end. Usage:
#   benches/load.sh [REQUESTS] [CONNECTIONS]
# Needs: a release build (done here), postfwd2 (apt-get install postfwd) for the third row.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${1:-100000}
CONNECTIONS=${2:-16}
SENDERS=${SENDERS:-10000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin quench
QUENCH="$CARGO_TARGET_DIR/release/quench"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() { # host:port
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  return 1
}

load() { # name addr pid
  "$QUENCH" load --target "$2" --requests "$REQUESTS" --connections "$CONNECTIONS" \
    --senders "$SENDERS" --distribution zipf --recipients-per-message 3 --external-share 0.5 \
    --seed 7 --server-pid "$3" --json > "$WORK/$1.json"
  python3 - "$1" "$WORK/$1.json" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
actions = ", ".join(f"{k}: {v}" for k, v in sorted(r["actions"].items()))
print(f"{name:<14} {r['requests_per_second']:>10.0f} req/s  p50 {r['p50_us']:>6} us  p99 {r['p99_us']:>6} us"
      f"  client CPU {r['client_cpu_seconds']:.2f} s  server CPU {r['server_cpu_seconds']:.2f} s  [{actions}]")
PY
}

cat > "$WORK/quench.toml" <<'TOML'
[policy]
accepted_domains = ["contoso.com"]
[[policy.outbound]]
name = "Default"
preset = "standard"
[serve]
admin_listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
TOML
QUENCH_LOG=warn "$QUENCH" serve --config "$WORK/quench.toml" --data-dir "$WORK/data" \
  --listen 127.0.0.1:10140 > "$WORK/serve.out" 2>&1 &
PIDS+=($!); SERVE_PID=$!
"$QUENCH" load --null-server --listen 127.0.0.1:10150 > "$WORK/null.out" 2>&1 &
PIDS+=($!); NULL_PID=$!
wait_port 127.0.0.1:10140
wait_port 127.0.0.1:10150

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(date -u +%FT%TZ)"
echo "traffic: $REQUESTS requests, $CONNECTIONS connections, $SENDERS senders (zipf), 3 recipients/message, 50% external"
load null-server 127.0.0.1:10150 "$NULL_PID"
load quench-serve 127.0.0.1:10140 "$SERVE_PID"

if command -v postfwd2 >/dev/null; then
  cat > "$WORK/postfwd.cf" <<'CF'
# At RCPT time each request is one recipient, so rate() counts recipients (rcpt() would
# count recipient_count, which Postfix only fills in at DATA).
id=RCPT_RATE; protocol_state==RCPT; action=rate(sender/500/3600/550 5.1.8 Access denied, bad outbound sender)
CF
  # postfwd2 daemonizes and writes its pid file after dropping privileges.
  mkdir -p "$WORK/postfwd" && chown nobody "$WORK/postfwd" && chmod 755 "$WORK"
  postfwd2 --file "$WORK/postfwd.cf" --interface 127.0.0.1 --port 10145 --nodns --perfmon \
    --user nobody --group nogroup --pidfile "$WORK/postfwd/postfwd.pid" --cache 0 \
    > "$WORK/postfwd.out" 2>&1 || { cat "$WORK/postfwd.out" >&2; exit 1; }
  wait_port 127.0.0.1:10145
  POSTFWD_PID=$(cat "$WORK/postfwd/postfwd.pid")
  load postfwd2 127.0.0.1:10145 "$POSTFWD_PID"
  kill "$POSTFWD_PID" 2>/dev/null || true
else
  echo "postfwd2          skipped: apt-get install postfwd"
fi
