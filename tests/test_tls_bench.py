"""bench/fanout.py --tls on a tiny load: the same scenario in clear text and over TLS, each
delivery exactly once, and the comparison of the server's CPU per delivery."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(90)
def test_fanout_tls_runs_clear_text_and_tls_and_compares() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fanout.py"), "--scenario", "a", "--tls",
         "--clients", "10", "--senders", "2", "--duration", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=80, check=False,
    )  # fmt: skip
    assert proc.stdout, proc.stderr
    plain, tls, summary = (json.loads(line) for line in proc.stdout.splitlines())
    assert (plain["server"], tls["server"]) == ("game_chat", "game_chat+tls")
    for line in (plain, tls):
        assert (line["lost"], line["duplicated"], line["reordered"]) == (0, 0, 0), line
        assert line["drained"] and "problems" not in line, line
        assert line["deliveries"] == line["messages"] * 9
        assert line["server_us_per_delivery"] > 0
    compared = summary["tls"]["a"]
    assert compared["tls_us_per_delivery"] == tls["server_us_per_delivery"]
    assert summary["exact"] is True and summary["ratio_target"] == 2.0
