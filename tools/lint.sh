#!/usr/bin/env bash
# Lint the files a change touches: ruff check and ruff format --check on Python files,
# clang-format on C++/CUDA files (settings: [tool.ruff] in pyproject.toml, .clang-format).
#
#   bash tools/lint.sh            # the files of the last commit (HEAD~1..HEAD), as CI runs it
#   bash tools/lint.sh BASE       # the files changed since BASE (committed or not), e.g. main
#   bash tools/lint.sh --all      # every file
#
# Only touched files are checked, so that older code is formatted when it is next edited, not
# in one commit that rewrites everything. Tools: pip install ".[lint]" (pinned versions).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in ruff clang-format; do
  command -v "$tool" >/dev/null || { echo "lint: $tool not found (pip install \".[lint]\")" >&2; exit 2; }
done

py_re='\.py$'
cxx_re='^(cpp|cuda)/.*\.(cpp|hpp|cu|cuh|inc|inl)$'

if [[ "${1:-}" == "--all" ]]; then
  files=$(git ls-files)
else
  base=${1:-HEAD~1}
  if ! git rev-parse --verify -q "$base^{commit}" >/dev/null; then
    if [[ -n "${1:-}" ]]; then echo "lint: no revision $base" >&2; exit 2; fi
    # the default base: absent in a shallow clone, on a first commit or outside git
    echo "lint: no previous commit here: nothing checked" >&2
    exit 0
  fi
  # deleted files are gone; renamed ones are checked under their new name
  files=$(git diff --name-only --diff-filter=d "$base" --)
fi

py=$(grep -E "$py_re" <<<"$files" || true)
cxx=$(grep -E "$cxx_re" <<<"$files" || true)
echo "lint: $(wc -w <<<"$py") Python and $(wc -w <<<"$cxx") C++/CUDA files"

status=0
if [[ -n "$py" ]]; then
  # --force-exclude: the excludes of pyproject.toml apply to files named here too
  ruff check --force-exclude $py || status=1
  ruff format --check --force-exclude $py || status=1
fi
if [[ -n "$cxx" ]]; then
  clang-format --dry-run -Werror $cxx || status=1
fi
if [[ $status -ne 0 ]]; then
  echo "lint: fix with  ruff check --fix FILES; ruff format FILES; clang-format -i FILES" >&2
fi
exit $status
