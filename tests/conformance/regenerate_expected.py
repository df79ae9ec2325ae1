"""Regenerate expected.json: run the conformance suite directly against the reference server.

    /work/main/.venv/bin/python tests/conformance/regenerate_expected.py   # or any venv with the project

Prints the summary and writes tests/conformance/expected.json; review the diff before committing it.
Installs Node 22 and the pinned suite into .ci/node22 first if they are missing (.ci/setup-node22.sh).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))  # this checkout's code, not an install

from conformance_suite import (
    EXPECTED_FILE,
    expected_document,
    find_suite,
    reference_server,
    run_suites,
    summary_table,
)


def main() -> int:
    suite = find_suite()
    with reference_server() as url, tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        run = run_suites(suite, {"direct": url}, Path(tmp))["direct"]
    if not run.results:
        print(run.output, file=sys.stderr)
        print("the suite produced no results", file=sys.stderr)
        return 1
    document = expected_document(run.results)
    print(summary_table(run.results, None, document["scenarios"]))
    EXPECTED_FILE.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {EXPECTED_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
