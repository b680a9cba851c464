"""CI-sized chaos run (reliability.md §7-8): scripts/chaos.py against real processes, <= 6 min."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.timeout(420)]


def test_chaos_run_loses_and_duplicates_nothing():
    from django.conf import settings

    seed = int(os.environ.get("CHAOS_SEED", "20261127"))
    database = f"{settings.DATABASES['default']['NAME']}_chaos"
    reports = ROOT / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COLLECTORS_FAULT"))}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--seed", str(seed),
         "--predictions", os.environ.get("CHAOS_PREDICTIONS", "800"), "--concurrency", "6",
         "--ab-predictions", "60", "--database", database, "--drain-timeout", "150",
         "--reports", str(reports)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    report_path = reports / f"reliability-{seed}.json"
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["lost"] == 0, report
    assert report["duplicated"] == 0, report
    assert report["phantoms"] == 0, report
    assert report["valid"], report.get("faults")  # every fault hit work in flight
    assert report["passed"], report
    assert (reports / f"reliability-{seed}.md").exists()
    assert proc.returncode == 0, proc.stdout[-3000:]
