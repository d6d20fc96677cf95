#!/usr/bin/env bash
# Fails if clang-format (Google style, .clang-format) would change any of
# lrtune's C++ files. Fix with: clang-format -i $(git ls-files '*.cc' '*.h')
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
mapfile -t files < <(git ls-files '*.cc' '*.h' 2>/dev/null || find . -name '*.cc' -o -name '*.h')
if ((${#files[@]} == 0)); then
  echo "check_format: no files" >&2
  exit 1
fi
clang-format --dry-run --Werror "${files[@]}"
echo "check_format: ${#files[@]} files formatted"
