#!/usr/bin/env bash
# Generates the gRPC modules the lrtune package imports.
#   client/python/generate.sh [OUT]   (default client/python/lrtune/_gen;
#                                      with another OUT set LRTUNE_GEN_DIR=OUT)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
exec /usr/bin/python3 -m lrtune.generate ${1:+--out "$1"}
