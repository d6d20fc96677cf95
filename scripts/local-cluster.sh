#!/usr/bin/env bash
# The compose topology (deploy/compose/docker-compose.yml) as real processes
# on loopback: one lrtune-server and N lrtune-worker agents on the CPU, with
# a tokens file and TLS from a test CA made on the fly with openssl (as in
# compose, TLS and tokens are on unless the binaries lack the flags or
# TLS=0).
#
#   scripts/local-cluster.sh                 # run in the foreground; Ctrl-C stops
#   N=2 scripts/local-cluster.sh start       # start in the background, then
#   . "$LRTUNE_CLUSTER_DIR/env"              #   LRTUNE_SERVER, token, CA, pids
#   scripts/local-cluster.sh status
#   scripts/local-cluster.sh stop
#
# Environment (defaults in brackets):
#   N                   workers [2]
#   PORT                coordinator port on 127.0.0.1 [0: a free one]
#   THREADS             --threads per worker [1]
#   TLS                 auto | 1 | 0 [auto: TLS when both binaries have the
#                       flags; 1: fail without them; 0: plaintext]
#   LRTUNE_CLUSTER_DIR  state: logs, pid file, env file, CA, tokens, db
#                       [.cache/local-cluster in the repository]
#   LRTUNE_SERVER_BIN, LRTUNE_WORKER_BIN, LRTUNE_HEALTH_BIN   the binaries
#                       [$BUILD_DIR/server/lrtune-server, $BUILD_DIR/worker/
#                       lrtune-worker, $BUILD_DIR/server/lrtune-health;
#                       BUILD_DIR defaults to build]. lrtune-health is
#                       optional: when there, `start` also checks that the
#                       coordinator answers SERVING through the CA, as the
#                       compose health check does.
#
# `start` returns once every worker has registered (exit 1 with the logs'
# tails otherwise) and writes $LRTUNE_CLUSTER_DIR/env:
#   LRTUNE_SERVER=127.0.0.1:PORT  LRTUNE_TOKEN_FILE (a client token)
#   LRTUNE_ADMIN_TOKEN_FILE  LRTUNE_TLS_CA (the CA's PEM; empty without TLS)
#   LRTUNE_TOKENS_FILE  LRTUNE_METRICS (host:port)  LRTUNE_SERVER_PID
# and $LRTUNE_CLUSTER_DIR/pids ("<role> <pid>" lines). `stop` sends SIGTERM
# to exactly those pids (workers first), SIGKILL after 10 s.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-2}
PORT=${PORT:-0}
THREADS=${THREADS:-1}
TLS=${TLS:-auto}
DIR=${LRTUNE_CLUSTER_DIR:-$REPO/.cache/local-cluster}
BUILD_DIR=${BUILD_DIR:-$REPO/build}
SERVER_BIN=${LRTUNE_SERVER_BIN:-$BUILD_DIR/server/lrtune-server}
WORKER_BIN=${LRTUNE_WORKER_BIN:-$BUILD_DIR/worker/lrtune-worker}
HEALTH_BIN=${LRTUNE_HEALTH_BIN:-$BUILD_DIR/server/lrtune-health}
PIDS=$DIR/pids

