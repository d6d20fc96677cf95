#!/usr/bin/env bash
# clang's -Wthread-safety over every file that takes a lock: the
# ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED annotations are checked
# at compile time (a syntax-only pass with the main build's flags, from its
# compile_commands.json; the main build uses g++, which ignores them).
#
#   bash scripts/thread_safety.sh [BUILD_DIR]
#
# The locks are lrtune::Mutex (core/sync.h), annotated like absl::Mutex.
# scripts/tsan.sh checks at run time what this checks at compile time: the
# server's concurrency tests under ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-${BUILD_DIR:-build}}
exec /usr/bin/python3 - "$BUILD_DIR" <<'PY'
import json, shlex, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
import os

build = sys.argv[1]
commands = json.load(open(os.path.join(build, "compile_commands.json")))
dirs = ("/server/", "/worker/", "/client/")
entries = [c for c in commands
           if any(d in c["file"] for d in dirs)
           and not c["file"].endswith("_test.cc")
           and "/proto/" not in c["file"] and os.path.exists(c["file"])
           and "Mutex" in open(c["file"]).read()
           + "".join(open(h).read() for h in
                     [c["file"][:-3] + ".h"] if os.path.exists(h))]

def check(c):
    args = shlex.split(c["command"])[1:]
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT"):
            skip = True
            continue
        if a in ("-MD", "-c") or a.startswith("-fno-sanitize-recover"):
            continue
        out.append(a)
    r = subprocess.run(["clang++", "-fsyntax-only", "-Wthread-safety",
                        "-Werror=thread-safety", "-Wno-unknown-warning-option",
                        "-Wno-error=unused-command-line-argument"] + out,
                       capture_output=True, text=True, cwd=c["directory"])
    return c["file"], r.returncode, r.stderr

failed = 0
with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
    for path, rc, err in pool.map(check, entries):
        if rc != 0:
            failed += 1
            print(f"thread_safety: {path}\n{err}", file=sys.stderr)
print(f"thread_safety: {len(entries)} files checked, {failed} with findings")
sys.exit(1 if failed else 0)
PY
