#!/usr/bin/env bash
# The test suite, in two phases:
#   1. every test not marked `exclusive`, on two pytest-xdist workers (tests sharing the
#      expensive checker results are kept on one worker by their xdist_group);
#   2. the `exclusive` tests (the 1,000-UE registration storm against a live BM-SC), alone,
#      so that their timing does not depend on what the other worker is doing.
# Usage: tools/test.sh [--fast] [PYTEST ARGS...]
#   --fast   the fast lane: leaves out tests marked `slow` (under two minutes on 2 cores)
# Prints one closing line over both phases: "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

lane=full
args=()
for arg in "$@"; do
  case "$arg" in
    --fast) lane=fast ;;
    *) args+=("$arg") ;;
  esac
done
extra=""
if [ "$lane" = fast ]; then extra=" and not slow"; fi

py=.venv/bin/python
# One hash seed for every run, so that searches whose path depends on set ordering are
# reproducible from one run to the next.
export PYTHONHASHSEED="${PYTHONHASHSEED:-0}"
# The suite starts a few hundred Python processes (the command line, BM-SC servers and
# workers, checker pools); each reads the project's modules compiled once here instead
# of compiling them again (an environment that sets PYTHONDONTWRITEBYTECODE would make
# every process compile the whole package: about 0.6 s of CPU each).
unset PYTHONDONTWRITEBYTECODE
"$py" -m compileall -q -j 2 -x '(^|/)\.venv/' . >/dev/null || true
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
start=$(date +%s)

echo "== phase 1: parallel (2 workers), -m \"not exclusive$extra\""
"$py" -m pytest -q -n 2 --dist loadgroup -m "not exclusive$extra" \
  --junitxml="$reports/parallel.xml" ${args[@]+"${args[@]}"}
rc1=$?
rc2=0
if [ "$lane" = fast ]; then
  # every exclusive test is also slow (tests/conftest.py refuses one that is not)
  echo "== phase 2: none in the fast lane (exclusive tests are slow)"
else
  echo "== phase 2: exclusive, -m \"exclusive\""
  "$py" -m pytest -q -m "exclusive" \
    --junitxml="$reports/exclusive.xml" ${args[@]+"${args[@]}"}
  rc2=$?
fi

# pytest exits 5 when a selection holds no test: not a failure of that phase.
[ "$rc1" -eq 5 ] && rc1=0
[ "$rc2" -eq 5 ] && rc2=0
"$py" - "$reports" "$(( $(date +%s) - start ))" <<'EOF'
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for path in sorted(Path(sys.argv[1]).glob("*.xml")):
    for suite in ET.parse(path).getroot().iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
failed = totals["failures"] + totals["errors"]
passed = totals["tests"] - failed - totals["skipped"]
print(f"== both phases in {sys.argv[2]} s")
print(f"tests: {passed} passed, {failed} failed, {totals['skipped']} skipped")
EOF
if [ "$rc1" -ne 0 ] || [ "$rc2" -ne 0 ]; then
  exit 1
fi