say() { echo "local-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

alive() { kill -0 "$1" 2>/dev/null; }

# SIGTERM to the pids in the pid file (workers, then the server), SIGKILL to
# what is left after 10 s. Only these pids: nothing is killed by name.
stop_cluster() {
  [[ -f $PIDS ]] || { say "not running (no $PIDS)"; return 0; }
  local role pid left=()
  while read -r role pid; do
    if [[ $role == worker* ]] && alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done <"$PIDS"
  while read -r role pid; do
    if [[ $role == worker* ]]; then
      for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    fi
  done <"$PIDS"
  while read -r role pid; do
    if [[ $role == server ]] && alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done <"$PIDS"
  while read -r role pid; do
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      left+=("$role")
    fi
  done <"$PIDS"
  rm -f "$PIDS"
  ((${#left[@]} == 0)) || say "killed after 10 s: ${left[*]}"
  say "stopped"
}

status_cluster() {
  [[ -f $PIDS ]] || { say "not running"; return 1; }
  local role pid rc=0
  while read -r role pid; do
    if alive "$pid"; then echo "$role $pid running"; else echo "$role $pid gone"; rc=1; fi
  done <"$PIDS"
  [[ -f $DIR/env ]] && grep '^LRTUNE_SERVER=' "$DIR/env"
  return $rc
}

has_flag() { "$1" --help 2>&1 | grep -q -- "$2"; }

# A CA and a server certificate for localhost / 127.0.0.1, valid 2 days.
make_tls() {
  local d=$DIR/tls
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lrtune-test-ca \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/san.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
    -CAcreateserial -days 2 -extfile "$d/san.ext" -out "$d/server.pem" 2>/dev/null
  chmod 600 "$d"/*.key
}

make_tokens() {
  local worker client admin
  worker=$(openssl rand -hex 32)
  client=$(openssl rand -hex 32)
  admin=$(openssl rand -hex 32)
  (umask 077
   printf 'worker local-workers %s\nclient local-client %s\nadmin local-admin %s\n' \
     "$worker" "$client" "$admin" >"$DIR/tokens"
   echo "$worker" >"$DIR/worker-token"
   echo "$client" >"$DIR/client-token"
   echo "$admin" >"$DIR/admin-token")
}

# Waits up to $3 s for the regex $2 in file $1; prints the matching line.
wait_for_line() {
  local file=$1 regex=$2 deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    if grep -m1 -E "$regex" "$file" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

start_cluster() {
  [[ -x $SERVER_BIN ]] || die "no server binary at $SERVER_BIN (set LRTUNE_SERVER_BIN or BUILD_DIR)"
  [[ -x $WORKER_BIN ]] || die "no worker binary at $WORKER_BIN (set LRTUNE_WORKER_BIN or BUILD_DIR)"
  if ! [[ $N =~ ^[0-9]+$ ]] || ((N < 1 || N > 64)); then die "N must be 1..64, got $N"; fi
  [[ $TLS == auto || $TLS == 1 || $TLS == 0 ]] || die "TLS must be auto, 1 or 0, got $TLS"
  if [[ -f $PIDS ]]; then
    local role pid
    while read -r role pid; do
      alive "$pid" && die "already running ($role $pid); '$0 stop' first"
    done <"$PIDS"
  fi
  mkdir -p "$DIR"
  rm -f "$DIR"/*.log "$DIR/env" "$PIDS" "$DIR"/jobs.db*

  local server_args=(--listen "127.0.0.1:$PORT" --db "$DIR/jobs.db")
  local worker_auth=() mode=plaintext tls_ca=""
  if has_flag "$SERVER_BIN" --tokens-file && has_flag "$WORKER_BIN" --token-file; then
    make_tokens
    server_args+=(--tokens-file "$DIR/tokens")
    worker_auth+=(--token-file "$DIR/worker-token")
    mode="tokens"
  fi
  if [[ $TLS != 0 ]] && has_flag "$SERVER_BIN" --tls-cert && has_flag "$WORKER_BIN" --tls-ca; then
    make_tls
    server_args+=(--tls-cert "$DIR/tls/server.pem" --tls-key "$DIR/tls/server.key")
    worker_auth+=(--tls-ca "$DIR/tls/ca.pem")
    tls_ca=$DIR/tls/ca.pem
    mode="TLS + $mode"
  elif [[ $TLS == 1 ]]; then
    die "TLS=1, but the server lacks --tls-cert or the worker --tls-ca"
  elif [[ $TLS != 0 ]]; then
    say "no TLS: the server lacks --tls-cert or the worker --tls-ca"
  fi
  local metrics=""
  if has_flag "$SERVER_BIN" --metrics-listen; then
    server_args+=(--metrics-listen 127.0.0.1:0)
  fi

  setsid "$SERVER_BIN" "${server_args[@]}" >"$DIR/server.log" 2>&1 </dev/null &
  local server_pid=$!
  echo "server $server_pid" >>"$PIDS"
  local line port
  if ! line=$(wait_for_line "$DIR/server.log" 'listening on .*\(port [0-9]+' 15); then
    tail -n 20 "$DIR/server.log" >&2
    stop_cluster
    die "the server did not start (log above: $DIR/server.log)"
  fi
  port=$(sed -E 's/.*\(port ([0-9]+).*/\1/' <<<"$line")
  if line=$(grep -m1 -E 'metrics on http://[^ ]+ \(port [0-9]+' "$DIR/server.log"); then
    metrics=127.0.0.1:$(sed -E 's/.*metrics on .*\(port ([0-9]+).*/\1/' <<<"$line")
  fi
  # The certificate names localhost; 127.0.0.1 is in its SANs too.
  local address=127.0.0.1:$port
  if [[ -x $HEALTH_BIN ]]; then
    local health=(--addr "$address" --timeout 5)
    [[ -n $tls_ca ]] && health+=(--tls-ca "$tls_ca")
    if ! "$HEALTH_BIN" "${health[@]}" >"$DIR/health.log" 2>&1; then
      cat "$DIR/health.log" >&2
      stop_cluster
      die "the coordinator is not SERVING through lrtune-health (above)"
    fi
  fi

  local i
  for ((i = 0; i < N; i++)); do
    mkdir -p "$DIR/worker-$i"
    setsid "$WORKER_BIN" --server "$address" --devices cpu --slots 1 \
      --threads "$THREADS" --worker-id "local-$i" \
      --checkpoint-dir "$DIR/worker-$i/checkpoints" "${worker_auth[@]}" \
      >"$DIR/worker-$i.log" 2>&1 </dev/null &
    echo "worker-$i $!" >>"$PIDS"
  done
  for ((i = 0; i < N; i++)); do
    if ! wait_for_line "$DIR/worker-$i.log" 'registered as' 30 >/dev/null; then
      tail -n 20 "$DIR/worker-$i.log" "$DIR/server.log" >&2
      stop_cluster
      die "worker $i did not register (logs above)"
    fi
  done

  local client_token="" admin_token=""
  [[ -f $DIR/client-token ]] && client_token=$DIR/client-token
  [[ -f $DIR/admin-token ]] && admin_token=$DIR/admin-token
  cat >"$DIR/env" <<EOF
LRTUNE_CLUSTER_DIR=$DIR
LRTUNE_SERVER=$address
LRTUNE_SERVER_PID=$server_pid
LRTUNE_TOKEN_FILE=$client_token
LRTUNE_ADMIN_TOKEN_FILE=$admin_token
LRTUNE_TOKENS_FILE=${client_token:+$DIR/tokens}
LRTUNE_TLS_CA=$tls_ca
LRTUNE_METRICS=$metrics
export LRTUNE_CLUSTER_DIR LRTUNE_SERVER LRTUNE_SERVER_PID LRTUNE_TOKEN_FILE
export LRTUNE_ADMIN_TOKEN_FILE LRTUNE_TOKENS_FILE LRTUNE_TLS_CA LRTUNE_METRICS
EOF
  say "coordinator on $address ($mode), $N workers on the CPU${metrics:+, metrics http://$metrics/metrics}"
  say "env: . $DIR/env   logs: $DIR/*.log   stop: $0 stop"
  echo "$address"
}

case "${1:-run}" in
  start) start_cluster ;;
  stop) stop_cluster ;;
  status) status_cluster ;;
  run)
    start_cluster
    trap 'echo >&2; stop_cluster; exit 0' INT TERM
    say "running; Ctrl-C stops"
    # Wait while the server lives (a crashed server ends the run).
    server_pid=$(awk '$1 == "server" {print $2}' "$PIDS")
    while alive "$server_pid"; do sleep 1; done
    say "the server exited (log: $DIR/server.log)"
    stop_cluster
    exit 1
    ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) die "usage: $0 [run|start|stop|status]" ;;
esac
