#!/usr/bin/env python3
"""Counts the test cases of one `bazel test` invocation from its build event file.

Usage: count_test_cases.py BEP_JSON [COUNTS_FILE]

BEP_JSON is the file written by `bazel test --build_event_json_file=...`. It lists exactly the test
targets of that invocation and, for each run, the test.xml Bazel kept (also for cached results),
so test.xml files of other targets or of earlier runs are never counted.

Each <testcase> in a test.xml (GoogleTest's format, or the one Bazel writes for a test binary that
died without writing its own) is one case: failed if it has a <failure> or <error> child, skipped
if it has a <skipped> child or was not run (a DISABLED_ test), passed otherwise. A test target
that produced no test cases although it did not pass (it timed out, crashed before writing XML, or
failed to build) counts as one failed case, so a broken target never looks green.

Prints `N passed, N failed` (with `, N skipped` when there are skipped cases) and, when
COUNTS_FILE is given, appends "passed failed skipped" to it. Exits 1 when a case failed.
"""

import json
import sys
import xml.etree.ElementTree as ET
from urllib.parse import unquote, urlparse


def count_xml(path):
    passed = failed = skipped = 0
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        tags = {child.tag for child in case}
        if "failure" in tags or "error" in tags:
            failed += 1
        elif "skipped" in tags or case.get("status") == "notrun" or case.get("result") in (
                "skipped", "suppressed"):
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__)
    tests = set()  # labels of the test targets Bazel configured
    results = {}  # (label, run, shard) -> (attempt, status, test.xml path)
    with open(argv[1]) as f:
        for line in f:
            event = json.loads(line)
            kind, ident = next(iter(event["id"].items()))
            if kind == "targetConfigured" and "testSize" in event.get("configured", {}):
                tests.add(ident["label"])
            elif kind == "testResult":
                key = (ident["label"], ident.get("run", 1), ident.get("shard", 1))
                attempt = ident.get("attempt", 1)
                result = event.get("testResult", {})
                xml = None
                for out in result.get("testActionOutput", []):
                    if out.get("name") == "test.xml":
                        xml = unquote(urlparse(out["uri"]).path)
                if key not in results or attempt >= results[key][0]:
                    results[key] = (attempt, result.get("status", "NO_STATUS"), xml)

    passed = failed = skipped = 0
    for (label, run, shard), (_, status, xml) in sorted(results.items()):
        p = f = s = 0
        if xml:
            try:
                p, f, s = count_xml(xml)
            except (OSError, ET.ParseError) as e:
                print(f"count_test_cases: cannot read {xml}: {e}", file=sys.stderr)
        if status != "PASSED" and f == 0:
            print(f"count_test_cases: {label} is {status} without a failed test case; "
                  "counting it as one failure", file=sys.stderr)
            f = 1
        passed, failed, skipped = passed + p, failed + f, skipped + s
    for label in sorted(tests - {key[0] for key in results}):
        print(f"count_test_cases: {label} did not run (failed to build?); counting it as one failure",
              file=sys.stderr)
        failed += 1

    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    if len(argv) == 3:
        with open(argv[2], "a") as counts:
            counts.write(f"{passed} {failed} {skipped}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
