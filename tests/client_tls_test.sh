#!/usr/bin/env bash
# End-to-end test of the CLI over TLS: a real lrtune-server with
# --tls-cert/--tls-key and --tokens-file, a real lrtune-worker dialling it
# with --tls-ca and a worker token, and `lrtune` with --tls-ca (or
# LRTUNE_TLS_CA), --tls-server-name and --token-file. Certificates are made
# here with openssl: a test CA, and a server certificate it signs for
# 127.0.0.1 and localhost; a second CA signs nothing the server has.
#
#   bash tests/client_tls_test.sh path/to/lrtune path/to/lrtune-server \
#     path/to/lrtune-worker
set -u
BIN=$1
SERVER_BIN=$2
WORKER_BIN=$3
# shellcheck source=tests/testlib.sh
source "$(dirname "$0")/testlib.sh"
unset LRTUNE_SERVER LRTUNE_TLS_CA
export XDG_DATA_HOME="$tmp/xdg"
export XDG_RUNTIME_DIR="$tmp/run"
mkdir -p "$XDG_RUNTIME_DIR"

# --- certificates ---
cd "$tmp" || exit 1
openssl_quiet() { openssl "$@" >/dev/null 2>&1; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=lrtune test CA" \
  -keyout ca.key -out ca.pem
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=other CA" \
  -keyout other.key -out other.pem
openssl_quiet req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout server.key -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
openssl_quiet x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
  -CAcreateserial -days 1 -extfile san.ext -out server.pem
check "openssl made the certificates" test -s ca.pem -a -s server.pem -a -s other.pem
cd - >/dev/null || exit 1

client_token=client-token-0123456789abcdef
worker_token=worker-token-0123456789abcdef
printf 'client alice %s\nworker w1 %s\n' "$client_token" "$worker_token" >"$tmp/tokens"
chmod 600 "$tmp/tokens"
printf '%s\n' "$client_token" >"$tmp/tok"
printf '%s\n' "$worker_token" >"$tmp/worker_tok"

port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER_BIN" --listen "127.0.0.1:$port" --db "$tmp/server.db" \
  --tls-cert "$tmp/server.pem" --tls-key "$tmp/server.key" \
  --tokens-file "$tmp/tokens" 2>"$tmp/server.log" &
server_pid=$!
appears 10 "listening" "$tmp/server.log"
check "the server listens over TLS" grep -q "listening.*TLS" "$tmp/server.log"
"$WORKER_BIN" --server "127.0.0.1:$port" --tls-ca "$tmp/ca.pem" \
  --token-file "$tmp/worker_tok" --threads 1 2>"$tmp/worker.log" &
worker_pid=$!
trap 'kill "$worker_pid" "$server_pid" 2>/dev/null; rm -rf "$tmp"' EXIT

SMALL=(--model mlp --hidden 32 --dataset spirals --threads 1 --steps 100)
S=(--server "127.0.0.1:$port")

# --- a range test over TLS with a token ---
run range-test "${SMALL[@]}" "${S[@]}" --tls-ca "$tmp/ca.pem" \
  --token-file "$tmp/tok" --json
check "range-test over TLS exits 0" test "$rc" = 0
cat "$tmp/err" >&2
check "range-test over TLS prints the recommendation" $PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["state"] == "succeeded", d
assert 0 < d["recommendation"]["min_lr"] < d["recommendation"]["max_lr"], d
assert d["points"] >= 10, d' "$tmp/out"
check "the worker dialled over TLS and ran the task" \
  grep -q "lrtune-worker: registered" "$tmp/worker.log"

# A CSV file of our own travels inline in the request, over TLS.
run range-test --model mlp --hidden 16 --threads 1 --steps 100 --batch-size 16 \
  --start-lr 1e-4 --dataset /usr/local/share/lrtune/datasets/sklearn/iris.csv \
  "${S[@]}" --tls-ca "$tmp/ca.pem" --token-file "$tmp/tok" --json
check "range-test --dataset FILE.csv over TLS exits 0" test "$rc" = 0
cat "$tmp/err" >&2
check "the remote worker trained on the file" $PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["state"] == "succeeded" and d["points"] == 100, d' "$tmp/out"

# LRTUNE_TLS_CA stands for the flag; jobs/get/cancel take them too.
LRTUNE_TLS_CA="$tmp/ca.pem" run jobs "${S[@]}" --token-file "$tmp/tok" --json
check "jobs with LRTUNE_TLS_CA exits 0" test "$rc" = 0
job=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"][0]["job_id"])' "$tmp/out" 2>/dev/null)
LRTUNE_TLS_CA="$tmp/ca.pem" run get "$job" "${S[@]}" --token-file "$tmp/tok"
check "get over TLS exits 0" test "$rc" = 0
LRTUNE_TLS_CA="$tmp/ca.pem" run cancel "$job" "${S[@]}" --token-file "$tmp/tok"
check "cancel of a finished job exits 2 (FAILED_PRECONDITION)" test "$rc" = 2

# --tls-server-name: the name checked instead of the dialled host.
run jobs "${S[@]}" --tls-ca "$tmp/ca.pem" --token-file "$tmp/tok" \
  --tls-server-name localhost
check "--tls-server-name localhost (in the certificate) exits 0" test "$rc" = 0
run jobs "${S[@]}" --tls-ca "$tmp/ca.pem" --token-file "$tmp/tok" \
  --tls-server-name wrong.example
check "--tls-server-name not in the certificate exits 4" test "$rc" = 4
check "a name mismatch is one line" test "$(lines "$tmp/err")" = 1

# --- refused: plaintext, the wrong CA, no token ---
run range-test "${SMALL[@]}" "${S[@]}" --token-file "$tmp/tok"
check "plaintext to a TLS server exits 4" test "$rc" = 4
check "plaintext names the server" grep -q "server 127.0.0.1:$port unreachable" "$tmp/err"
check "plaintext is one line" test "$(lines "$tmp/err")" = 1
run range-test "${SMALL[@]}" "${S[@]}" --tls-ca "$tmp/other.pem" \
  --token-file "$tmp/tok"
check "the wrong CA exits 4" test "$rc" = 4
check "the wrong CA says the handshake failed" grep -q "TLS handshake failed" "$tmp/err"
check "the wrong CA is one line" test "$(lines "$tmp/err")" = 1
run jobs "${S[@]}" --tls-ca "$tmp/ca.pem"
check "TLS without a token exits 4" test "$rc" = 4
check "TLS without a token names --token-file" grep -q -- "--token-file" "$tmp/err"

# --- usage: unreadable CA files name the flag ---
run range-test "${SMALL[@]}" "${S[@]}" --tls-ca "$tmp/missing.pem"
check "an unreadable --tls-ca exits 2" test "$rc" = 2
check "an unreadable --tls-ca names the flag and the file" \
  grep -q -- "--tls-ca: cannot read '$tmp/missing.pem'" "$tmp/err"
LRTUNE_TLS_CA="$tmp/missing.pem" run jobs "${S[@]}"
check "an unreadable LRTUNE_TLS_CA exits 2" test "$rc" = 2
check "an unreadable LRTUNE_TLS_CA names the variable" grep -q "LRTUNE_TLS_CA" "$tmp/err"
run jobs "${S[@]}" --tls-ca "$tmp/tokens"
check "a --tls-ca that is not PEM exits 2" test "$rc" = 2
check "a --tls-ca that is not PEM says so" grep -q "not a PEM" "$tmp/err"
run jobs "${S[@]}" --tls-server-name localhost
check "--tls-server-name without a CA exits 2" test "$rc" = 2
run range-test "${SMALL[@]}" --tls-ca "$tmp/ca.pem"
check "--tls-ca without a server (embedded) exits 2" test "$rc" = 2
check "--tls-ca without a server says why" grep -q -- "--tls-ca applies to --server" "$tmp/err"
run range-test --help
check "range-test --help lists --tls-ca" grep -q -- "--tls-ca" "$tmp/out"
for cmd in grid submit jobs get watch cancel; do
  run "$cmd" --help
  check "$cmd --help lists --tls-ca and --tls-server-name" \
    grep -q -- "--tls-server-name" "$tmp/out"
done

kill "$worker_pid" "$server_pid" 2>/dev/null
wait "$worker_pid" "$server_pid" 2>/dev/null
finish
