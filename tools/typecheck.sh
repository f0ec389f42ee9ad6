#!/usr/bin/env bash
# mypy --strict over the project and its tests. The import package maps mbmssec.<sub> onto
# top-level folders, which mypy cannot follow, so this builds a throw-away tree of
# symlinks with the installed layout (and tests/ beside it) and checks that.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/mbmssec"
for f in mbmssec/*.py; do ln -s "$root/$f" "$tree/mbmssec/"; done
ln -s "$root/mbmssec/commands" "$tree/mbmssec/commands"
for d in spec model proofs impl refinement simulation oracles docgen bench; do
  ln -s "$root/$d" "$tree/mbmssec/$d"
done
ln -s "$root/tests" "$tree/tests"
cd "$tree"
"$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" --cache-dir "$root/.mypy_cache" -p mbmssec "$@"
# The tests are plain modules beside each other (pytest's rootdir layout).
MYPYPATH="$tree/tests" "$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" \
  --cache-dir "$root/.mypy_cache" \
  --explicit-package-bases tests "$@"
