# Helpers for the shell end-to-end tests; source it after setting BIN (the
# binary under test). Provides $tmp (removed on exit), $PY (Debian's python3
# with torch), check NAME CMD... (counts a pass or a failure), run ARGS...
# (runs BIN, sets $rc, writes $tmp/out and $tmp/err), lines FILE,
# appears SECONDS PATTERN FILE (waits for a line), and finish (prints
# "N passed, N failed", exits non-zero on a failure).
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

check() {
  local name=$1
  shift
  if "$@"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAILED: $name" >&2
  fi
}

run() {
  "$BIN" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
}

lines() { wc -l <"$1" | tr -d ' '; }

# appears SECONDS PATTERN FILE: whether FILE has a line matching PATTERN
# (grep's) within SECONDS, looked at every 0.1 s; FILE may not exist yet.
appears() {
  local tries=$(($1 * 10))
  for _ in $(seq "$tries"); do
    grep -q -- "$2" "$3" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

finish() {
  echo "$pass passed, $fail failed"
  test "$fail" = 0
}
