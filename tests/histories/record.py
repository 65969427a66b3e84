"""Re-record the checked-in histories: `python -m tests.histories.record` (from the repo root).

Runs the runbook tests (time-skipping server, real activities, real Postgres and sandbox) with the
`tests.recording` plugin switched on; each workflow a test waits for lands in
`tests/histories/<workflow type>/<test name>.json`. Old recordings of tests are removed first, so a renamed
or deleted test leaves no stale history behind. Histories not named after a test (`e2e_…`, kept from code
before a `workflow.patched` change) are never removed: they prove that runs started on older code still
replay. Extra arguments go to pytest (e.g. `-k rollback`; then only the matching tests are re-recorded and
nothing is removed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HISTORIES = Path(__file__).parent
REPO = HISTORIES.parent.parent

# Every runbook test drives a shipped workflow to its end on the time-skipping server (tests/workflows/, which
# mirrors workflows/: a new runbook's tests are recorded without a change here; test-only probes are skipped
# by the plugin), and the replay test's live probe run provides the deliberately non-deterministic history.
SCENARIOS = [
    "tests/workflows",
    "tests/test_replay.py::test_reordered_probe_fails_replay_of_a_live_history",
]


def main(extra: list[str]) -> int:
    if not extra:
        for old in HISTORIES.glob("*/test_*.json"):
            old.unlink()
    env = {**os.environ, "STANCH_RECORD_HISTORIES": "1"}
    # One process (no xdist): the recorder's file names (`--2` for a test that records a workflow type
    # twice) and its summary live in the process that runs the tests; xdist workers would each keep their own.
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-p",
        "tests.recording",
    ]
    code = subprocess.call([*command, *SCENARIOS, *extra], cwd=REPO, env=env)
    for folder in sorted(p for p in HISTORIES.iterdir() if p.is_dir() and not p.name.startswith("_")):
        files = list(folder.glob("*.json"))
        size = sum(f.stat().st_size for f in files)
        print(f"{folder.name:<24} {len(files):>3} histories {size / 1024:>8.0f} KiB")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
