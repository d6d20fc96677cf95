#!/usr/bin/env bash
# lrtune-health against real lrtune-server processes on loopback: SERVING
# over plaintext and over TLS with the right CA (0), an unknown --service
# (1), a wrong CA, a wrong server name, plaintext against TLS and TLS against
# plaintext, a closed port, a port that never answers, a server after SIGTERM
# (3), and usage errors (2). Every failure prints exactly one line on stderr.
#
#   bash tests/health_probe_test.sh path/to/lrtune-health path/to/lrtune-server
#
# The server goes NOT_SERVING on SIGTERM and stops accepting calls in the
# same instant, so a probe once the server has logged the signal sees
# NOT_SERVING (1) or no answer (3), never SERVING: that is what is asserted,
# not which of the two.
set -u
BIN=$1
SERVER_BIN=$2
# shellcheck source=tests/testlib.sh
source "$(dirname "$0")/testlib.sh"

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Starts lrtune-server with the given flags on a free loopback port; sets
# $server_pid and $port.
start_server() {
  local log=$1
  shift
  "$SERVER_BIN" --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  port=""
  for _ in $(seq 150); do
    port=$(sed -n -E 's/.*listening on .*\(port ([0-9]+).*/\1/p' "$log")
    [[ -n $port ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log" >&2
  echo "lrtune-server did not start" >&2
  exit 1
}

one_line_on_stderr() { test "$(lines "$tmp/err")" = 1 && test ! -s "$tmp/out"; }
stderr_has() { grep -q -- "$1" "$tmp/err"; }

# --- usage ---
run --help
check "--help exits 0" test "$rc" = 0
for flag in --addr --service --tls-ca --tls-server-name --timeout; do
  check "--help lists $flag" grep -q -- "$flag" "$tmp/out"
done
check "--help explains the exit status" grep -q "Exit status: 0 SERVING" "$tmp/out"
check "--help shows the default address" grep -q "127.0.0.1:50051" "$tmp/out"
run --no-such-flag
check "a bad flag exits 2" test "$rc" = 2
check "a bad flag says so" stderr_has "no-such-flag"
run --timeout 0
check "--timeout 0 exits 2" test "$rc" = 2
run --timeout soon
check "--timeout soon exits 2" test "$rc" = 2
run --addr nohost
check "--addr without a port exits 2" test "$rc" = 2
check "--addr without a port: one line" one_line_on_stderr
run --tls-ca "$tmp/missing.pem"
check "an unreadable --tls-ca exits 2" test "$rc" = 2
check "an unreadable --tls-ca: one line naming it" stderr_has "missing.pem"
echo "not a certificate" >"$tmp/junk.pem"
run --tls-ca "$tmp/junk.pem"
check "a --tls-ca without a certificate exits 2" test "$rc" = 2
run --tls-server-name coordinator
check "--tls-server-name without --tls-ca exits 2" test "$rc" = 2

# --- a closed port: bind a free one, then let it go ---
closed=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run --addr "127.0.0.1:$closed" --timeout 5
check "a closed port exits 3" test "$rc" = 3
check "a closed port: one line, 'unreachable'" one_line_on_stderr
check "a closed port says unreachable" stderr_has "unreachable"

# --- a port that accepts TCP and never speaks: the timeout ---
$PY -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True); time.sleep(60)' >"$tmp/silent.port" &
pids+=("$!")
for _ in $(seq 50); do [[ -s $tmp/silent.port ]] && break; sleep 0.1; done
start=$SECONDS
run --addr "127.0.0.1:$(cat "$tmp/silent.port")" --timeout 1
check "a silent port exits 3" test "$rc" = 3
check "a silent port: one line" one_line_on_stderr
check "a silent port ends with the timeout" test $((SECONDS - start)) -le 4

# --- plaintext ---
start_server "$tmp/plain.log" --db "$tmp/plain.db"
plain_pid=$server_pid
plain_port=$port
run --addr "127.0.0.1:$plain_port"
check "plaintext SERVING exits 0" test "$rc" = 0
check "plaintext SERVING says so on stdout" grep -q ": SERVING$" "$tmp/out"
check "plaintext SERVING: stderr empty" test ! -s "$tmp/err"
run --addr "localhost:$plain_port" --service lrtune.v1.LrTune
check "--service lrtune.v1.LrTune exits 0" test "$rc" = 0
run --addr "127.0.0.1:$plain_port" --service lrtune.v1.WorkerHub
check "--service lrtune.v1.WorkerHub exits 0" test "$rc" = 0
run --addr "127.0.0.1:$plain_port" --service no.such.Service
check "an unknown --service exits 1" test "$rc" = 1
check "an unknown --service: one line" one_line_on_stderr
check "an unknown --service is named" stderr_has "no.such.Service"

# --- TLS: a CA, a server certificate for localhost/127.0.0.1, and a
# second CA that signed nothing of this server's ---
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca \
  -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca \
  -keyout "$tmp/other.key" -out "$tmp/other.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=coordinator \
  -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:coordinator,DNS:localhost,IP:127.0.0.1\n' >"$tmp/san.ext"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
  -CAcreateserial -days 2 -extfile "$tmp/san.ext" -out "$tmp/server.pem" 2>/dev/null
(umask 077; echo "worker w $(openssl rand -hex 32)" >"$tmp/tokens")
# Tokens on: health answers without one (docs/security.md).
start_server "$tmp/tls.log" --db "$tmp/tls.db" --tokens-file "$tmp/tokens" \
  --tls-cert "$tmp/server.pem" --tls-key "$tmp/server.key"
tls_port=$port
run --addr "127.0.0.1:$tls_port" --tls-ca "$tmp/ca.pem"
check "TLS with the right CA exits 0" test "$rc" = 0
check "TLS SERVING: stderr empty" test ! -s "$tmp/err"
run --addr "127.0.0.1:$tls_port" --tls-ca "$tmp/ca.pem" --tls-server-name coordinator
check "TLS with --tls-server-name coordinator exits 0" test "$rc" = 0
run --addr "localhost:$tls_port" --tls-ca "$tmp/ca.pem" --service lrtune.v1.WorkerHub
check "TLS by name, a service, exits 0" test "$rc" = 0
run --addr "127.0.0.1:$tls_port" --tls-ca "$tmp/other.pem"
check "TLS with the wrong CA exits 3" test "$rc" = 3
check "TLS with the wrong CA: one line" one_line_on_stderr
check "TLS with the wrong CA says TLS" stderr_has "(TLS)"
run --addr "127.0.0.1:$tls_port" --tls-ca "$tmp/ca.pem" --tls-server-name elsewhere
check "TLS with a name not in the certificate exits 3" test "$rc" = 3
run --addr "127.0.0.1:$tls_port"
check "plaintext against TLS exits 3" test "$rc" = 3
check "plaintext against TLS: one line" one_line_on_stderr
run --addr "127.0.0.1:$plain_port" --tls-ca "$tmp/ca.pem"
check "TLS against plaintext exits 3" test "$rc" = 3

# --- SIGTERM: never SERVING again; no answer once the server is gone ---
kill -TERM "$plain_pid"
# The server notices the signal within 100 ms and logs it, then turns health
# NOT_SERVING and stops accepting.
appears 5 "shutting down" "$tmp/plain.log"
sleep 0.2
run --addr "127.0.0.1:$plain_port" --timeout 2
echo "a probe right after SIGTERM: exit $rc, $(cat "$tmp/err")"
check "after SIGTERM: not SERVING (1 or 3, got $rc)" test "$rc" = 1 -o "$rc" = 3
wait "$plain_pid"
server_rc=$?
check "the server exited 0 after SIGTERM" test "$server_rc" = 0
run --addr "127.0.0.1:$plain_port" --timeout 2
check "after the server exited: 3" test "$rc" = 3
check "after the server exited: one line" one_line_on_stderr

finish
