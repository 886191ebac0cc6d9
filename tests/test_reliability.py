"""Short runs of bench/reliability: SIGKILL during indexing and in the daemon, and the daemon
under concurrent queries while files come and go. The full runs are the same scripts with
bigger numbers (see their docstrings)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "bench" / "reliability"


def run_script(name: str, *args: str, timeout: float) -> dict:
    done = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=timeout)
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, (report, done.stderr[-3000:])
    return report


@pytest.mark.timeout(600)
def test_kill_9_during_indexing_and_in_the_daemon_loses_nothing():
    report = run_script("crash.py", "--images", "300", "--kills", "3", "--seed", "7", timeout=540)
    assert report["problems"] == [] and report["entries_lost"] == 0
    assert report["kills"] >= 3 and report["kills_of_daemon"] >= 1


@pytest.mark.timeout(600)
def test_daemon_answers_concurrent_queries_while_files_come_and_go():
    report = run_script("concurrency.py", "--seconds", "10", "--images", "150", timeout=540)
    assert report["errors"] == 0 and report["wrong_answers"] == 0 and report["daemon_alive"]
    assert report["similar_ms"]["n"] > 20 and report["morph_ms"]["n"] > 20 and report["files_added"] > 10
