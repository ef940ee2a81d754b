"""Adds up pytest's JUnit reports into the one closing line CI reads.

Exit status 1 when any test failed or errored, or when no test ran at all.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def main(paths: list[str]) -> int:
    passed = failed = skipped = 0
    for path in paths:
        try:
            root = ET.parse(path).getroot()  # noqa: S314 - our own pytest's report
        except (OSError, ET.ParseError) as e:
            print(f"dshare: no readable test report {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        for suite in root.iter("testsuite"):
            tests = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            failed += bad
            skipped += skip
            passed += tests - bad - skip
    print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
    if passed == 0:
        print("dshare: no test ran; that is a failure, not a pass", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
