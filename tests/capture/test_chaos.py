"""The CI-sized chaos run (scripts/chaos.py) and the probabilistic crash points it relies on.

The chaos run starts its own gunicorn, two prefork Celery workers and a private redis-server
(never the shared one) against this test run's database, injects worker SIGKILLs (main and
child), a crash point between claim and post, a Redis kill -9 + restart, a Redis SIGSTOP, a
PostgreSQL termination sweep and 3% failing posts, and asserts the oracle's invariants. Every
process it started is killed by pid afterwards, also when the harness itself fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collectors_module.core import faults
from tests.support.capture import test_database_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from chaoslib.procs import kill_recorded  # noqa: E402


def _hits(
    monkeypatch, settings, spec: str, seed: str | None, n: int, point: str = "p"
) -> list[int]:
    settings.COLLECTORS_FAULTS = spec
    settings.COLLECTORS_FAULTS_SEED = seed or ""
    monkeypatch.setattr(faults, "_hits", {})
    fired = []
    for i in range(n):
        try:
            faults.fault_point(point)
        except faults.InjectedFault:
            fired.append(i)
    return fired


def test_probabilistic_fault_fires_about_p_percent_and_reproduces_with_the_seed(
    monkeypatch, settings
):
    first = _hits(monkeypatch, settings, "p:raise%5", "42", 2000)
    again = _hits(monkeypatch, settings, "p:raise%5", "42", 2000)
    other = _hits(monkeypatch, settings, "p:raise%5", "43", 2000)
    assert first == again
    assert first != other
    assert 60 <= len(first) <= 140  # 5% of 2000 = 100


def test_fault_rules_combine_on_one_point_and_unknown_points_stay_inert(monkeypatch, settings):
    settings.COLLECTORS_FAULT_SLEEP = 0
    assert _hits(monkeypatch, settings, "p:sleep,p:raise@3", "1", 5) == [2]
    assert _hits(monkeypatch, settings, "p:raise%0", "1", 200) == []
    assert _hits(monkeypatch, settings, "p:raise%100", None, 3) == [0, 1, 2]
    assert _hits(monkeypatch, settings, "q:raise", "1", 10) == []
    assert faults._parse("a:kill@3,b:raise%5") == {"a": ("kill", 3), "b": ("raise", 0)}


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.timeout(420)
def test_ci_chaos_run_loses_and_duplicates_nothing(transactional_db, tmp_path):
    seed = int(os.environ.get("CHAOS_SEED", "") or time.time() % 100_000)
    print(f"chaos seed={seed}")
    logdir, reports = tmp_path / "logs", tmp_path / "reports"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "COLLECTORS_FAULT", "CELERY_", "REDIS_URL"))
    }
    env["COLLECTORS_DEV"] = "1"
    env["DJANGO_SETTINGS_MODULE"] = "collectors_module.settings"  # a deployment, not the tests'
    cmd = [
        sys.executable, "scripts/chaos.py", "--seed", str(seed),
        "--database-url", test_database_url(),
        "--predictions", "600", "--concurrency", "6", "--ab-predictions", "80",
        "--kills-main", "2", "--kills-child", "1", "--crash-points", "after_claim",
        "--redis-kills", "1", "--redis-pause", "8", "--pg-sweeps", "1", "--agent-kills", "2",
        "--post-failure-pct", "3", "--drain-timeout", "120",
        "--logdir", str(logdir), "--reports", str(reports),
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400, check=False
        )
    finally:
        # the harness stops what it started; whatever is left (it crashed?) is killed by pid here
        leftover = kill_recorded(logdir)
    report_path = reports / f"reliability-{seed}.json"
    assert report_path.exists(), (
        f"no report; harness output:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    report = json.loads(report_path.read_text())
    summary = (reports / f"reliability-{seed}.md").read_text()

    assert report["lost"] == 0, summary
    assert report["duplicated"] == 0, summary
    assert report["phantoms"] == 0, summary
    assert report["attributable_errors"] == 0, summary
    assert report["outcome"]["accepted"] > 0, summary
    assert report["outcome"]["terminal_without_reason"] == 0, summary
    kinds = [f["kind"] for f in report["faults"]]
    assert kinds.count("worker_kill_main") == 2, summary
    assert kinds.count("worker_kill_child") == 1, summary
    assert kinds.count("redis_kill9_restart") == 1, summary
    assert kinds.count("redis_sigstop") == 1, summary
    assert kinds.count("pg_terminate_workers") == 1, summary
    assert "crash_point_after_claim" in kinds, summary
    assert kinds.count("agent_kill") == 2, summary
    assert "crash_point_agent_after_commit" in kinds, summary
    assert report["spool"]["backlog_bytes_at_end"] == 0, summary
    assert report["spool"]["skipped_byte_reports"] == 0, summary
    for f in report["faults"]:
        if f["kind"].startswith("crash_point"):
            assert f["died_at_point"], f
        else:
            assert f["in_flight_at_fault"] > 0, f
    assert report["invalid_faults"] == [], summary
    assert report["valid"], summary
    # the faults were real: some captures ran more than once, injected post failures were retried
    assert report["redelivery_evidence"]["captures_with_attempts_ge_2"] > 0, summary
    assert report["redelivery_evidence"]["injected_post_failures"] > 0, summary
    assert report["passed"], summary
    assert proc.returncode == 0, summary
    # and the harness stopped every process it started by itself
    assert leftover == 0
