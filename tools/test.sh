#!/usr/bin/env bash
# The project's test command: installs what is missing, runs every test, counts the test cases.
#
#   tools/test.sh                    # all tests
#   tools/test.sh --config=asan      # extra arguments go to `bazel test` (also --config=ubsan, ...)
#
# Ends with a line `N passed, N failed` (plus `, N skipped` when some were skipped) counting test
# cases, not targets. Exits non-zero when `bazel test` fails or any test case failed.
# Environment: BAZEL overrides the bazel command (e.g. BAZEL="bazel --output_base=/tmp/ob");
# GEVENT_TEST_COUNTS names a file to which "passed failed skipped" is appended (used by .ci/run).
set -euo pipefail

cd "$(dirname "$0")/.."

tools/setup.sh

read -ra bazel <<< "${BAZEL:-bazel}"

events="$(mktemp "${TMPDIR:-/tmp}/gevent-test-events.XXXXXX")"
trap 'rm -f "$events"' EXIT

status=0
"${bazel[@]}" test //... --build_event_json_file="$events" "$@" || status=$?
if [[ $status -ne 0 ]]; then
  echo "test.sh: bazel test failed (exit code $status)" >&2
fi

# Prints the `N passed, N failed` line last; exits 1 when a test case failed.
count_status=0
python3 tools/count_test_cases.py "$events" ${GEVENT_TEST_COUNTS:+"$GEVENT_TEST_COUNTS"} ||
  count_status=$?

if [[ $status -ne 0 ]]; then
  exit "$status"
fi
exit "$count_status"
