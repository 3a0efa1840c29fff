"""The soak benchmark (bench/soak.py) for 20 s with its default load: 200 clients, 500 lines/s in
10 rooms, with joins, parts, nick changes and reconnections (abrupt, ghost and clean), every
line checked against the server's history. It must lose, duplicate and reorder nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Load for 20 s (the suite stays near 3 minutes; bench/soak.py runs for hours), then the drain
# and the final check (about 10 s when nothing goes wrong; the bench bounds each phase itself).
RUN_TIMEOUT = 300
# The bench's 5 MB limit on RSS growth is meant for runs of minutes (growth counted after the
# first one). A 20-s run counts it from about 7 s on, while the server is still warming up: its
# RSS rose 4.6-4.9 MB from 10 s to 30 s in every 30-s run measured (0.3-0.5 MB/s at first,
# about 0.5 MB/min after 3 minutes). 15 MB still catches a gross leak without failing on the
# warm-up.
RSS_LIMIT_MB = "15"


@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_twenty_seconds_of_churn_loses_duplicates_and_reorders_nothing() -> None:
    command = [sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "0.34"]
    proc = subprocess.run(
        [*command, "--rss-limit-mb", RSS_LIMIT_MB],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    counts = re.findall(r"^lost=(\d+) duplicated=(\d+) reordered=(\d+)$", proc.stdout, re.M)
    assert counts == [("0", "0", "0")], output
    assert "PASS" in proc.stdout.splitlines(), output
    # The short run says which part of it the RSS growth was measured over.
    assert "after the first third of the run" in proc.stdout, output
    # Something was actually exercised: lines went out, every kind of churn happened.
    churn = re.search(r"^churn: .*$", proc.stdout, re.M)
    assert churn is not None, output
    numbers = dict(re.findall(r"(\w+)=(\d+)", churn.group(0)))
    for key in ("joins", "parts", "nicks", "abrupt", "ghost", "bye"):
        assert int(numbers[key]) > 0, (key, output)
    sent = re.search(r"^lines: sent=(\d+)", proc.stdout, re.M)
    assert sent is not None and int(sent.group(1)) > 6_000, output
