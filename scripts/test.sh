#!/usr/bin/env bash
# The test command: unit tests, then integration and chaos tests against the running lab.
# pytest's exit code 5 ("no tests collected") is a failure here: a suite that finds nothing is broken.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=$(/usr/bin/python3 -c "import tomllib; print(tomllib.load(open('infra/install.toml','rb'))['venv'])")
# The running runtime's own suite joins the shared ones (REVIEWLAB_RUNTIME, else detected).
RUNTIME=$("$VENV/bin/python" -c "from reviewlab_lab import runtimes; print(runtimes.activate().lab.runtime.name)")
SUITES=(tests/unit tests/integration tests/chaos)
[ "$RUNTIME" = compose ] && SUITES+=(tests/compose)
echo "runtime: $RUNTIME"
status=0
for suite in "${SUITES[@]}"; do
  echo "== $suite"
  "$VENV/bin/pytest" "$suite" -q -p no:cacheprovider "$@"
  rc=$?
  if [ $rc -eq 5 ]; then echo "no tests collected in $suite: that is a failure"; rc=1; fi
  [ $rc -eq 0 ] || status=$rc
done
exit $status
