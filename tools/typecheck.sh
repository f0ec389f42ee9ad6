#!/usr/bin/env bash
# mypy --strict over the project. The import package maps mbmssec.<sub> onto top-level
# folders, which mypy cannot follow, so this builds a throw-away tree of symlinks with
# the installed layout and checks that.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/mbmssec"
for f in mbmssec/*.py; do ln -s "$PWD/$f" "$tree/mbmssec/"; done
ln -s "$PWD/mbmssec/commands" "$tree/mbmssec/commands"
for d in spec model proofs impl refinement simulation docgen bench; do ln -s "$PWD/$d" "$tree/mbmssec/$d"; done
cd "$tree" && "$OLDPWD/.venv/bin/mypy" --config-file "$OLDPWD/pyproject.toml" -p mbmssec "$@"
